// Package ondemand fetches, on a client's first request, the package files a mirror in
// "used" mode does not hold yet: the repo databases are rsynced as usual, so every package
// link in $repo/os/x86_64/ exists, but most point at a pool file that is absent. When the
// mirror's file handler finds such a link dangling it hands the request to ServeMiss, which
// fetches the file from an HTTP upstream mirror and streams it to the client while writing
// it to disk.
//
// What it promises:
//   - Only what the live databases name is fetched: FILE or FILE.sig of a %FILENAME% in
//     $repo/os/x86_64/$repo.db, to where the repo dir's own symlink leads, and only when that
//     is inside $root/pool/. Anything else is the caller's 404, without upstream traffic.
//   - One upstream transfer per file, however many clients ask at once: they all read the
//     growing temp file (ReadAt on one descriptor) as the fetch writes it.
//   - Nothing unverified is kept or handed out whole: a package is hashed while it is
//     written and compared with %CSIZE% and %SHA256SUM% before it is renamed into the pool;
//     a client never receives the last byte of its response before that check passed, and
//     is aborted (a truncated transfer, which pacman discards) when it failed. A .sig is
//     compared with the database's %PGPSIG% when there is one.
//   - kill -9 safe: temp files live in $root/.amwi/fetch/ (a dot dir the mirror never
//     serves), New empties it, and only a rename puts a file at its final path.
//   - Bounded: a fixed number of concurrent fetches, a free-space floor checked before each,
//     a time budget for the upstreams to answer (so pacman moves on to its next Server in
//     time), an idle timeout on upstream bodies, a map entry only while a fetch runs.
//
// What it is not: it does not decide what "used" means, evict old packages or watch the
// databases (the daemon calls Reload after a sync and OnStored tells it what arrived); it
// does not verify PGP signatures (pacman does); it does not filter methods or clean request
// paths (web/mirror.go does, before calling it); it sets no write deadline on the client
// (the caller's writer does, as for every download).
package ondemand
