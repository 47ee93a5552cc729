// Package traffic counts what the mirror serves: bytes and requests per hour, per day, per
// client, per package and per repository, for the dashboard.
//
// Only mirror downloads are mirror traffic. The web layer marks every other request (a
// dashboard page, an API call, /metrics) as Hit.Dashboard; those only add to an in-memory
// count of today's (DashboardToday) and never reach the store, the totals or the rankings,
// so "today" is what pacman clients fetched, not how often someone looked at the dashboard.
//
// Every finished request becomes a Hit (web.Transfer gives the bytes really sent, so partial
// and aborted downloads count what they cost, not the file size). Recorder.Record only
// takes a mutex and updates maps in memory; Run writes the accumulated Batch to the Store
// in one transaction every FlushEvery (5 s) and not at all when nothing was served, because
// AMWI often lives on an SD card and every bbolt commit rewrites pages and fsyncs. A crash
// loses at most the last batch. Reports merge what is stored with the batch not yet
// written, so the dashboard never lags behind by a flush.
//
// What is kept (see KeepHours, KeepDays), chosen so the database stays a few MB:
//   - per hour: bytes and requests, 14 days — enough for "the last day/week" charts;
//   - per day: totals, per client, per package and per repository, 400 days — a year
//     with its seasons.
//
// Once a day Run drops what is older (a read-only check first, so a day with nothing to
// drop writes nothing).
//
// Days are calendar days in the zone of the Recorder's clock (Now().Location()); hours are
// absolute (Unix hours), so DST changes neither lose nor double an hour.
//
// Memory is bounded: the batch holds a few seconds of traffic, and the number of distinct
// clients, packages and repositories per day is capped (MaxClients, MaxPackages,
// MaxRepos); the rest is counted
// under the key Other, so a scan with random addresses or file names cannot grow the maps
// or the database without limit.
//
// A package is the name parsed from NAME-VER-REL-ARCH.pkg.tar[.EXT] (PackageName), counted
// for 2xx answers only, so 404s for made-up names never become "packages". Detached
// signatures (.sig) are not counted per package: a signature fetch is not a download of
// the package, and would double its request count; their bytes are negligible. Everything
// else (databases, signatures, index pages) counts in the totals and per client.
//
// This package does not know HTTP or bbolt: the daemon turns web.Transfer into Hit (with
// web.ClientIP for the client), and daemon/store implements Store.
package traffic
