// Package auth is AMWI's accounts and sessions: who may use the web dashboard.
//
// It holds the domain rules and nothing of HTTP: user names and password policy, argon2id
// password hashes in PHC format, the first-admin registration (through the web only with
// the one-time setup code the daemon prints), sessions with a CSRF token and a sliding
// expiry, and limits on failed logins per client address, per account and per device (a token a browser keeps after logging in, so that strangers' failures never lock
// the owner's own browser out). The web side turns requests into calls on a Service, sets
// the session id and the device token as cookies, checks the CSRF token on every
// state-changing request (Session.ValidCSRF) and maps the errors here to HTTP statuses;
// `amwi user …` commands call the same Service.
//
// Persistence is the Store interface, declared here and implemented by daemon/store (bbolt).
// This package must not import daemon/store; its tests do, to run against the real database.
//
// Not here: authorization beyond the Admin flag (the caller decides who may call Create,
// SetPassword or Delete), cookies and forms, and TLS. Secrets — passwords, hashes, session
// ids, CSRF tokens, device tokens, setup codes — are never logged or put into error messages
// here (the daemon prints the setup code itself, on purpose, for the owner to read).
package auth
