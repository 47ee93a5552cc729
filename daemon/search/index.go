package search

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/amwi/amwi/daemon/repodb"
)

// Package is one package in the index: the database entry plus what search needs.
type Package struct {
	Repo string
	repodb.Package
	Epoch, Pkgver, Pkgrel string

	order int // position of Repo in the configured repo order
}

// Index is an immutable snapshot of every configured repo's packages. A new one is built
// and swapped in whole, so a search never sees half of one.
type Index struct {
	Repos []string
	Built time.Time
	pkgs  []*Package // sorted: repo order, then name
	byKey map[string]*Package
	// corpus holds every package's searchable text, lower-cased, in pkgs order and, within
	// a package, in rank order: name, provides, groups, description. A term is then one
	// strings.Index scan over the corpus, and the leftmost hit in a package is its best
	// match. spans[i] says where package i's fields end.
	corpus string
	spans  []span
	// requiredBy maps a name (package or provision) to the packages depending on it.
	requiredBy map[string][]*Package
	// providers maps a provision's name (version stripped) to the packages providing it,
	// in index order (repo order, then name), for Satisfier.
	providers map[string][]*Package
}

type span struct {
	start, name, prov, group, end uint32
}

// sep separates fields in the corpus; Terms refuses control characters, so no term can
// match across two fields.
const sep = "\x00"

// depName strips a version constraint or an optdepend reason: "glibc>=2.38" → "glibc",
// "python: for scripts" → "python".
func depName(d string) string {
	if i := strings.IndexAny(d, "<>=:"); i >= 0 {
		d = d[:i]
	}
	return strings.TrimSpace(d)
}

// Build indexes the packages of each repo; repos gives their order (core, extra, …).
// Bounds on what one package of an upstream's database may put in the index (and so in
// an API answer or a sync's record): real packages stay far below them.
const (
	maxShort = 128 // name, version, arch, each relation
	maxLong  = 512 // description, URL, packager
	maxList  = 64  // entries of one relation list
)

// clip cuts a package's fields to the bounds above.
func clip(p *repodb.Package) {
	for _, f := range []*string{&p.Name, &p.Base, &p.Version, &p.Arch, &p.Filename} {
		*f = clipString(*f, maxShort)
	}
	for _, f := range []*string{&p.Desc, &p.URL, &p.Packager} {
		*f = clipString(*f, maxLong)
	}
	for _, l := range []*[]string{&p.Groups, &p.Licenses, &p.Replaces, &p.Conflicts, &p.Provides,
		&p.Depends, &p.OptDepends, &p.MakeDepends, &p.CheckDepends} {
		if len(*l) > maxList {
			*l = (*l)[:maxList]
		}
		for i := range *l {
			(*l)[i] = clipString((*l)[i], maxShort)
		}
	}
}

// clipString cuts s to at most n bytes, at a rune boundary.
func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func Build(repos []string, dbs map[string][]repodb.Package, now time.Time) *Index {
	ix := &Index{Repos: repos, Built: now, byKey: map[string]*Package{}, requiredBy: map[string][]*Package{},
		providers: map[string][]*Package{}}
	n := 0
	for _, r := range repos {
		n += len(dbs[r])
	}
	ix.pkgs = make([]*Package, 0, n)
	in := interner{}
	for order, r := range repos {
		for _, rp := range dbs[r] {
			// Signatures are the bulk of a v1 database and nobody searches them; names in
			// lists (depends, licenses, packagers) repeat thousands of times: keep one copy.
			rp.PGPSig, rp.MD5Sum = "", ""
			clip(&rp)
			rp.Arch, rp.Packager = in.one(rp.Arch), in.one(rp.Packager)
			for _, l := range []*[]string{&rp.Groups, &rp.Licenses, &rp.Replaces, &rp.Conflicts, &rp.Provides,
				&rp.Depends, &rp.OptDepends, &rp.MakeDepends, &rp.CheckDepends} {
				in.all(*l)
			}
			p := &Package{Repo: r, Package: rp, order: order}
			p.Epoch, p.Pkgver, p.Pkgrel = repodb.SplitVersion(rp.Version)
			ix.pkgs = append(ix.pkgs, p)
			ix.byKey[r+"/"+rp.Name] = p
		}
	}
	sort.SliceStable(ix.pkgs, func(i, j int) bool {
		a, b := ix.pkgs[i], ix.pkgs[j]
		if a.order != b.order {
			return a.order < b.order
		}
		return a.Name < b.Name
	})
	var c strings.Builder
	ix.spans = make([]span, len(ix.pkgs))
	for i, p := range ix.pkgs {
		sp := &ix.spans[i]
		sp.start = uint32(c.Len())
		c.WriteString(strings.ToLower(p.Name))
		sp.name = uint32(c.Len())
		for _, pr := range p.Provides {
			c.WriteString(sep + strings.ToLower(depName(pr)))
		}
		sp.prov = uint32(c.Len())
		for _, g := range p.Groups {
			c.WriteString(sep + strings.ToLower(g))
		}
		sp.group = uint32(c.Len())
		c.WriteString(sep + strings.ToLower(p.Desc))
		sp.end = uint32(c.Len())
		c.WriteString(sep)

		for _, pr := range p.Provides {
			if name := depName(pr); name != "" && name != p.Name {
				ix.providers[name] = append(ix.providers[name], p)
			}
		}
		seen := map[string]bool{}
		for _, d := range p.Depends {
			name := depName(d)
			if !seen[name] {
				seen[name] = true
				ix.requiredBy[name] = append(ix.requiredBy[name], p)
			}
		}
	}
	ix.corpus = c.String()
	return ix
}

