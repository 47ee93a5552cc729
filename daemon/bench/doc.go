// Package bench picks an upstream for the mirror: it measures the candidate mirrors of a
// country and ranks them, freshness and rsync reachability first, speed second.
//
// A speed-only ranking, as reflector and rate-mirrors produce for pacman's mirrorlist,
// is the wrong question for an appliance that syncs with rsync: the fastest mirror is no
// use when it stopped syncing hours ago or does not run an rsync daemon we can reach.
// So every fresh mirror ranks before every stale one whatever the speed, and among those
// the rsync-reachable (Usable) ones come first; throughput, then connect latency, only
// order mirrors within those bands. Failed measurements come last. Rank is a pure
// function of the measured Results; Run does the measuring.
//
// Per candidate, within Options.PerMirror (10 s), each step with its own deadline:
//
//  1. connect latency: the median of 3 TCP connects to the http(s) host (name resolved
//     once first, so DNS is not timed);
//  2. freshness: GET lastsync from the mirror itself (≤ 64 bytes, a Unix time) — the
//     status JSON that reflector relies on lags by up to its own refresh interval, and
//     the mirror's file is what the mirror has now. When the file cannot be read the
//     status JSON's time stands in and Why says so;
//  3. throughput: GET the repository database (extra.db), up to 2 MiB or 5 s, timed
//     from the response headers, so the figure is the transfer rate and latency is
//     ranked separately; a download cut short still gives a figure, noted in Why;
//  4. rsync: the real rsync fetches lastupdate from the rsync URL into a temporary
//     directory (--contimeout and --timeout = ConnectTimeout), run alongside the http
//     steps.
//
// Steps skip the rest only where the rest cannot succeed: no TCP connect means no http
// request, and a lastsync request that times out means the download would too.
//
// Limits are close to the reference tools'. reflector waits 5 s to connect and 5 s to
// download and warns that rating with threads is inaccurate once the local link
// saturates; rate-mirrors runs 8 speed tests at a time, 1.5 s each at most, wanting
// ≥ 300 ms and ≥ 70 kB per test. Run measures 8 candidates at a time (Concurrency) with
// a 3 s connect timeout, a 5 s / 2 MiB download, 10 s per candidate and 60 s for the
// whole run, which ends on time however the mirrors behave: a mirror that never answers
// is reported as "timed out" and ranked last. The same caveat applies: parallel
// downloads share the appliance's own link, so mirrors faster than about a Concurrency-th
// of it measure alike; lower Concurrency on a slow line.
//
// The http(s) steps go direct, never through HTTP_PROXY: rsync does not use it either,
// and a proxy would be measured instead of the mirror.
//
// It is not a mirror list: the candidates come from package mirrorlists (or the user),
// and choosing and storing the upstream is the daemon's business.
package bench
