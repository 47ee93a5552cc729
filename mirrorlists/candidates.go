package mirrorlists

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Candidate is one mirror host for the benchmark: its http(s) URL and its rsync URL.
type Candidate struct {
	Host        string // the http(s) host; the rsync host for rsync-only candidates
	Country     string
	CountryCode string
	HTTPURL     string // https preferred, else http; the mirror root with trailing slash; "" for rsync only
	RsyncURL    string // "" when the host has no rsync entry (then it cannot be an upstream)

	// From the status JSON, for the URL AMWI would sync from: the rsync entry when the
	// host has one, else the http(s) one. Zero and nil when the status lacks the host.
	CheckedURL    string     // the entry these figures describe
	LastSync      *time.Time // nil when unknown
	CompletionPct float64    // 0..1, the share of archlinux.org's recent checks that passed
	Delay         *int64     // seconds behind the master mirror
	Score         *float64   // lower is better
	Active        bool       // true also for candidates only a user file names

	Source string // "status", a user file's name, or both: "status, Germany.txt"
}

// SourceStatus is Candidate.Source for candidates from the status JSON.
const SourceStatus = "status"

// FromStatus reports whether the candidate's figures come from the status JSON. Only
// those are judged by Filter: a mirror a user lists has no figures, not bad ones.
func (c Candidate) FromStatus() bool { return c.CheckedURL != "" }

// CandidatesFromStatus groups the status entries of country (its name, compared as
// SameCountry does, or its two-letter code; "Worldwide" is the entries with no country;
// "" is every country) by host, one entry per protocol. A host's https URL, else its http
// one, is HTTPURL; its rsync URL is RsyncURL, module path kept as given (/archlinux/,
// /arch/, /pub/archlinux/, ...) with a trailing slash. ftp entries are left out;
// rsync-only hosts are kept with HTTPURL "" (the benchmark then checks only rsync). The
// status figures are the rsync entry's, when there is one: a mirror whose web side is
// fine but whose rsync fails half of archlinux.org's checks is a poor upstream.
//
// Some mirrors serve rsync from another name (www.gtlib.gatech.edu and
// rsync.gtlib.gatech.edu). When archlinux.org lists both under one mirror (the NAME of
// their details URL) and that mirror has exactly one host without rsync and one rsync-only
// host in the country, the two are paired into one candidate named by the http host.
// Candidates come sorted by host.
func CandidatesFromStatus(s *Status, country string) []Candidate {
	if s == nil {
		return nil
	}
	type group struct {
		host, mirror       string
		http, https, rsync *StatusURL
	}
	groups := map[string]*group{}
	for i := range s.URLs {
		e := &s.URLs[i]
		if !statusCountryMatches(e, country) {
			continue
		}
		u, err := url.Parse(e.URL)
		if err != nil || u.Hostname() == "" {
			continue
		}
		proto := e.Protocol
		if proto == "" {
			proto = strings.ToLower(u.Scheme)
		}
		host := strings.ToLower(u.Hostname())
		g := groups[host]
		if g == nil {
			g = &group{host: host, mirror: mirrorName(e.Details)}
			groups[host] = g
		}
		slot := map[string]**StatusURL{"http": &g.http, "https": &g.https, "rsync": &g.rsync}[proto]
		if slot != nil && *slot == nil { // one entry per protocol; keep the first if not
			*slot = e
		}
	}

	// Pair an rsync-only host with the one host of the same mirror that lacks rsync.
	type pairing struct{ web, rsync []*group }
	byMirror := map[string]*pairing{}
	for _, g := range groups {
		if g.mirror == "" {
			continue
		}
		p := byMirror[g.mirror]
		if p == nil {
			p = &pairing{}
			byMirror[g.mirror] = p
		}
		switch web := g.http != nil || g.https != nil; {
		case web && g.rsync == nil:
			p.web = append(p.web, g)
		case !web && g.rsync != nil:
			p.rsync = append(p.rsync, g)
		}
	}
	for _, p := range byMirror {
		if len(p.web) == 1 && len(p.rsync) == 1 {
			p.web[0].rsync = p.rsync[0].rsync
			delete(groups, p.rsync[0].host)
		}
	}

	out := make([]Candidate, 0, len(groups))
	for _, g := range groups {
		web := g.https
		if web == nil {
			web = g.http
		}
		if web == nil && g.rsync == nil {
			continue // ftp only
		}
		c := Candidate{Host: g.host, Source: SourceStatus}
		figures := g.rsync
		if web != nil {
			c.HTTPURL = withSlash(web.URL)
			figures = cmp.Or(figures, web)
		}
		if g.rsync != nil {
			c.RsyncURL = withSlash(g.rsync.URL)
		}
		c.Country, c.CountryCode = figures.Country, figures.CountryCode
		if c.Country == "" {
			c.Country = "Worldwide"
		}
		c.setFigures(figures)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Candidate) int { return cmp.Compare(a.Host, b.Host) })
	return out
}

func (c *Candidate) setFigures(e *StatusURL) {
	c.CheckedURL, c.LastSync, c.CompletionPct, c.Delay, c.Score, c.Active = e.URL, e.LastSync, e.CompletionPct, e.Delay, e.Score, e.Active
}

func statusCountryMatches(e *StatusURL, country string) bool {
	switch {
	case country == "":
		return true
	case e.Country == "":
		return countryKey(country) == "worldwide"
	case len(country) == 2 && strings.EqualFold(country, e.CountryCode):
		return true
	}
	return SameCountry(e.Country, country)
}