// interner keeps one copy of each distinct string.
type interner map[string]string

func (in interner) one(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	in[s] = s
	return s
}

func (in interner) all(l []string) {
	for i, s := range l {
		l[i] = in.one(s)
	}
}

// repoPackages returns repo's packages as database entries, to carry them into a new
// index when the repo's database cannot be read.
func (ix *Index) repoPackages(repo string) []repodb.Package {
	var out []repodb.Package
	for _, p := range ix.pkgs {
		if p.Repo == repo {
			out = append(out, p.Package)
		}
	}
	return out
}

// RepoLen is the number of packages in repo.
func (ix *Index) RepoLen(repo string) int {
	n := 0
	for _, p := range ix.pkgs {
		if p.Repo == repo {
			n++
		}
	}
	return n
}

// Len is the number of packages.
func (ix *Index) Len() int { return len(ix.pkgs) }

// Each calls f with every package, in repo order then by name (the settings page's
// estimate of what switching mirror.packages would move).
func (ix *Index) Each(f func(*Package)) {
	for _, p := range ix.pkgs {
		f(p)
	}
}

// Get returns repo/name, or nil.
func (ix *Index) Get(repo, name string) *Package { return ix.byKey[repo+"/"+name] }

// Satisfier is the package that satisfies the dependency dep ("glibc>=2.38", "sh",
// "libfoo.so=1-64"), as pacman picks one: a package of that name in the first repo that
// has one, else the first package (repo order, then name) that provides it. The version
// constraint is not checked here: the page links to what is there and Meets says whether
// it fits. Nil when no indexed repo has it (a dependency on a repo this mirror does not
// carry, or a broken one).
func (ix *Index) Satisfier(dep string) *Package {
	name := depName(dep)
	if name == "" {
		return nil
	}
	for _, r := range ix.Repos {
		if p := ix.byKey[r+"/"+name]; p != nil {
			return p
		}
	}
	if ps := ix.providers[name]; len(ps) > 0 {
		return ps[0]
	}
	return nil
}

// Meets tells whether p satisfies dep's version constraint as pacman would (repodb.Vercmp),
// and the version it compared: p's own when dep names it, else that of p's provision of
// the name ("" when p provides it without a version, which meets no constraint). A
// dependency without a constraint is always met.
func Meets(dep string, p *Package) (have string, ok bool) {
	dep, _, _ = strings.Cut(dep, ": ") // an optdepend's reason
	i := strings.IndexAny(dep, "<>=")
	if i < 0 {
		return p.Version, true
	}
	name, op, want := strings.TrimSpace(dep[:i]), dep[i:i+1], dep[i+1:]
	if strings.HasPrefix(want, "=") {
		op, want = op+"=", want[1:]
	}
	want = strings.TrimSpace(want)
	if p.Name == name {
		have = p.Version
	} else {
		for _, pr := range p.Provides {
			if depName(pr) == name {
				if _, v, ok := strings.Cut(pr, "="); ok {
					have = v
				}
				break
			}
		}
	}
	if have == "" {
		return "", false
	}
	c := repodb.Vercmp(have, want)
	switch op {
	case ">=":
		return have, c >= 0
	case "<=":
		return have, c <= 0
	case ">":
		return have, c > 0
	case "<":
		return have, c < 0
	default: // "="
		return have, c == 0
	}
}

