package mirrorlists

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// realDir holds real archlinux.org mirrorlists and mirror-status captures (see
// shared/data/arch-real/README.md beside the repository). Tests read them in place.
var realDir = filepath.Join("..", "..", "shared", "data", "arch-real")

func realFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(realDir, name))
	if err != nil {
		t.Fatalf("real Arch data missing: %v (these tests read archlinux.org captures in shared/data/arch-real beside the repository; see its README)", err)
	}
	return data
}

func realMirrorlist(t *testing.T, name string) []Server {
	t.Helper()
	servers, err := ParseMirrorlist(bytes.NewReader(realFile(t, name)), name)
	if err != nil {
		t.Fatalf("ParseMirrorlist(%s): %v", name, err)
	}
	return servers
}

func realStatus(t testing.TB, name string) *Status {
	t.Helper()
	s, err := ParseStatus(realFile(t, name))
	if err != nil {
		t.Fatalf("ParseStatus(%s): %v", name, err)
	}
	return s
}

func TestRealMirrorlists(t *testing.T) {
	tests := []struct {
		file                 string
		servers, countries   int // countries counts Worldwide too
		active               []string
		http, https, generic int
	}{
		// The data README says "72 countries + Worldwide": it counts the 73 "## " lines,
		// two of which are the banner. The status JSON of 2023 has 72 countries.
		{file: "mirrorlist-all.txt", servers: 739, countries: 71, http: 407, https: 332,
			active: []string{"https://america.mirror.pkgbuild.com/$repo/os/$arch"}},
		{file: "mirrorlist-all-2021-04-05.txt", servers: 599, countries: 69, http: 350, https: 249},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			servers := realMirrorlist(t, tt.file)
			if len(servers) != tt.servers {
				t.Errorf("%d servers, want %d", len(servers), tt.servers)
			}
			countries := Countries(servers)
			if len(countries) != tt.countries || countries[0] != "Worldwide" {
				t.Errorf("%d countries starting %q, want %d starting with Worldwide: %q", len(countries), countries[0], tt.countries, countries)
			}
			var active []string
			schemes := map[string]int{}
			for _, s := range servers {
				schemes[s.Scheme]++
				if s.Active {
					active = append(active, s.URL)
					if s.Country != "United States" {
						t.Errorf("active server %s in %q, want United States", s.URL, s.Country)
					}
				}
				if s.Base+"$repo/os/$arch" != s.URL {
					t.Errorf("Base %q + $repo/os/$arch != URL %q", s.Base, s.URL)
				}
				if s.Country == "" || s.Host == "" || !strings.Contains(s.URL, "://"+s.Host) {
					t.Errorf("server %+v: missing country or wrong host", s)
				}
			}
			if !slices.Equal(active, tt.active) {
				t.Errorf("active servers %q, want %q", active, tt.active)
			}
			if schemes["http"] != tt.http || schemes["https"] != tt.https || len(schemes) != 2 {
				t.Errorf("schemes %v, want http %d, https %d", schemes, tt.http, tt.https)
			}
		})
	}
}

// Both captures say "Czechia"; older ones and users say "Czech Republic".
func TestRealForCountryRenamed(t *testing.T) {
	for _, file := range []string{"mirrorlist-all.txt", "mirrorlist-all-2021-04-05.txt"} {
		servers := realMirrorlist(t, file)
		var first []Server
		for _, name := range []string{"Czechia", "Czech Republic", "czech_republic", "CZECHIA"} {
			got, err := ForCountry(servers, name)
			if err != nil {
				t.Fatalf("%s: ForCountry(%q): %v", file, name, err)
			}
			if first == nil {
				first = got
			}
			if len(got) < 5 || !slices.Equal(got, first) {
				t.Errorf("%s: ForCountry(%q) gave %d servers, want the same %d as Czechia", file, name, len(got), len(first))
			}
		}
		if got, err := ForCountry(servers, "Reunion"); file == "mirrorlist-all.txt" && (err != nil || len(got) == 0) {
			t.Errorf("%s: ForCountry(Reunion) = %d, %v; want the Réunion servers", file, len(got), err)
		}
	}
}

func TestRealStatus(t *testing.T) {
	tests := []struct {
		file                                    string
		urls, rsync, nullSync, negDelay, noCtry int
		lastCheck                               string
	}{
		{"mirrors-status.json", 1105, 302, 165, 3, 1, "2023-06-28T19:09:25.337Z"},
		{"mirrors-status-2022-07-27.json", 1008, 272, 119, 0, 4, "2022-07-27T06:58:51.165Z"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			s := realStatus(t, tt.file)
			var rsync, nullSync, negDelay, noCountry int
			for _, u := range s.URLs {
				if u.Protocol == "rsync" {
					rsync++
				}
				if u.LastSync == nil {
					nullSync++
					if u.Delay != nil || u.Score != nil {
						t.Errorf("%s: null last_sync but delay or score set", u.URL)
					}
				}
				if u.Delay != nil && *u.Delay < 0 {
					negDelay++
				}
				if u.Country == "" {
					noCountry++
				}
				if u.CompletionPct < 0 || u.CompletionPct > 1 || u.URL == "" || u.Details == "" {
					t.Errorf("odd entry %+v", u)
				}
			}
			got := []int{len(s.URLs), rsync, nullSync, negDelay, noCountry}
			want := []int{tt.urls, tt.rsync, tt.nullSync, tt.negDelay, tt.noCtry}
			if !slices.Equal(got, want) {
				t.Errorf("urls, rsync, null last_sync, negative delay, empty country = %v, want %v", got, want)
			}
			if lc := s.LastCheck.Format(time.RFC3339Nano); lc != tt.lastCheck || s.Version != 3 || s.Cutoff != 86400 {
				t.Errorf("last_check %s version %d cutoff %d", lc, s.Version, s.Cutoff)
			}
		})
	}
}

