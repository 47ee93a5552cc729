// Package web is AMWI's HTTP side: the mirror file handler at /archlinux/, the landing
// page, /healthz, and the byte accounting every download goes through.
//
// It knows nothing of how the daemon is wired: daemon/ builds the parts (the os.Root of the
// mirror, the health checks, what to do with a finished transfer) and hands them in through
// Options. Templates are embedded; nothing is read from disk but the mirror itself.
package web
