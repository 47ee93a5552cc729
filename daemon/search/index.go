package search

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/amwi/amwi/daemon/repodb"
)

// Package is one package in the index: the database entry plus what search needs.
type Package struct {
	Repo string
	repodb.Package
	Epoch, Pkgver, Pkgrel string

	// Lower-cased copies for matching, built once.
	lname, ldesc string
	lprov        []string // provides, names only (no version constraint)
	lgroups      []string
	order        int // position of Repo in the configured repo order
}

// Index is an immutable snapshot of every configured repo's packages. A new one is built
// and swapped in whole, so a search never sees half of one.
type Index struct {
	Repos []string
	Built time.Time
	pkgs  []*Package // sorted: repo order, then name
	byKey map[string]*Package
	// requiredBy maps a name (package or provision) to the packages depending on it.
	requiredBy map[string][]*Package
}

// depName strips a version constraint or an optdepend reason: "glibc>=2.38" → "glibc",
// "python: for scripts" → "python".
func depName(d string) string {
	if i := strings.IndexAny(d, "<>=:"); i >= 0 {
		d = d[:i]
	}
	return strings.TrimSpace(d)
}

// Build indexes the packages of each repo; repos gives their order (core, extra, …).
func Build(repos []string, dbs map[string][]repodb.Package, now time.Time) *Index {
	ix := &Index{Repos: repos, Built: now, byKey: map[string]*Package{}, requiredBy: map[string][]*Package{}}
	n := 0
	for _, r := range repos {
		n += len(dbs[r])
	}
	ix.pkgs = make([]*Package, 0, n)
	for order, r := range repos {
		for _, rp := range dbs[r] {
			// Signatures are the bulk of a v1 database and nobody searches them.
			rp.PGPSig, rp.MD5Sum = "", ""
			p := &Package{Repo: r, Package: rp, order: order, lname: strings.ToLower(rp.Name), ldesc: strings.ToLower(rp.Desc)}
			p.Epoch, p.Pkgver, p.Pkgrel = repodb.SplitVersion(rp.Version)
			for _, pr := range rp.Provides {
				p.lprov = append(p.lprov, strings.ToLower(depName(pr)))
			}
			for _, g := range rp.Groups {
				p.lgroups = append(p.lgroups, strings.ToLower(g))
			}
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
	for _, p := range ix.pkgs {
		seen := map[string]bool{}
		for _, d := range p.Depends {
			name := depName(d)
			if !seen[name] {
				seen[name] = true
				ix.requiredBy[name] = append(ix.requiredBy[name], p)
			}
		}
	}
	return ix
}

// Len is the number of packages.
func (ix *Index) Len() int { return len(ix.pkgs) }

// Get returns repo/name, or nil.
func (ix *Index) Get(repo, name string) *Package { return ix.byKey[repo+"/"+name] }

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
	tierExact = iota
	tierPrefix
	tierName
	tierProvides
	tierGroup
	tierDesc
	noMatch
)

// tier says how term matches p: the way pacman -Ss matches (name, description, provides,
// groups; case-insensitive), ranked for people.
func (p *Package) tier(term string) int {
	switch {
	case p.lname == term:
		return tierExact
	case strings.HasPrefix(p.lname, term):
		return tierPrefix
	case strings.Contains(p.lname, term):
		return tierName
	}
	for _, pr := range p.lprov {
		if strings.Contains(pr, term) {
			return tierProvides
		}
	}
	for _, g := range p.lgroups {
		if strings.Contains(g, term) {
			return tierGroup
		}
	}
	if strings.Contains(p.ldesc, term) {
		return tierDesc
	}
	return noMatch
}

// Search finds the packages every term matches, best first: exact name, name prefix, name
// contains, provides, groups, description; then repo order, then name.
func (ix *Index) Search(q Query) (Result, error) {
	terms, err := Terms(q.Text)
	if err != nil {
		return Result{}, err
	}
	if q.PerPage <= 0 {
		q.PerPage = 50
	}
	type hit struct {
		p    *Package
		best int
		sum  int
	}
	var hits []hit
	for _, p := range ix.pkgs {
		if q.Repo != "" && p.Repo != q.Repo || q.Arch != "" && p.Arch != q.Arch {
			continue
		}
		h := hit{p: p, best: noMatch}
		for _, t := range terms {
			tr := p.tier(t)
			if tr == noMatch {
				h.best = -1
				break
			}
			h.best = min(h.best, tr)
			h.sum += tr
		}
		if h.best >= 0 {
			hits = append(hits, h)
		}
	}
	// pkgs is already in repo/name order, so a stable sort on the tiers keeps it.
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].best != hits[j].best {
			return hits[i].best < hits[j].best
		}
		return hits[i].sum < hits[j].sum
	})
	res := Result{Count: len(hits), Limit: q.PerPage, NumPages: max(1, (len(hits)+q.PerPage-1)/q.PerPage), Page: max(q.Page, 1)}
	from := (res.Page - 1) * q.PerPage
	for i := from; i < len(hits) && i < from+q.PerPage; i++ {
		res.Results = append(res.Results, hits[i].p)
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
}

// Empty reports no change.
func (c Changes) Empty() bool { return len(c.Added)+len(c.Updated)+len(c.Removed) == 0 }

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
