package mirrorlists

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func FuzzParseMirrorlist(f *testing.F) {
	for _, name := range []string{"mirrorlist-all.txt", "mirrorlist-all-2021-04-05.txt"} {
		// Slices of a few hundred bytes: with whole files (or even 3 KB) as seeds, go test
		// -fuzz spends most of its time minimising each new interesting input.
		real := realFile(f, name)
		f.Add(real[:600])
		mid := real[len(real)/2:]
		f.Add(mid[bytes.IndexByte(mid, '\n')+1:][:600])
	}
	for _, s := range []string{
		"## Germany\r\n#Server = https://a.example/archlinux/$repo/os/$arch # fast\r\n",
		"Server=ftp://b.example/pub/$repo/os/$arch\n## Worldwide\nServer = sync.example::archlinux\n",
		"\ufeff##\n## Arch Linux repository mirrorlist\n###\n#Server = rsync://c.example/arch\n",
		"Server = HTTPS://[2001:db8::1]:8443/x/$arch/$repo\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		servers, err := ParseMirrorlist(bytes.NewReader(data), "fuzz.txt")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.txt:") {
				t.Fatalf("error %q does not name the file and line", err)
			}
			return
		}
		for _, s := range servers {
			switch s.Scheme {
			case "http", "https", "ftp", "rsync":
			default:
				t.Fatalf("scheme %q from %q", s.Scheme, s.URL)
			}
			if s.Host == "" || !strings.HasPrefix(s.Base, s.Scheme+"://") || !strings.HasSuffix(s.Base, "/") {
				t.Fatalf("server %+v: empty host or bad base", s)
			}
			if strings.ContainsAny(s.URL, "\r\n") {
				t.Fatalf("server %+v holds a line break", s)
			}
		}
		seen := map[string]bool{}
		for _, c := range Countries(servers) {
			if seen[c] || c == "" {
				t.Fatalf("Countries: %q twice or empty", c)
			}
			seen[c] = true
			if got, err := ForCountry(servers, c); err != nil || len(got) == 0 {
				t.Fatalf("ForCountry(%q): %v", c, err)
			}
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	for _, name := range []string{"mirrors-status.json", "mirrors-status-2022-07-27.json"} {
		f.Add(firstURLs(f, realFile(f, name), 8))
	}
	f.Add([]byte(sampleStatus))
	for _, s := range []string{
		`{"urls":[{"url":"https://a/","completion_pct":1,"delay":-9,"last_sync":null,"country":""}]}`,
		`{"cutoff":8.64e4,"last_check":"2023-06-28T19:09:25.337Z","urls":[],"x":[{}]}`,
		`{"urls":[{"url":"rsync://a/arch","protocol":"rsync","delay":1.5,"score":null}]`,
		`<html>`, `[]`, `{"urls":[}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseStatus(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse mirror status: ") {
				t.Fatalf("error %q lacks its prefix", err)
			}
			return
		}
		if s.URLs == nil {
			t.Fatal("nil URLs without an error")
		}
		cs := CandidatesFromStatus(s, "")
		for _, c := range cs {
			if c.HTTPURL == "" && c.RsyncURL == "" || !c.FromStatus() {
				t.Fatalf("candidate %+v: no URL or no figures", c)
			}
		}
		kept, dropped := Filter(cs, time.Hour)
		if len(kept)+len(dropped) > len(cs) {
			t.Fatalf("Filter: %d kept + %d dropped of %d", len(kept), len(dropped), len(cs))
		}
	})
}

// firstURLs cuts a real status document down to its first n entries, numbers as written.
func firstURLs(tb testing.TB, data []byte, n int) []byte {
	var doc map[string]json.RawMessage
	var urls []json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(doc["urls"], &urls); err != nil {
		tb.Fatal(err)
	}
	doc["urls"], _ = json.Marshal(urls[:min(n, len(urls))])
	out, err := json.Marshal(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
