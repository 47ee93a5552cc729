package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/internal/units"
)

// syncCmd is `amwi sync [--force] [--wait] [--cancel]`: through the running daemon when
// there is one, else by itself. Exit 0 only when the mirror is current afterwards.
func (c *cli) syncCmd(ctx context.Context, args []string) error {
	fs := c.flags("sync")
	force := fs.Bool("force", false, "skip the lastupdate check: full rsync even when upstream did not change")
	wait := fs.Bool("wait", false, "when a sync is running, wait for it and then run")
	cancel := fs.Bool("cancel", false, "cancel the running sync")
	if err := c.parse(fs, args, 0); err != nil {
		return err
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	client := controlClient(cfg.State.Dir)
	if *cancel {
		return c.cancelSync(ctx, client)
	}
	token := rand.Text()
	req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, syncURL(*force, *wait, token), nil)
	resp, err := client.Do(req)
	switch {
	case err != nil && daemonAbsent(err):
		return c.syncAlone(ctx, cfg, mirrorsync.Options{Trigger: mirrorsync.TriggerCLI, Force: *force, Wait: *wait})
	case err != nil:
		return fmt.Errorf("ask the daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("daemon: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	// Ctrl-C: withdraw our request (by its token: never another client's run). Queued, it
	// leaves the queue and nothing runs; started, the daemon cancels our run. Either way
	// the daemon's answer ends the stream we keep reading.
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-ctx.Done():
			c.leaveSync(client, token)
		case <-finished:
		}
	}()
	pr := newProgressPrinter(c.env.Stdout)
	var ours uint64
	queued := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var msg controlMsg
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			return fmt.Errorf("daemon sent %q: %w", sc.Text(), err)
		}
		switch {
		case msg.Started != 0:
			ours = msg.Started
		case msg.State != nil && ours != 0 && msg.State.RunID == ours:
			pr.state(*msg.State)
		case msg.State != nil && ours == 0 && msg.State.Running && !queued:
			// Another run's progress is not ours to show: say once that we wait.
			queued = true
			fmt.Fprintf(c.env.Stderr, "amwi: queued behind run %d (%s); Ctrl-C leaves the queue\n", msg.State.RunID, msg.State.Trigger)
		case msg.Error != "":
			pr.end()
			if msg.Error == mirrorsync.ErrLeftQueue.Error() {
				return mirrorsync.ErrLeftQueue
			}
			return errors.New(msg.Error)
		case msg.Run != nil:
			pr.end()
			return c.report(*msg.Run)
		}
	}
	pr.end()
	return fmt.Errorf("the daemon closed the connection before the sync ended: %v", sc.Err())
}

// leaveSync withdraws the POST /sync request with this client token.
func (c *cli) leaveSync(client *http.Client, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://amwi/sync/leave?client="+url.QueryEscape(token), nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(c.env.Stderr, "amwi: could not withdraw the sync request: %v\n", err)
		return
	}
	resp.Body.Close()
	fmt.Fprintln(c.env.Stderr, "amwi: cancelling")
}

func (c *cli) cancelSync(ctx context.Context, client *http.Client) error {
	return c.cancelRun(ctx, client, 0)
}

// cancelRun asks the daemon to cancel run id (0: whichever runs).
func (c *cli) cancelRun(ctx context.Context, client *http.Client, id uint64) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://amwi/sync/cancel?run="+strconv.FormatUint(id, 10), nil)
	resp, err := client.Do(req)
	if err != nil {
		if daemonAbsent(err) {
			return errors.New("no daemon is running (a sync started by `amwi sync` alone stops with Ctrl-C)")
		}
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.Error != "" {
		return errors.New(out.Error)
	}
	fmt.Fprintln(c.env.Stderr, "amwi: cancelling the running sync")
	return nil
}

