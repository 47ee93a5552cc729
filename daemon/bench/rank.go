package bench

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/amwi/amwi/internal/units"
)

// clockSkew is how far in the future a lastsync may lie before it is treated as bogus
// rather than as a mirror whose clock runs a little ahead of ours.
const clockSkew = 5 * time.Minute

// Rank orders measured results: every fresh mirror before every stale one whatever the
// speed; among those, rsync-reachable ones (Usable) before unreachable ones; then by
// throughput (highest first), then connect latency (lowest first, unmeasured last), then
// host name; failed measurements (Error set) last, by host name. It sets Rank (1-based),
// Fresh, Usable and Why, and leaves rs itself untouched.
//
// Freshness is judged twice: against the clock (lastsync older than o.StaleAfter) and
// against the other candidates (more than o.BehindBy behind the freshest one), so that a
// mirror which merely keeps syncing from a stalled tier-1 does not pass as fresh.
func Rank(rs []Result, now time.Time, o Options) []Result {
	o = o.withDefaults()
	out := slices.Clone(rs)
	var freshest *time.Time
	for _, r := range out {
		if ls := r.LastSync; ls != nil && !ls.After(now.Add(clockSkew)) && (freshest == nil || ls.After(*freshest)) {
			freshest = ls
		}
	}
	for i := range out {
		judge(&out[i], freshest, now, o)
	}
	slices.SortStableFunc(out, compareResults)
	for i := range out {
		out[i].Rank = i + 1
	}
	return out
}

// class is a result's band in the ranking; lower ranks first.
func class(r Result) int {
	switch {
	case r.Error != "":
		return 4
	case r.Fresh && r.RsyncOK:
		return 0
	case r.Fresh:
		return 1
	case r.RsyncOK:
		return 2
	}
	return 3
}

func compareResults(a, b Result) int {
	ca, cb := class(a), class(b)
	if c := cmp.Compare(ca, cb); c != 0 {
		return c
	}
	if ca == 4 { // failed: no figures worth comparing
		return cmp.Compare(a.Host, b.Host)
	}
	if c := cmp.Compare(b.ThroughputBps, a.ThroughputBps); c != 0 {
		return c
	}
	if c := cmp.Compare(latencyKey(a), latencyKey(b)); c != 0 {
		return c
	}
	return cmp.Compare(a.Host, b.Host)
}

// latencyKey sorts an unmeasured latency (0) after every measured one.
func latencyKey(r Result) float64 {
	if r.LatencyMS <= 0 {
		return 1e18
	}
	return r.LatencyMS
}

// judge sets Fresh, Usable and Why. freshest is the newest plausible lastsync among the
// candidates, nil when none is known.
func judge(r *Result, freshest *time.Time, now time.Time, o Options) {
	stale := staleReason(r, freshest, now, o)
	r.Fresh = stale == ""
	// A candidate whose measurement failed is not offered as upstream even if the status
	// JSON calls it fresh: nothing says it would serve us.
	r.Usable = r.Fresh && r.RsyncOK && r.Error == ""

	var why string
	switch {
	case r.Error != "":
		why = r.Error
	case !r.Fresh:
		why = stale + "; " + rsyncText(r) + ", " + speedText(r)
	case !r.RsyncOK:
		why = rsyncText(r) + "; fresh, " + speedText(r)
	default:
		why = "fresh, rsync ok, " + speedText(r)
	}
	if r.note.lastsyncStatus && r.Error == "" {
		why += "; lastsync from the status JSON"
		if e := r.note.lastsyncErr; e != "" {
			why += " (mirror's own: " + e + ")"
		}
	}
	if r.note.throughput != "" && r.Error == "" {
		why += "; " + r.note.throughput
	}
	r.Why = why
}

// staleReason says why r is not fresh, "" when it is.
func staleReason(r *Result, freshest *time.Time, now time.Time, o Options) string {
	ls := r.LastSync
	switch {
	case ls == nil:
		if e := r.note.lastsyncErr; e != "" && e != "not tried" {
			return "stale: lastsync unknown (" + e + ")"
		}
		return "stale: lastsync unknown"
	case ls.After(now.Add(clockSkew)):
		return "stale: lastsync " + fmtDur(ls.Sub(now)) + " in the future"
	case freshest != nil && freshest.Sub(*ls) > o.BehindBy:
		return "stale: lastsync " + fmtDur(freshest.Sub(*ls)) + " behind the freshest"
	case now.Sub(*ls) > o.StaleAfter:
		return "stale: lastsync " + fmtDur(now.Sub(*ls)) + " old (limit " + fmtDur(o.StaleAfter) + ")"
	}
	return ""
}

func rsyncText(r *Result) string {
	switch e := r.note.rsyncErr; {
	case r.RsyncOK:
		return "rsync ok"
	case e == "no rsync URL":
		return e
	case e != "":
		return "rsync unreachable: " + e
	}
	return "rsync unreachable"
}

func speedText(r *Result) string {
	if r.note.noHTTP {
		return "speed not measured (no http URL)"
	}
	s := fmtBytes(r.ThroughputBps) + "/s"
	if r.LatencyMS > 0 {
		s += ", " + fmtMS(r.LatencyMS)
	}
	return s
}

// fmtBytes writes a byte count in binary units, as the rest of AMWI does (and pacman):
// "11.7 MiB". The benchmark's figures sit beside the dashboard's, so they must not mix
// MB and MiB.
func fmtBytes(n float64) string { return units.Bytes(int64(n)) }

func fmtMS(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

// fmtDur writes a duration the way a person would: "3h20m", "6h", "45m", "30s".
func fmtDur(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	}
	d = d.Round(time.Minute)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 || h == 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	return b.String()
}
