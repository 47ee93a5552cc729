package bench

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var now0 = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) *time.Time { t := now0.Add(-d); return &t }

// res builds a measured result: fresh-looking and rsync-reachable unless changed.
func res(host string, bps, ms float64, ls *time.Time, edit ...func(*Result)) Result {
	r := Result{Host: host, ThroughputBps: bps, LatencyMS: ms, LastSync: ls, RsyncOK: true}
	for _, e := range edit {
		e(&r)
	}
	return r
}

func noRsync(err string) func(*Result) {
	return func(r *Result) { r.RsyncOK = false; r.note.rsyncErr = err }
}

func failed(e string) func(*Result) { return func(r *Result) { r.Error = e } }

func TestRank(t *testing.T) {
	tests := []struct {
		name string
		in   []Result
		want []string          // hosts in ranked order
		why  map[string]string // host → Why
	}{
		{
			name: "fresh beats stale whatever the speed",
			in: []Result{
				res("stale-fast", 50e6, 2, ago(3*time.Hour+30*time.Minute)),
				res("fresh-slow", 100e3, 80, ago(10*time.Minute)),
			},
			want: []string{"fresh-slow", "stale-fast"},
			why: map[string]string{
				"fresh-slow": "fresh, rsync ok, 97.7 KiB/s, 80 ms",
				"stale-fast": "stale: lastsync 3h20m behind the freshest; rsync ok, 47.7 MiB/s, 2.0 ms",
			},
		},
		{
			name: "old against the clock even when everyone is",
			in: []Result{
				res("a", 1e6, 10, ago(7*time.Hour)),
				res("b", 2e6, 10, ago(7*time.Hour+30*time.Minute)),
			},
			want: []string{"b", "a"},
			why: map[string]string{
				"a": "stale: lastsync 7h old (limit 6h); rsync ok, 976.6 KiB/s, 10 ms",
			},
		},
		{
			name: "rsync reachable before unreachable, then speed",
			in: []Result{
				res("norsync", 20e6, 5, ago(time.Hour), noRsync("no rsync URL")),
				res("refused", 30e6, 5, ago(time.Hour), noRsync("connection refused")),
				res("slow", 1e6, 5, ago(time.Hour)),
				res("fast", 12.3e6, 21, ago(time.Hour)),
			},
			want: []string{"fast", "slow", "refused", "norsync"},
			why: map[string]string{
				"fast":    "fresh, rsync ok, 11.7 MiB/s, 21 ms",
				"refused": "rsync unreachable: connection refused; fresh, 28.6 MiB/s, 5.0 ms",
				"norsync": "no rsync URL; fresh, 19.1 MiB/s, 5.0 ms",
			},
		},
		{
			name: "among stale, rsync reachable first",
			in: []Result{
				res("stale-norsync", 9e6, 5, ago(9*time.Hour), noRsync("connection refused")),
				res("stale-rsync", 1e6, 5, ago(9*time.Hour)),
				res("fresh", 1e5, 5, ago(time.Minute)),
			},
			want: []string{"fresh", "stale-rsync", "stale-norsync"},
		},
		{
			name: "failed last whatever else, by host",
			in: []Result{
				res("z-timeout", 0, 3, ago(time.Minute), failed("timed out")),
				res("a-500", 0, 3, ago(time.Minute), failed("http failed: 500 Internal Server Error")),
				res("stale", 1e3, 3, ago(20*time.Hour)),
			},
			want: []string{"stale", "a-500", "z-timeout"},
			why: map[string]string{
				"a-500":     "http failed: 500 Internal Server Error",
				"z-timeout": "timed out",
			},
		},
		{
			name: "equal throughput: lower latency first, unmeasured latency last",
			in: []Result{
				res("unmeasured", 5e6, 0, ago(time.Minute)),
				res("far", 5e6, 40, ago(time.Minute)),
				res("near", 5e6, 4, ago(time.Minute)),
			},
			want: []string{"near", "far", "unmeasured"},
			why: map[string]string{
				"unmeasured": "fresh, rsync ok, 4.8 MiB/s",
			},
		},
		{
			name: "unknown and future lastsync are not fresh, nor the yardstick",
			in: []Result{
				res("unknown", 9e6, 1, nil, func(r *Result) { r.note.lastsyncErr = "404 Not Found" }),
				res("future", 8e6, 1, ago(-3*time.Hour)),
				res("ok", 1e6, 1, ago(time.Hour)),
			},
			want: []string{"ok", "unknown", "future"},
			why: map[string]string{
				"unknown": "stale: lastsync unknown (404 Not Found); rsync ok, 8.6 MiB/s, 1.0 ms",
				"future":  "stale: lastsync 3h in the future; rsync ok, 7.6 MiB/s, 1.0 ms",
				"ok":      "fresh, rsync ok, 976.6 KiB/s, 1.0 ms",
			},
		},
		{
			name: "notes: status JSON fallback, cut download, no http",
			in: []Result{
				res("fallback", 2e6, 3, ago(time.Hour), func(r *Result) {
					r.note.lastsyncStatus, r.note.lastsyncErr = true, "404 Not Found"
				}),
				res("cut", 1e6, 3, ago(time.Hour), func(r *Result) {
					r.note.throughput = "download cut after 500.0 KiB: body shorter than announced"
				}),
				res("rsync-only", 0, 0, ago(time.Hour), func(r *Result) { r.note.noHTTP, r.note.lastsyncStatus = true, true }),
			},
			want: []string{"fallback", "cut", "rsync-only"},
			why: map[string]string{
				"fallback":   "fresh, rsync ok, 1.9 MiB/s, 3.0 ms; lastsync from the status JSON (mirror's own: 404 Not Found)",
				"cut":        "fresh, rsync ok, 976.6 KiB/s, 3.0 ms; download cut after 500.0 KiB: body shorter than announced",
				"rsync-only": "fresh, rsync ok, speed not measured (no http URL); lastsync from the status JSON",
			},
		},
		{
			name: "behind by exactly the limit is still fresh",
			in: []Result{
				res("lead", 1e6, 1, ago(0)),
				res("lag", 2e6, 1, ago(2*time.Hour)),
			},
			want: []string{"lag", "lead"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			got := Rank(tt.in, now0, Options{})
			var hosts []string
			for i, r := range got {
				hosts = append(hosts, r.Host)
				if r.Rank != i+1 {
					t.Errorf("%s: Rank = %d, want %d", r.Host, r.Rank, i+1)
				}
				if want := r.Fresh && r.RsyncOK && r.Error == ""; r.Usable != want {
					t.Errorf("%s: Usable = %v, want %v", r.Host, r.Usable, want)
				}
				if w, ok := tt.why[r.Host]; ok && r.Why != w {
					t.Errorf("%s: Why\n got %q\nwant %q", r.Host, r.Why, w)
				}
				if r.Why == "" {
					t.Errorf("%s: empty Why", r.Host)
				}
			}
			if !slices.Equal(hosts, tt.want) {
				t.Errorf("order = %v, want %v", hosts, tt.want)
			}
			for i := range in {
				if in[i].Rank != tt.in[i].Rank || in[i].Why != tt.in[i].Why {
					t.Errorf("Rank changed its input")
				}
			}
		})
	}
}