// RequiredBy lists the packages (any repo) whose depends name p or one of its provisions,
// as pacman's "Required By" does.
func (ix *Index) RequiredBy(p *Package) []*Package {
	seen := map[*Package]bool{}
	var out []*Package
	add := func(name string) {
		for _, q := range ix.requiredBy[name] {
			if !seen[q] && q != p {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	add(p.Name)
	for _, pr := range p.Provides {
		add(depName(pr))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].order != out[j].order {
			return out[i].order < out[j].order
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Query is a search.
type Query struct {
	Text    string // terms separated by spaces
	Repo    string // "" for all
	Arch    string // "" for all; "x86_64" or "any"
	Page    int    // from 1
	PerPage int
}

// Query limits: long enough for any real search, short enough to bound the work.
const (
	MaxQueryLen = 200
	MaxTerms    = 10
)

// ErrBadQuery is a query the user must change (empty, too long, too many terms).
var ErrBadQuery = errors.New("bad query")

// Result is one page of hits.
type Result struct {
	Count    int
	Page     int
	NumPages int
	Limit    int
	Results  []*Package
}

// Terms splits and validates a query's text.
func Terms(text string) ([]string, error) {
	if len(text) > MaxQueryLen {
		return nil, fmt.Errorf("%w: longer than %d characters", ErrBadQuery, MaxQueryLen)
	}
	if strings.ContainsFunc(text, func(r rune) bool { return r < ' ' && r != '\t' && r != '\n' }) {
		return nil, fmt.Errorf("%w: control characters", ErrBadQuery)
	}
	terms := strings.Fields(strings.ToLower(text))
	if len(terms) == 0 {
		return nil, fmt.Errorf("%w: empty; give one or more words", ErrBadQuery)
	}
	if len(terms) > MaxTerms {
		return nil, fmt.Errorf("%w: more than %d words", ErrBadQuery, MaxTerms)
	}
	return terms, nil
}

// Match tiers, best first.
const (
	tierExact uint8 = iota
	tierPrefix
	tierName
	tierProvides
	tierGroup
	tierDesc
	noMatch
)

// tiers sets, for each package, how term matches it the way pacman -Ss matches (name,
// description, provides, groups; case-insensitive), ranked for people. It is one scan of
// the corpus: the leftmost hit inside a package is its best tier, so the scan then jumps
// to the next package.
func (ix *Index) tiers(term string, out []uint8) {
	for i := range out {
		out[i] = noMatch
	}
	from, i := 0, 0
	for i < len(ix.spans) {
		j := strings.Index(ix.corpus[from:], term)
		if j < 0 {
			return
		}
		at := uint32(from + j)
		// Move to the package holding the hit (hits come in order, so walk forward).
		for i < len(ix.spans) && ix.spans[i].end < at+uint32(len(term)) {
			i++
		}
		if i == len(ix.spans) {
			return
		}
		sp := ix.spans[i]
		if at >= sp.start {
			out[i] = sp.tierAt(at, len(term))
		}
		// Next package (a hit before sp.start spanned the previous separator: impossible,
		// terms carry no control characters, but skipping it is harmless).
		from = int(sp.end) + 1
		i++
	}
}

// tierAt is the tier of a hit of n bytes at corpus offset at inside this package.
func (sp span) tierAt(at uint32, n int) uint8 {
	switch {
	case at == sp.start && sp.start+uint32(n) == sp.name:
		return tierExact
	case at == sp.start:
		return tierPrefix
	case at < sp.name:
		return tierName
	case at < sp.prov:
		return tierProvides
	case at < sp.group:
		return tierGroup
	}
	return tierDesc
}

// tierOf is term's tier in package i alone.
func (ix *Index) tierOf(i int, term string) uint8 {
	sp := ix.spans[i]
	j := strings.Index(ix.corpus[sp.start:sp.end], term)
	if j < 0 {
		return noMatch
	}
	return sp.tierAt(sp.start+uint32(j), len(term))
}

// Search finds the packages every term matches, best first: exact name, name prefix, name
// contains, provides, groups, description (a package ranks by its best-matching term); then
// repo order, then name.
func (ix *Index) Search(q Query) (Result, error) {
	terms, err := Terms(q.Text)
	if err != nil {
		return Result{}, err
	}
	if q.PerPage <= 0 {
		q.PerPage = 50
	}
	// Scan the corpus for the longest term (likely the rarest), then check the others only
	// in the packages it matched, as pacman narrows its list term by term.
	sort.SliceStable(terms, func(i, j int) bool { return len(terms[i]) > len(terms[j]) })
	best := make([]uint8, len(ix.pkgs))
	ix.tiers(terms[0], best)
	for i, v := range best {
		for _, term := range terms[1:] {
			if v == noMatch {
				break
			}
			if t := ix.tierOf(i, term); t == noMatch {
				v = noMatch
			} else {
				v = min(v, t)
			}
		}
		best[i] = v
	}
	// Bucket by tier; pkgs is in repo/name order already, so each bucket is too.
	var buckets [noMatch][]int32
	for i, v := range best {
		if v == noMatch {
			continue
		}
		p := ix.pkgs[i]
		if q.Repo != "" && p.Repo != q.Repo || q.Arch != "" && p.Arch != q.Arch {
			continue
		}
		buckets[v] = append(buckets[v], int32(i))
	}
	count := 0
	for _, b := range buckets {
		count += len(b)
	}
	res := Result{Count: count, Limit: q.PerPage, NumPages: max(1, (count+q.PerPage-1)/q.PerPage), Page: max(q.Page, 1)}
	skip := (res.Page - 1) * q.PerPage
	for _, b := range buckets {
		for _, i := range b {
			if skip > 0 {
				skip--
				continue
			}
			if len(res.Results) == q.PerPage {
				return res, nil
			}
			res.Results = append(res.Results, ix.pkgs[i])
		}
	}
	return res, nil
}

// Change is one package that differs between two indexes.
type Change struct {
	Repo       string `json:"repo"`
	Name       string `json:"pkgname"`
	OldVersion string `json:"old_version,omitempty"`
	NewVersion string `json:"new_version,omitempty"`
}

// Changes is what a sync changed in the databases.
type Changes struct {
	Added   []Change `json:"added"`
	Updated []Change `json:"updated"`
	Removed []Change `json:"removed"`
	// The whole counts, when Bounded cut the lists.
	NAdded   int `json:"n_added,omitempty"`
	NUpdated int `json:"n_updated,omitempty"`
	NRemoved int `json:"n_removed,omitempty"`
}

// Empty reports no change.
func (c Changes) Empty() bool { return c.AddedN()+c.UpdatedN()+c.RemovedN() == 0 }

// AddedN, UpdatedN and RemovedN count the changes, also those Bounded left out.
func (c Changes) AddedN() int   { return max(c.NAdded, len(c.Added)) }
func (c Changes) UpdatedN() int { return max(c.NUpdated, len(c.Updated)) }
func (c Changes) RemovedN() int { return max(c.NRemoved, len(c.Removed)) }

// Bounded keeps at most n entries of each list, and the whole counts: a sync's record
// stays a few KiB however much the upstream changed (a first sync adds everything).
func (c Changes) Bounded(n int) Changes {
	c.NAdded, c.NUpdated, c.NRemoved = c.AddedN(), c.UpdatedN(), c.RemovedN()
	c.Added, c.Updated, c.Removed = c.Added[:min(n, len(c.Added))], c.Updated[:min(n, len(c.Updated))], c.Removed[:min(n, len(c.Removed))]
	return c
}

// Diff lists what changed from old to new.
func Diff(old, new *Index) Changes {
	c := Changes{Added: []Change{}, Updated: []Change{}, Removed: []Change{}}
	for _, p := range new.pkgs {
		o := old.Get(p.Repo, p.Name)
		switch {
		case o == nil:
			c.Added = append(c.Added, Change{Repo: p.Repo, Name: p.Name, NewVersion: p.Version})
		case o.Version != p.Version:
			c.Updated = append(c.Updated, Change{Repo: p.Repo, Name: p.Name, OldVersion: o.Version, NewVersion: p.Version})
		}
	}
	for _, o := range old.pkgs {
		if new.Get(o.Repo, o.Name) == nil {
			c.Removed = append(c.Removed, Change{Repo: o.Repo, Name: o.Name, OldVersion: o.Version})
		}
	}
	return c
}