// mirrorName takes NAME from https://archlinux.org/mirrors/NAME/ID/.
func mirrorName(details string) string {
	_, rest, ok := strings.Cut(details, "/mirrors/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

func withSlash(s string) string {
	if s == "" || strings.HasSuffix(s, "/") {
		return s
	}
	return s + "/"
}

// Filter drops inactive, incomplete (CompletionPct < 1) and long-delayed (Delay >
// maxDelay; maxDelay <= 0 checks no delay) candidates; dropped maps each one's Host to
// the reason. Candidates that only user files name are kept: the status says nothing
// about them.
func Filter(cs []Candidate, maxDelay time.Duration) (kept []Candidate, dropped map[string]string) {
	dropped = map[string]string{}
	for _, c := range cs {
		why := ""
		switch {
		case !c.FromStatus():
		case !c.Active:
			why = c.CheckedURL + " is marked inactive on archlinux.org"
		case c.CompletionPct < 1:
			why = fmt.Sprintf("%s passed only %.1f%% of archlinux.org's recent checks", c.CheckedURL, 100*c.CompletionPct)
		case maxDelay > 0 && c.Delay != nil && time.Duration(*c.Delay)*time.Second > maxDelay:
			why = fmt.Sprintf("%s is %s behind the master mirror (the limit is %s)", c.CheckedURL, time.Duration(*c.Delay)*time.Second, maxDelay)
		}
		if why != "" {
			dropped[c.Host] = why
			continue
		}
		kept = append(kept, c)
	}
	return kept, dropped
}

// FromMirrorlistDir reads the user's country files in dir, named after their country
// with underscores for spaces ("United_States.txt", "Czechia.txt"; the extension does not
// matter, hidden files and editor backups ending in "~" are skipped), and returns the
// candidates of country: http(s) servers give HTTPURL (https preferred), rsync ones
// RsyncURL, grouped by host; commented-out servers count, ftp ones do not. The file
// name, not any "## header" in it, gives the country. A missing dir means no user files.
func FromMirrorlistDir(dir, country string) ([]Candidate, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mirrorlists dir: %w", err)
	}
	var out []Candidate
	index := map[string]int{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
			continue
		}
		fileCountry := strings.ReplaceAll(strings.TrimSuffix(name, filepath.Ext(name)), "_", " ")
		if !SameCountry(fileCountry, country) {
			continue
		}
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			continue // a folder, or a dangling link
		}
		servers, err := readMirrorlist(path)
		if err != nil {
			return nil, err
		}
		for _, s := range servers {
			if s.Scheme == "ftp" {
				continue
			}
			i, ok := index[s.Host]
			if !ok {
				i = len(out)
				index[s.Host] = i
				out = append(out, Candidate{Host: s.Host, Country: fileCountry, Active: true, Source: name})
			}
			c := &out[i]
			switch s.Scheme {
			case "https":
				if !strings.HasPrefix(c.HTTPURL, "https:") {
					c.HTTPURL = s.Base
				}
			case "http":
				if c.HTTPURL == "" {
					c.HTTPURL = s.Base
				}
			case "rsync":
				if c.RsyncURL == "" {
					c.RsyncURL = s.Base
				}
			}
		}
	}
	return out, nil
}

func readMirrorlist(path string) ([]Server, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mirrorlist: %w", err)
	}
	defer f.Close()
	return ParseMirrorlist(f, path)
}

// Merge combines candidates of a (usually the status) and b (usually user files) by host:
// a's come first and keep what they have; a candidate of b whose http or rsync host is
// one of a's fills in the URLs it lacks (and the status figures, when only b has them)
// and adds its Source. The rest of b follows in order.
func Merge(a, b []Candidate) []Candidate {
	out := slices.Clone(a)
	byHost := map[string]int{}
	note := func(i int) {
		for _, h := range candidateHosts(out[i]) {
			if _, ok := byHost[h]; !ok {
				byHost[h] = i
			}
		}
	}
	for i := range out {
		note(i)
	}
	for _, c := range b {
		i, found := -1, false
		for _, h := range candidateHosts(c) {
			if i, found = byHost[h]; found {
				break
			}
		}
		if !found {
			out = append(out, c)
			note(len(out) - 1)
			continue
		}
		m := &out[i]
		if m.HTTPURL == "" {
			m.HTTPURL = c.HTTPURL
		}
		if m.RsyncURL == "" {
			m.RsyncURL = c.RsyncURL
		}
		if m.Country == "" {
			m.Country = c.Country
		}
		if m.CountryCode == "" {
			m.CountryCode = c.CountryCode
		}
		if !m.FromStatus() && c.FromStatus() {
			m.CheckedURL, m.LastSync, m.CompletionPct, m.Delay, m.Score, m.Active = c.CheckedURL, c.LastSync, c.CompletionPct, c.Delay, c.Score, c.Active
		}
		for _, src := range strings.Split(c.Source, ", ") {
			if src != "" && !slices.Contains(strings.Split(m.Source, ", "), src) {
				m.Source = strings.TrimPrefix(m.Source+", "+src, ", ")
			}
		}
		note(i)
	}
	return out
}

// candidateHosts lists the host names a candidate answers to.
func candidateHosts(c Candidate) []string {
	var hosts []string
	if c.Host != "" {
		hosts = append(hosts, strings.ToLower(c.Host))
	}
	for _, raw := range []string{c.HTTPURL, c.RsyncURL} {
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
			hosts = append(hosts, strings.ToLower(u.Hostname()))
		}
	}
	return hosts
}
