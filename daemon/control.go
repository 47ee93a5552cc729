package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/daemon/auth"
	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/web"
)

// ControlSocket is the daemon's local control socket in the state dir: `amwi sync` talks
// to the running daemon through it. Only root and the daemon's own user may connect: the
// state dir is 0750, the socket 0660, and every connection's peer credentials are checked.
const ControlSocket = "amwi.sock"

// controlMsg is one line of the NDJSON stream POST /sync answers with.
type controlMsg struct {
	State *mirrorsync.State `json:"state,omitempty"`
	// Started is the id of the run this request started: the only one its client may
	// cancel.
	Started uint64          `json:"started,omitempty"`
	Run     *mirrorsync.Run `json:"run,omitempty"`
	Error   string          `json:"error,omitempty"`
	Busy    bool            `json:"busy,omitempty"`
}

// listenControl opens the control socket. A leftover socket file is removed: we hold the
// store's lock, so no other daemon can be using it.
func listenControl(stateDir string) (net.Listener, error) {
	path := filepath.Join(stateDir, ControlSocket)
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return peerCheckListener{l.(*net.UnixListener)}, nil
}

// peerCheckListener accepts only root and the daemon's own uid (SO_PEERCRED).
type peerCheckListener struct{ *net.UnixListener }

func (l peerCheckListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if peerAllowed(c) {
			return c, nil
		}
		c.Close()
	}
}

func peerAllowed(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	return err == nil && cred != nil && (cred.Uid == 0 || int(cred.Uid) == os.Getuid())
}

// controlHandler serves the control API: POST /sync (streams progress), POST /sync/cancel,
// GET /sync.
func controlHandler(ctx context.Context, m *mirrorsync.Manager, a *auth.Service, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	// POST /users: `amwi user add` while the daemon holds the store.
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Name, Password string
			Admin          bool
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8192)).Decode(&in); err != nil {
			web.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request: " + err.Error()})
			return
		}
		u, err := addUser(a, in.Name, in.Password, in.Admin)
		if err != nil {
			web.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		log.Info("user added through the control socket", "user", u.Name, "admin", u.Admin)
		web.WriteJSON(w, http.StatusOK, map[string]any{"name": u.Name, "admin": u.Admin})
	})
	mux.HandleFunc("GET /sync", func(w http.ResponseWriter, r *http.Request) {
		hist, err := m.History(20)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{"state": m.State(), "history": hist})
	})
	mux.HandleFunc("POST /sync/cancel", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseUint(r.URL.Query().Get("run"), 10, 64)
		if err := m.CancelRun(id); err != nil {
			web.WriteJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
			return
		}
		web.WriteJSON(w, http.StatusOK, map[string]bool{"cancelled": true})
	})
	reqs := &syncRequests{m: map[string]*syncRequest{}}
	// POST /sync/leave?client=TOKEN: the client of POST /sync?client=TOKEN gives up (Ctrl-C
	// on `amwi sync`): queued, it leaves the queue and nothing runs; started, its run is
	// cancelled.
	mux.HandleFunc("POST /sync/leave", func(w http.ResponseWriter, r *http.Request) {
		if err := reqs.leave(r.URL.Query().Get("client"), m); err != nil {
			web.WriteJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		web.WriteJSON(w, http.StatusOK, map[string]bool{"left": true})
	})
	mux.HandleFunc("POST /sync", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		o := mirrorsync.Options{Trigger: mirrorsync.TriggerCLI, Force: q.Get("force") == "1", Wait: q.Get("wait") == "1"}
		if t := q.Get("trigger"); t == mirrorsync.TriggerWeb || t == mirrorsync.TriggerSchedule {
			o.Trigger = t
		}
		// A client that goes away while queued leaves the queue.
		queue, leave := context.WithCancel(r.Context())
		defer leave()
		req := &syncRequest{leave: leave}
		if token := q.Get("client"); token != "" {
			if !reqs.add(token, req) {
				web.WriteJSON(w, http.StatusConflict, map[string]string{"error": "a request with this client token is already open"})
				return
			}
			defer reqs.remove(token)
		}
		o.Queue = queue
		states, stop := m.Subscribe()
		defer stop()
		type result struct {
			run mirrorsync.Run
			err error
		}
		done := make(chan result, 1)
		started := make(chan uint64, 1)
		o.Started = func(id uint64) {
			reqs.started(req, id, m)
			started <- id
		}
		// The run belongs to the daemon, not to this connection: a client that goes away
		// does not stop it (`amwi sync` cancels explicitly on Ctrl-C).
		go func() {
			run, err := m.Sync(ctx, o)
			done <- result{run, err}
		}()
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		rc := http.NewResponseController(w)
		for {
			select {
			case s, ok := <-states:
				if !ok { // the engine is closing: the run's end still comes
					states = nil
					continue
				}
				enc.Encode(controlMsg{State: &s})
				rc.Flush()
			case id := <-started:
				enc.Encode(controlMsg{Started: id})
				rc.Flush()
			case res := <-done:
				msg := controlMsg{Run: &res.run}
				if res.err != nil {
					msg = controlMsg{Error: res.err.Error(), Busy: errors.Is(res.err, mirrorsync.ErrBusy)}
				}
				enc.Encode(msg)
				return
			}
		}
	})
	return mux
}

// syncRequests are the open POST /sync requests that carry a client token, so that the
// client can withdraw one whether or not its run has started: leave and started hold the
// same lock, so a withdrawal is never lost between the two.
type syncRequests struct {
	mu sync.Mutex
	m  map[string]*syncRequest
}

type syncRequest struct {
	leave context.CancelFunc // ends the wait in the queue
	id    uint64             // the run, once started
	left  bool
}

func (rs *syncRequests) add(token string, r *syncRequest) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if _, ok := rs.m[token]; ok {
		return false
	}
	rs.m[token] = r
	return true
}

func (rs *syncRequests) remove(token string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.m, token)
}

func (rs *syncRequests) leave(token string, m *mirrorsync.Manager) error {
	rs.mu.Lock()
	r := rs.m[token]
	if r == nil {
		rs.mu.Unlock()
		return errors.New("no open sync request with this client token")
	}
	r.left = true
	id := r.id
	rs.mu.Unlock()
	if id != 0 {
		m.CancelRun(id) // ErrNotRunning: it has just ended
		return nil
	}
	r.leave()
	return nil
}

// started records the run of r; a request withdrawn in the instant before has it cancelled.
func (rs *syncRequests) started(r *syncRequest, id uint64, m *mirrorsync.Manager) {
	rs.mu.Lock()
	r.id = id
	left := r.left
	rs.mu.Unlock()
	if left {
		m.CancelRun(id)
	}
}

// controlClient talks to a running daemon's control socket.
func controlClient(stateDir string) *http.Client {
	path := filepath.Join(stateDir, ControlSocket)
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// daemonAbsent reports a dial error that means no daemon listens (as opposed to one that
// refuses us).
func daemonAbsent(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED)
}

func syncURL(force, wait bool, client string) string {
	return "http://amwi/sync?force=" + boolParam(force) + "&wait=" + boolParam(wait) + "&trigger=cli&client=" + url.QueryEscape(client)
}

func boolParam(b bool) string { return strconv.Itoa(map[bool]int{false: 0, true: 1}[b]) }
