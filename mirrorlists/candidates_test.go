package mirrorlists

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCandidatesFromStatus(t *testing.T) {
	old := time.Date(2023, 6, 28, 10, 0, 0, 0, time.UTC)
	recent := old.Add(time.Hour)
	de := func(url, proto, details string) StatusURL {
		return StatusURL{URL: url, Protocol: proto, Active: true, CompletionPct: 1, Country: "Germany", CountryCode: "DE",
			LastSync: &recent, Delay: ptr[int64](600), Score: ptr(1.0), Details: details}
	}
	s := &Status{URLs: []StatusURL{
		// all three protocols on one host; the figures are the rsync entry's
		de("http://full.example.de/archlinux/", "http", "https://archlinux.org/mirrors/full/1/"),
		de("https://full.example.de/archlinux/", "https", "https://archlinux.org/mirrors/full/2/"),
		func() StatusURL {
			u := de("rsync://full.example.de/pub/archlinux", "rsync", "https://archlinux.org/mirrors/full/3/")
			u.LastSync, u.Delay, u.Score, u.CompletionPct = &old, ptr[int64](4000), ptr(2.5), 0.9
			return u
		}(),
		// http only
		de("http://web.example.de/arch/", "http", "https://archlinux.org/mirrors/web/4/"),
		// rsync only
		de("rsync://rsynconly.example.de/packages/", "rsync", "https://archlinux.org/mirrors/rsynconly/5/"),
		// ftp only: nothing to benchmark
		de("ftp://ftp.example.de/pub/arch/", "ftp", "https://archlinux.org/mirrors/ftponly/6/"),
		// one mirror, two names: paired
		de("https://www.split.example.de/arch/", "https", "https://archlinux.org/mirrors/split/7/"),
		de("rsync://rsync.split.example.de/arch/", "rsync", "https://archlinux.org/mirrors/split/8/"),
		// one mirror, two web hosts without rsync and one rsync host: ambiguous, not paired
		de("https://a.multi.example.de/", "https", "https://archlinux.org/mirrors/multi/9/"),
		de("https://b.multi.example.de/", "https", "https://archlinux.org/mirrors/multi/10/"),
		de("rsync://r.multi.example.de/arch/", "rsync", "https://archlinux.org/mirrors/multi/11/"),
		// an inactive rsync entry makes the candidate inactive
		de("https://half.example.de/", "https", "https://archlinux.org/mirrors/half/12/"),
		func() StatusURL {
			u := de("rsync://half.example.de/arch/", "rsync", "https://archlinux.org/mirrors/half/13/")
			u.Active = false
			return u
		}(),
		// other countries
		{URL: "https://fr.example.fr/", Protocol: "https", Country: "France", CountryCode: "FR", Active: true, CompletionPct: 1},
		{URL: "https://geo.example.net/", Protocol: "https", Country: "", CountryCode: "", Active: true, CompletionPct: 1},
		{URL: "::bad url", Protocol: "https", Country: "Germany"},
	}}
	want := []Candidate{
		{Host: "a.multi.example.de", CheckedURL: "https://a.multi.example.de/", Country: "Germany", CountryCode: "DE", HTTPURL: "https://a.multi.example.de/", LastSync: &recent, CompletionPct: 1, Delay: ptr[int64](600), Score: ptr(1.0), Active: true, Source: "status"},
		{Host: "b.multi.example.de", CheckedURL: "https://b.multi.example.de/", Country: "Germany", CountryCode: "DE", HTTPURL: "https://b.multi.example.de/", LastSync: &recent, CompletionPct: 1, Delay: ptr[int64](600), Score: ptr(1.0), Active: true, Source: "status"},
		{Host: "full.example.de", CheckedURL: "rsync://full.example.de/pub/archlinux", Country: "Germany", CountryCode: "DE", HTTPURL: "https://full.example.de/archlinux/", RsyncURL: "rsync://full.example.de/pub/archlinux/", LastSync: &old, CompletionPct: 0.9, Delay: ptr[int64](4000), Score: ptr(2.5), Active: true, Source: "status"},
		{Host: "half.example.de", CheckedURL: "rsync://half.example.de/arch/", Country: "Germany", CountryCode: "DE", HTTPURL: "https://half.example.de/", RsyncURL: "rsync://half.example.de/arch/", LastSync: &recent, CompletionPct: 1, Delay: ptr[int64](600), Score: ptr(1.0), Active: false, Source: "status"},
		{Host: "r.multi.example.de", CheckedURL: "rsync://r.multi.example.de/arch/", Country: "Germany", CountryCode: "DE", RsyncURL: "rsync://r.multi.example.de/arch/", LastSync: &recent, CompletionPct: 1, Delay: ptr[int64](600), Score: ptr(1.0), Active: true, Source: "status"},
		{Host: "rsynconly.example.de", CheckedURL: "rsync://rsynconly.example.de/packages/", Country: "Germany", CountryCode: "DE", RsyncURL: "rsync://rsynconly.example.de/packages/", LastSync: &recent, CompletionPct: 1, Delay: ptr[int64](600), Score: ptr(1.0), Active: true, Source: "status"},
		{Host: "web.example.de", CheckedURL: "http://web.example.de/arch/", Country: "Germany", CountryCode: "DE", HTTPURL: "http://web.example.de/arch/", LastSync: &recent, CompletionPct: 1, Delay: ptr[int64](600), Score: ptr(1.0), Active: true, Source: "status"},
		{Host: "www.split.example.de", CheckedURL: "rsync://rsync.split.example.de/arch/", Country: "Germany", CountryCode: "DE", HTTPURL: "https://www.split.example.de/arch/", RsyncURL: "rsync://rsync.split.example.de/arch/", LastSync: &recent, CompletionPct: 1, Delay: ptr[int64](600), Score: ptr(1.0), Active: true, Source: "status"},
	}
	for _, country := range []string{"Germany", "GERMANY", "de", "De"} {
		if got := CandidatesFromStatus(s, country); !reflect.DeepEqual(got, want) {
			t.Errorf("CandidatesFromStatus(%q):\n%s\nwant\n%s", country, dumpCandidates(got), dumpCandidates(want))
		}
	}
	hosts := func(cs []Candidate) (out []string) {
		for _, c := range cs {
			out = append(out, c.Host+"@"+c.Country)
		}
		return out
	}
	for _, tt := range []struct {
		country string
		want    []string
	}{
		{"France", []string{"fr.example.fr@France"}},
		{"fr", []string{"fr.example.fr@France"}},
		{"Worldwide", []string{"geo.example.net@Worldwide"}},
		{"Atlantis", nil},
	} {
		if got := hosts(CandidatesFromStatus(s, tt.country)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CandidatesFromStatus(%q) = %q, want %q", tt.country, got, tt.want)
		}
	}
	if n := len(CandidatesFromStatus(s, "")); n != len(want)+2 {
		t.Errorf(`CandidatesFromStatus("") gave %d, want every country's %d`, n, len(want)+2)
	}
	if CandidatesFromStatus(nil, "Germany") != nil {
		t.Error("nil status gave candidates")
	}
}

