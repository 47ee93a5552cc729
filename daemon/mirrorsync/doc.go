// Package sync keeps the local mirror current from an rsync upstream, the way Arch's own
// mirror sync procedure does, and gently.
//
// A run first fetches only the upstream's lastupdate (the "gate"); when it equals ours the
// run fetches lastsync and stops — a few hundred bytes instead of a multi-megabyte file
// list. Otherwise it fetches the selected repositories: the pool files their package links
// point to first, then the os/x86_64 trees (databases, links, deletions), then lastupdate
// and lastsync, each rsync with --delay-updates so clients never see half a file. rsync
// runs at idle I/O and CPU priority, is paused while the mirror's disk is busy (Throttle),
// and is stopped below the free-space floor. One run at a time, guarded by an flock that
// dies with its holder; every run is recorded through RunStore.
//
// It does not know about HTTP, the control socket or notifications' wire formats: the
// daemon wires those to Manager's methods and OnEvent.
package mirrorsync
