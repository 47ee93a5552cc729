package traffic

import "container/heap"

// Kind is one of the per-name counts a day keeps: per client, per package, per repository.
type Kind int

const (
	Clients Kind = iota
	Packages
	Repos
)

// topCandidates bounds the memory of a ranking over a period. A day keeps at most
// MaxClients clients, but a year of them is 365 times that (a LAN whose IPv6 temporary
// addresses rotate daily, or a stranger with a /64): summing every name of the period in
// one map took some 30 MiB per report, and eight reports at once 330 MiB of a 48 MiB
// daemon. A ranking therefore follows at most topCandidates names (Space-Saving,
// Metwally, Agrawal and El Abbadi 2005: a new name takes the place of the smallest),
// which keeps every name that carried more than 1/topCandidates of the period's bytes,
// and then sums the chosen ones exactly in a second walk: the figures shown are exact,
// and with fewer names than this in the period (any usual LAN) so is the choice, in one
// walk. The limit of that choice: a stranger who sends thousands of one-off addresses
// each nearly as much as a LAN client's whole period (some 4,500 times its bytes in all)
// can push that client out of the list, while the flood tops it.
const topCandidates = 2048

// candidate is one name followed by a ranking: its weight (bytes+requests, counting
// what names it replaced) and, until a name was replaced, its exact count.
type candidate struct {
	name string
	w    int64
	c    Count
	i    int // in the heap
}

// spaceSaving is the candidates, smallest weight on top.
type spaceSaving struct {
	by      map[string]*candidate
	h       candidateHeap
	evicted bool // a name was replaced: counts are not exact, a second walk is needed
}

func newSpaceSaving() *spaceSaving {
	return &spaceSaving{by: make(map[string]*candidate, 64)}
}

// add counts c for name; name need not outlive the call.
func (s *spaceSaving) add(name []byte, c Count) {
	w := addSat(c.Bytes, c.Requests)
	if e, ok := s.by[string(name)]; ok {
		e.w, e.c = addSat(e.w, w), e.c.Add(c)
		heap.Fix(&s.h, e.i)
		return
	}
	if len(s.h) < topCandidates {
		e := &candidate{name: string(name), w: w, c: c}
		heap.Push(&s.h, e)
		s.by[e.name] = e
		return
	}
	e := s.h[0]
	delete(s.by, e.name)
	e.name, e.w, e.c = string(name), addSat(e.w, w), c
	s.by[e.name] = e
	heap.Fix(&s.h, 0)
	s.evicted = true
}

type candidateHeap []*candidate

func (h candidateHeap) Len() int           { return len(h) }
func (h candidateHeap) Less(i, j int) bool { return h[i].w < h[j].w }
func (h candidateHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *candidateHeap) Push(x any) {
	e := x.(*candidate)
	e.i = len(*h)
	*h = append(*h, e)
}
func (h *candidateHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
