// Package rdns names LAN clients by reverse DNS (PTR) for the traffic statistics and the
// live view: "laptop.lan" reads better than 192.168.1.23.
//
// A lookup never sits in a request's path: Name answers at once from the cache and, for
// an address it has no fresh answer for, starts a lookup in the background; the address
// is shown until a name arrives. Everything is bounded, since clients (and a LAN's DNS
// server) are not trusted: the cache holds at most MaxEntries addresses (the entry closest
// to expiry is dropped for a new one), answers live PositiveTTL and failures
// NegativeTTL, each lookup gives up after Timeout, at most MaxInFlight run at once (an
// address met while all are busy is simply tried on a later call), and a name is kept
// only when it is a plausible host name of at most 253 bytes.
//
// It is not a resolver: the system's (or a test's) does the DNS; this package only
// decides when to ask and what to keep. Turning lookups off (traffic.reverse_dns) is the
// caller's: it stops calling Name.
package rdns
