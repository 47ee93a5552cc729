// Package mirrorsync keeps the local mirror current from an rsync upstream, the way Arch's
// own mirror sync procedure does, gently, and with one promise on top: every file the
// mirror's own databases name is there, with the size and SHA-256 they give, or the run
// says it is not.
//
// A run first fetches only the upstream's lastupdate and lastsync (the "gate"); when
// lastupdate equals ours it checks the mirror against its databases and stops. Otherwise
// the repos' os/x86_64 dirs are staged in .amwi/staging, the pool files the new databases
// name are fetched straight into pool/ (after a space estimate), new packages are checked
// against %SHA256SUM%, the staged tree is checked, and each repo is swapped in with one
// rename (run.go says it step by step). Gaps make a run incomplete, never hidden behind an
// advanced lastupdate; an upstream older than what was published is refused.
//
// rsync runs under a guard process (guard.go) at idle I/O and CPU priority, is paused while
// the mirror's disk is busy (Throttle), and is stopped below the free-space floor. One run
// at a time, guarded by flocks (the state dir's and the mirror's) that die with their
// holder; every run is recorded through RunStore, with a check of the mirror it leaves.
// Verify checks a mirror on demand (`amwi verify`).
//
// It does not know about HTTP, the control socket or notifications' wire formats: the
// daemon wires those to Manager's methods and OnEvent.
package mirrorsync