// syncAlone runs the sync in this process, as the daemon would, when no daemon runs.
func (c *cli) syncAlone(ctx context.Context, cfg *config.Config, o mirrorsync.Options) error {
	var st *store.Store
	var err error
	for {
		st, err = store.Open(cfg.State.Dir, 500*time.Millisecond)
		if !errors.Is(err, store.ErrLocked) {
			break
		}
		// Another `amwi sync` running on its own holds the store.
		holder := mirrorsync.Holder(cfg.State.Dir)
		if holder == "" {
			return fmt.Errorf("the state dir %s is in use (by `amwi serve`?), but its control socket does not answer; is the daemon starting or stopping?", cfg.State.Dir)
		}
		if !o.Wait {
			return fmt.Errorf("%w (%s); use --wait to queue behind it", mirrorsync.ErrBusy, holder)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return err
	}
	defer st.Close()
	log := c.logger()
	// Without the daemon, nothing is being recorded: what the store holds is all there is.
	m := newSyncManager(cfg, st, (&traffic.Recorder{Store: st}).LastUsed, log, true)
	m.Recover()
	pr := newProgressPrinter(c.env.Stdout)
	states, stop := m.Subscribe()
	defer stop()
	go func() {
		for s := range states {
			pr.state(s)
		}
	}()
	run, err := m.Sync(ctx, o)
	stop()
	pr.end()
	if err != nil {
		return err
	}
	return c.report(run)
}

// report prints what a run did and turns its result into the exit status.
func (c *cli) report(r mirrorsync.Run) error {
	d := r.Duration(r.End).Round(100 * time.Millisecond)
	switch r.Result {
	case mirrorsync.ResultUpToDate:
		fmt.Fprintf(c.env.Stdout, "sync %d: up to date with %s (checked in %s, %s fetched)\n", r.ID, r.Upstream, d, units.Bytes(r.Stats.BytesReceived))
		return nil
	case mirrorsync.ResultSuccess:
		fmt.Fprintf(c.env.Stdout, "sync %d: done from %s in %s: %d files, %s fetched, %d deleted, %d pruned",
			r.ID, r.Upstream, d, r.Stats.FilesTransferred, units.Bytes(r.Stats.BytesReceived), r.Stats.FilesDeleted, r.Pruned)
		if r.PausedSeconds > 0 {
			fmt.Fprintf(c.env.Stdout, ", paused %.0fs for disk I/O", r.PausedSeconds)
		}
		fmt.Fprintln(c.env.Stdout)
		return nil
	}
	msg := fmt.Sprintf("sync %d %s after %s: %s", r.ID, r.Result, d, r.Error)
	if r.ExitCode != 0 {
		msg += fmt.Sprintf(" [rsync exit %d: %s]", r.ExitCode, r.ExitMeaning)
	}
	for _, l := range r.StderrTail {
		msg += "\n  " + l
	}
	return errors.New(msg)
}

// progressPrinter shows a live line on a terminal and phase changes otherwise.
type progressPrinter struct {
	w     io.Writer
	tty   bool
	phase string
	drawn bool
}

func newProgressPrinter(w io.Writer) *progressPrinter {
	p := &progressPrinter{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

func (p *progressPrinter) state(s mirrorsync.State) {
	if !s.Running {
		return
	}
	if !p.tty {
		if s.Phase != "" && s.Phase != p.phase {
			fmt.Fprintf(p.w, "sync: %s (%s)\n", s.Phase, s.Upstream)
		}
		p.phase = s.Phase
		return
	}
	line := fmt.Sprintf("%s  %3d%%  %s  %s/s  %d files", s.Phase, s.Percent, units.Bytes(s.Bytes), units.Bytes(int64(s.RateBps)), s.Files)
	if s.Paused {
		line += "  [paused: disk busy]"
	}
	if s.File != "" {
		line += "  " + s.File
	}
	if len(line) > 120 {
		line = line[:119] + "…"
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.drawn = true
}

// line draws one progress line on a terminal (nothing otherwise).
func (p *progressPrinter) line(s string) {
	if !p.tty {
		return
	}
	if len(s) > 120 {
		s = s[:119] + "…"
	}
	fmt.Fprintf(p.w, "\r\033[K%s", s)
	p.drawn = true
}

func (p *progressPrinter) end() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}
