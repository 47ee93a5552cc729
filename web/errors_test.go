package web

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/amwi/amwi/daemon/mirrorsync"
)

func TestStatusOf(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		public bool
	}{
		{&mirrorsync.BusyError{Holder: "run 3"}, http.StatusConflict, true},
		{fmt.Errorf("start: %w", mirrorsync.ErrNoUpstream), http.StatusConflict, true},
		{ErrBenchRunning, http.StatusConflict, true},
		{BadRequest("say which country"), http.StatusBadRequest, true},
		{errors.New("open /var/lib/amwi/amwi.db: input/output error"), http.StatusInternalServerError, false},
	} {
		if s, p := statusOf(c.err); s != c.status || p != c.public {
			t.Errorf("%v: %d %v, want %d %v", c.err, s, p, c.status, c.public)
		}
	}
}