func dumpCandidates(cs []Candidate) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("  " + c.Host + " http=" + c.HTTPURL + " rsync=" + c.RsyncURL + " src=" + c.Source)
		if c.LastSync != nil {
			b.WriteString(" sync=" + c.LastSync.Format(time.RFC3339))
		}
		if c.Delay != nil {
			b.WriteString(" delay=" + time.Duration(*c.Delay*int64(time.Second)).String())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestFilter(t *testing.T) {
	ok := Candidate{Host: "ok", CheckedURL: "rsync://ok/arch/", Active: true, CompletionPct: 1, Delay: ptr[int64](600), Source: "status"}
	with := func(host string, f func(*Candidate)) Candidate {
		c := ok
		c.Host = host
		f(&c)
		return c
	}
	cs := []Candidate{
		ok,
		with("inactive", func(c *Candidate) { c.Active = false }),
		with("incomplete", func(c *Candidate) { c.CompletionPct = 0.96 }),
		with("late", func(c *Candidate) { c.Delay = ptr[int64](7200) }),
		with("negative", func(c *Candidate) { c.Delay = ptr[int64](-9) }),
		with("unknown-delay", func(c *Candidate) { c.Delay = nil }),
		with("merged-late", func(c *Candidate) { c.Delay = ptr[int64](7200); c.Source = "status, Germany.txt" }),
		{Host: "user", Source: "Germany.txt", Active: true}, // no status figures: kept
	}
	kept, dropped := Filter(cs, time.Hour)
	var keptHosts []string
	for _, c := range kept {
		keptHosts = append(keptHosts, c.Host)
	}
	if want := []string{"ok", "negative", "unknown-delay", "user"}; !reflect.DeepEqual(keptHosts, want) {
		t.Errorf("kept %q, want %q", keptHosts, want)
	}
	for host, why := range map[string]string{"inactive": "rsync://ok/arch/ is marked inactive", "incomplete": "passed only 96.0%", "late": "is 2h0m0s behind", "merged-late": "limit is 1h0m0s"} {
		if !strings.Contains(dropped[host], why) {
			t.Errorf("dropped[%s] = %q, want it to say %q", host, dropped[host], why)
		}
	}
	if len(dropped) != 4 {
		t.Errorf("dropped %v", dropped)
	}
	if kept, _ := Filter(cs, 0); len(kept) != 6 {
		t.Errorf("maxDelay 0 kept %d, want the late ones too (6)", len(kept))
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFromMirrorlistDir(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"United_States.txt": "## United States\n" +
			"#Server = http://us1.example.com/archlinux/$repo/os/$arch\n" +
			"#Server = https://us1.example.com/archlinux/$repo/os/$arch\n" +
			"Server = rsync://us1.example.com/archlinux/\n" +
			"#Server = ftp://us2.example.com/pub/archlinux/$repo/os/$arch\n" +
			"Server = us3.example.com::archlinux\n" +
			"Server = http://us4.example.com/arch/$repo/os/$arch\n",
		"Czech_Republic.txt":   "Server = https://cz.example.cz/arch/$repo/os/$arch\n",
		"Germany.txt":          "Server = https://de.example.de/$repo/os/$arch\n",
		".United_States.txt":   "Server = https://hidden.example.com/$repo/os/$arch\n",
		"United_States.txt~":   "Server = https://backup.example.com/$repo/os/$arch\n",
		"United_States/x.txt":  "Server = https://subdir.example.com/$repo/os/$arch\n",
		"Broken_Land.txt":      "Server = https://ok.example/$repo/os/$arch\n\nnonsense\n",
		"united states.mirror": "#Server = https://us5.example.com/$repo/os/$arch\n",
	})
	got, err := FromMirrorlistDir(dir, "United States")
	if err != nil {
		t.Fatal(err)
	}
	want := []Candidate{
		{Host: "us1.example.com", Country: "United States", HTTPURL: "https://us1.example.com/archlinux/", RsyncURL: "rsync://us1.example.com/archlinux/", Active: true, Source: "United_States.txt"},
		{Host: "us3.example.com", Country: "United States", RsyncURL: "rsync://us3.example.com/archlinux/", Active: true, Source: "United_States.txt"},
		{Host: "us4.example.com", Country: "United States", HTTPURL: "http://us4.example.com/arch/", Active: true, Source: "United_States.txt"},
		{Host: "us5.example.com", Country: "united states", HTTPURL: "https://us5.example.com/", Active: true, Source: "united states.mirror"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", dumpCandidates(got), dumpCandidates(want))
	}

	for _, name := range []string{"Czechia", "czech republic"} {
		if got, err := FromMirrorlistDir(dir, name); err != nil || len(got) != 1 || got[0].Host != "cz.example.cz" {
			t.Errorf("FromMirrorlistDir(%q) = %+v, %v", name, got, err)
		}
	}
	if got, err := FromMirrorlistDir(dir, "France"); err != nil || len(got) != 0 {
		t.Errorf("France: %+v, %v", got, err)
	}
	if _, err := FromMirrorlistDir(dir, "Broken Land"); err == nil || !strings.Contains(err.Error(), "Broken_Land.txt:3:") {
		t.Errorf("broken file: error %v, want it to name Broken_Land.txt:3", err)
	}
	if got, err := FromMirrorlistDir(filepath.Join(dir, "missing"), "Germany"); err != nil || got != nil {
		t.Errorf("missing dir: %+v, %v; want nothing and no error", got, err)
	}
	if _, err := FromMirrorlistDir(filepath.Join(dir, "Germany.txt"), "Germany"); err == nil {
		t.Error("a file as the dir: no error")
	}
}

func TestMerge(t *testing.T) {
	status := []Candidate{
		{Host: "both.example", Country: "Germany", CountryCode: "DE", HTTPURL: "https://both.example/arch/", CheckedURL: "https://both.example/arch/", Active: true, CompletionPct: 1, Delay: ptr[int64](60), Source: "status"},
		{Host: "www.split.example", HTTPURL: "https://www.split.example/", RsyncURL: "rsync://rsync.split.example/arch/", CheckedURL: "rsync://rsync.split.example/arch/", Active: true, CompletionPct: 1, Source: "status"},
		{Host: "statusonly.example", HTTPURL: "http://statusonly.example/", CheckedURL: "http://statusonly.example/", Active: false, Source: "status"},
	}
	user := []Candidate{
		{Host: "both.example", Country: "Germany", HTTPURL: "http://both.example/other/", RsyncURL: "rsync://both.example/archlinux/", Active: true, Source: "Germany.txt"},
		{Host: "rsync.split.example", RsyncURL: "rsync://rsync.split.example/other/", Active: true, Source: "Germany.txt"},
		{Host: "new.example", Country: "Germany", RsyncURL: "rsync://new.example/arch/", Active: true, Source: "Germany.txt"},
		{Host: "new.example", Country: "Germany", HTTPURL: "https://new.example/", Active: true, Source: "Deutschland.txt"},
	}
	got := Merge(status, user)
	want := []Candidate{
		{Host: "both.example", Country: "Germany", CountryCode: "DE", HTTPURL: "https://both.example/arch/", RsyncURL: "rsync://both.example/archlinux/", CheckedURL: "https://both.example/arch/", Active: true, CompletionPct: 1, Delay: ptr[int64](60), Source: "status, Germany.txt"},
		{Host: "www.split.example", HTTPURL: "https://www.split.example/", RsyncURL: "rsync://rsync.split.example/arch/", CheckedURL: "rsync://rsync.split.example/arch/", Active: true, CompletionPct: 1, Source: "status, Germany.txt"},
		{Host: "statusonly.example", HTTPURL: "http://statusonly.example/", CheckedURL: "http://statusonly.example/", Active: false, Source: "status"},
		{Host: "new.example", Country: "Germany", HTTPURL: "https://new.example/", RsyncURL: "rsync://new.example/arch/", Active: true, Source: "Germany.txt, Deutschland.txt"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", dumpCandidates(got), dumpCandidates(want))
	}
	if status[0].RsyncURL != "" || status[0].Source != "status" {
		t.Error("Merge changed its input")
	}
	// user first, status second: the status figures still arrive
	got = Merge(user[:1], status[:1])
	if len(got) != 1 || !got[0].FromStatus() || got[0].Delay == nil || got[0].CompletionPct != 1 || got[0].HTTPURL != "http://both.example/other/" {
		t.Errorf("Merge(user, status) = %s", dumpCandidates(got))
	}
}
