package web

import (
	"errors"
	"net/http"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/mirrorsync"
)

// errorKinds maps the kinds of error the services return to HTTP statuses: the one table
// at the web boundary. Anything not listed is an internal error (500), logged once where
// it is answered, and shown to the client without detail.
var errorKinds = []struct {
	err    error
	status int
}{
	{mirrorsync.ErrBusy, http.StatusConflict},       // a sync is running (the message says whose)
	{mirrorsync.ErrNotRunning, http.StatusConflict}, // nothing to cancel
	{mirrorsync.ErrNoUpstream, http.StatusConflict}, // the settings lack an upstream
	{ErrBenchRunning, http.StatusConflict},
	{errBadRequest, http.StatusBadRequest},
	{auth.ErrBadName, http.StatusBadRequest},
	{auth.ErrWeakPassword, http.StatusBadRequest},
	{auth.ErrExists, http.StatusConflict},
	{auth.ErrBadCredentials, http.StatusUnauthorized},
	{auth.ErrBadSetupCode, http.StatusForbidden},
	{auth.ErrRegistrationClosed, http.StatusForbidden},
	{auth.ErrRateLimited, http.StatusTooManyRequests},
}

// errBadRequest marks an error that is the request's fault (a bad value, a missing field).
var errBadRequest = errors.New("bad request")

// BadRequest is an error that is the request's fault, with the message to show: services
// return it so the web side answers 400 and shows why.
func BadRequest(msg string) error { return badRequest(msg) }

type badRequest string

func (b badRequest) Error() string        { return string(b) }
func (b badRequest) Is(target error) bool { return target == errBadRequest }

// statusOf says which status an error answers with, and whether its message may be shown
// to the client (known kinds and bad requests, yes; internal errors, no).
func statusOf(err error) (status int, public bool) {
	var ps config.Problems
	if errors.As(err, &ps) {
		return http.StatusBadRequest, true
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.status, true
		}
	}
	return http.StatusInternalServerError, false
}

// errorText is the one way an error reaches a client: its status from the table, its
// message when it is the client's to read, and a log line for an internal one.
func (u *ui) errorText(err error, what string) (int, string) {
	status, public := statusOf(err)
	if !public {
		u.log().Error("web: "+what, "err", err)
		return status, what + " failed; see the daemon's log."
	}
	return status, err.Error()
}