// TestRankFreshnessOptions checks that StaleAfter and BehindBy are the knobs they claim.
func TestRankFreshnessOptions(t *testing.T) {
	in := []Result{res("lead", 1e6, 1, ago(0)), res("lag", 2e6, 1, ago(90*time.Minute))}
	got := Rank(in, now0, Options{BehindBy: time.Hour})
	if got[0].Host != "lead" || !strings.Contains(got[1].Why, "1h30m behind the freshest") {
		t.Errorf("BehindBy 1h: got %s first, lag's Why %q", got[0].Host, got[1].Why)
	}
	got = Rank(in, now0, Options{StaleAfter: time.Hour})
	if got[0].Host != "lead" || got[1].Why != "stale: lastsync 1h30m old (limit 1h); rsync ok, 1.9 MiB/s, 1.0 ms" {
		t.Errorf("StaleAfter 1h: got %s first, lag's Why %q", got[0].Host, got[1].Why)
	}
}

func TestResultJSON(t *testing.T) {
	r := Rank([]Result{res("m", 1e6, 2, ago(time.Hour), func(r *Result) {
		r.Country, r.URL, r.RsyncURL = "DE", "https://m/", "rsync://m/archlinux/"
	})}, now0, Options{})[0]
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"rank":1,"host":"m","country":"DE","url":"https://m/","rsync_url":"rsync://m/archlinux/",` +
		`"lastsync":"2026-03-14T11:00:00Z","fresh":true,"rsync_ok":true,"latency_ms":2,"throughput_bps":1000000,` +
		`"usable":true,"why":"fresh, rsync ok, 976.6 KiB/s, 2.0 ms"}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