// Every rsync URL archlinux.org listed must reach the benchmark as some candidate's
// RsyncURL in its country, whatever its module path.
func TestRealRsyncURLsBecomeCandidates(t *testing.T) {
	snapshots := map[string]*Status{
		"2023-06-28": realStatus(t, "mirrors-status.json"),
		"2022-07-27": realStatus(t, "mirrors-status-2022-07-27.json"),
	}
	type key struct{ snapshot, country string }
	cands := map[key]map[string]bool{}
	rsyncOf := func(k key) map[string]bool {
		if cands[k] == nil {
			cands[k] = map[string]bool{}
			for _, c := range CandidatesFromStatus(snapshots[k.snapshot], k.country) {
				if c.RsyncURL != "" {
					cands[k][c.RsyncURL] = true
				}
			}
		}
		return cands[k]
	}
	sc := bufio.NewScanner(bytes.NewReader(realFile(t, "rsync-urls.tsv")))
	checked := map[string]int{}
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			t.Fatalf("rsync-urls.tsv: odd line %q", sc.Text())
		}
		rsyncURL, code, country := f[0], f[1], f[2]
		found := false
		for _, snap := range strings.Split(f[3], ",") {
			// by name, and by code (the 2022 capture lists one US host without a country)
			found = found || rsyncOf(key{snap, country})[rsyncURL] || rsyncOf(key{snap, code})[rsyncURL]
		}
		if !found {
			t.Errorf("%s (%s) is no candidate's RsyncURL in %s", rsyncURL, country, f[3])
		}
		checked[country]++
	}
	for _, c := range []string{"Germany", "United States", "France", "Finland", "Czechia"} {
		if checked[c] == 0 {
			t.Errorf("rsync-urls.tsv has no %s lines: the sample lost its point", c)
		}
	}
	if len(checked) < 50 {
		t.Errorf("only %d countries checked", len(checked))
	}
}

func TestRealCandidates(t *testing.T) {
	s := realStatus(t, "mirrors-status.json")
	us := CandidatesFromStatus(s, "United States")
	byCode := CandidatesFromStatus(s, "us")
	if len(us) < 80 || len(us) != len(byCode) {
		t.Fatalf("United States: %d candidates, by code %d", len(us), len(byCode))
	}
	find := func(cs []Candidate, host string) *Candidate {
		for i := range cs {
			if cs[i].Host == host {
				return &cs[i]
			}
		}
		return nil
	}
	// gtlib serves http from www. and rsync from rsync.: one mirror on archlinux.org.
	if c := find(us, "www.gtlib.gatech.edu"); c == nil || c.RsyncURL != "rsync://rsync.gtlib.gatech.edu/archlinux/" || c.HTTPURL != "http://www.gtlib.gatech.edu/pub/archlinux/" {
		t.Errorf("gtlib candidate %+v, want www http paired with rsync.gtlib rsync", c)
	}
	if c := find(us, "rsync.gtlib.gatech.edu"); c != nil {
		t.Errorf("rsync.gtlib.gatech.edu left as its own candidate: %+v", c)
	}
	cz := CandidatesFromStatus(s, "Czech Republic")
	c := find(cz, "ftp.sh.cvut.cz")
	if c == nil || c.Delay == nil || *c.Delay != -8 || c.CheckedURL != c.RsyncURL || c.HTTPURL != "https://ftp.sh.cvut.cz/arch/" || c.RsyncURL != "rsync://ftp.sh.cvut.cz/arch/" {
		t.Errorf("ftp.sh.cvut.cz candidate %+v: want https and rsync, the rsync entry's negative delay -8", c)
	}
	ww := CandidatesFromStatus(s, "Worldwide")
	if len(ww) != 1 || ww[0].Host != "geo.mirror.pkgbuild.com" || ww[0].RsyncURL != "" {
		t.Errorf("Worldwide candidates %+v", ww)
	}
	kept, dropped := Filter(us, time.Hour)
	if len(kept) == 0 || len(dropped) == 0 || len(kept)+len(dropped) != len(us) {
		t.Errorf("Filter: kept %d dropped %d of %d", len(kept), len(dropped), len(us))
	}
}

// A user who pastes archlinux.org's German section into Germany.txt adds nothing new.
func TestRealUserFileMergesWithStatus(t *testing.T) {
	de, err := ForCountry(realMirrorlist(t, "mirrorlist-all.txt"), "Germany")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("## Germany\n")
	for _, s := range de {
		b.WriteString("#Server = " + s.URL + "\n")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Germany.txt"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	user, err := FromMirrorlistDir(dir, "germany")
	if err != nil {
		t.Fatal(err)
	}
	status := CandidatesFromStatus(realStatus(t, "mirrors-status.json"), "Germany")
	merged := Merge(status, user)
	var added []string
	for _, c := range merged[len(status):] {
		added = append(added, c.Host)
	}
	// The list is two months older than the status: a few hosts may have gone.
	if len(user) < 50 || len(added) > 5 {
		t.Errorf("%d user candidates; %d not in the status: %q", len(user), len(added), added)
	}
}