func TestParseLastsync(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"1773489600\n", 1773489600, ""},
		{"  1773489600 \r\n", 1773489600, ""},
		{"", 0, "not a Unix time"},
		{"<html>", 0, "not a Unix time"},
		{"1773489600.5", 0, "not a Unix time"},
		{"-5", 0, "out of range"},
		{"42", 0, "out of range"},
		{"99999999999999", 0, "out of range"},
	}
	for _, tt := range tests {
		got, err := parseLastsync([]byte(tt.in))
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseLastsync(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got.Unix() != tt.want || got.Location() != time.UTC):
			t.Errorf("parseLastsync(%q) = %v, %v; want %d UTC", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseLastsync(f *testing.F) {
	for _, s := range []string{"1773489600\n", "", "x", "-1", "1e9", "  12345678901 "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseLastsync(b)
		if err != nil {
			return
		}
		if y := got.Year(); y < 2001 || y > 5200 {
			t.Errorf("parseLastsync(%q) = %v: out of the range it promises", b, got)
		}
	})
}

func TestRsyncReason(t *testing.T) {
	tests := []struct {
		code   int
		stderr string
		want   string
	}{
		{10, "rsync: [Receiver] failed to connect to 127.0.0.1 (127.0.0.1): Connection refused (111)\nrsync error: error in socket IO (code 10) at clientserver.c(139) [Receiver=3.2.7]\n", "connection refused"},
		{35, "rsync error: timeout waiting for daemon connection (code 35) at socket.c(278) [Receiver=3.2.7]\n", "connect timed out"},
		{10, "rsync: getaddrinfo: nowhere.invalid 873: Name or service not known\n", "host not found"},
		{5, "@ERROR: Unknown module 'nope'\nrsync error: error starting client-server protocol (code 5) at main.c(1863) [Receiver=3.2.7]\n", "Unknown module 'nope'"},
		{5, "@ERROR: max connections (20) reached -- try again later\n", "daemon full (max connections reached)"},
		{23, "rsync: [sender] link_stat \"/lastupdate\" (in archlinux) failed: No such file or directory (2)\n", "no lastupdate on the mirror"},
		{12, "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n", "connection unexpectedly closed (0 bytes received so far) [Receiver]"},
		{30, "", "timed out"},
		{2, "", "rsync exit status 2"},
	}
	for _, tt := range tests {
		if got := rsyncReason(tt.code, tt.stderr); got != tt.want {
			t.Errorf("rsyncReason(%d, %q) = %q, want %q", tt.code, tt.stderr, got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	durs := map[time.Duration]string{
		30 * time.Second:             "30s",
		45 * time.Minute:             "45m",
		6 * time.Hour:                "6h",
		3*time.Hour + 20*time.Minute: "3h20m",
		3*time.Hour + 19*time.Minute + 40*time.Second: "3h20m",
	}
	for d, want := range durs {
		if got := fmtDur(d); got != want {
			t.Errorf("fmtDur(%v) = %q, want %q", d, got, want)
		}
	}
	bytes := map[float64]string{512: "512 B", 12_345: "12.1 KiB", 12_345_678: "11.8 MiB", 2.5e9: "2.3 GiB"}
	for n, want := range bytes {
		if got := fmtBytes(n); got != want {
			t.Errorf("fmtBytes(%v) = %q, want %q", n, got, want)
		}
	}
}
