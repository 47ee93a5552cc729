package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/internal/units"
	"github.com/amwi/amwi/web"
)

// dbControl adds GET /db/backup to the control API: a consistent copy of the database the
// daemon holds, for `amwi db backup` and `amwi db check` (the file's lock keeps every other
// process out while the daemon runs).
func dbControl(next http.Handler, st *store.Store, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("GET /db/backup", func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{w: w}
		_, err := st.WriteBackup(cw, func(n int64) {
			w.Header().Set("Content-Type", "application/octet-stream")
			// The client tells a copy cut short from a whole one by this.
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		})
		switch {
		case err == nil:
			log.Info("store: copy sent through the control socket", "bytes", cw.n)
		case cw.n == 0:
			w.Header().Del("Content-Length")
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			log.Warn("store: copy through the control socket cut short", "err", err)
		}
	})
	return mux
}

type countingWriter struct {
	w http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// backupLoop keeps the daily backup of the state database: at start when today has none,
// then whenever the date changes (looked at hourly; a look is one stat).
func (d *Daemon) backupLoop(ctx context.Context) {
	d.dailyBackup()
	every(ctx, time.Hour, d.dailyBackup)
}

// dailyBackup makes today's backup if due and keeps its outcome for the health check. The
// backup is checked as it is made: a copy that fails its check means the database itself is
// damaged, which is then said everywhere, and the older backups are kept.
func (d *Daemon) dailyBackup() {
	path, rep, err := d.store.DailyBackup(d.Now())
	switch {
	case err != nil && rep != nil && !rep.OK():
		err = fmt.Errorf("today's backup of the state database %s failed its check, so the database is damaged: %w; stop amwi and run `amwi db check` (the backups in %s are kept)", d.store.Path(), err, store.BackupDir)
		d.Log.Error("store: "+err.Error(), "problems", rep.Problems)
	case errors.Is(err, store.ErrDamaged):
		// The store itself stopped (it said so when it did).
	case err != nil:
		err = fmt.Errorf("daily backup of the state database failed: %w", err)
		d.Log.Warn("store: " + err.Error())
	case path != "" && len(rep.Bad) > 0:
		err = fmt.Errorf("the state database %s has %s that do not decode (amwi db check names them; amwi db repair drops them)", d.store.Path(), units.Plural(len(rep.Bad)+rep.More, "record"))
		d.Log.Warn("store: "+err.Error(), "backup", path)
	case path != "":
		d.Log.Info("store: daily backup", "file", path, "bytes", rep.Size)
	default:
		return // one from today exists: the last outcome stands
	}
	if err == nil {
		d.backupErr.Store(nil)
		return
	}
	d.backupErr.Store(&err)
}

// backupHealth is the daily backup's outcome: a failed or alarming one leaves the mirror
// serving, so it is "degraded".
func (d *Daemon) backupHealth() error {
	if p := d.backupErr.Load(); p != nil {
		return &web.Degraded{Reason: (*p).Error()}
	}
	return nil
}

// storeHealth is the store's: unreadable (failing), or records passed over (degraded).
func (d *Daemon) storeHealth() error {
	if err := d.store.Check(); err != nil {
		return err
	}
	if n := d.store.Skipped(); n > 0 {
		return &web.Degraded{Reason: fmt.Sprintf("%s of the state database %s did not decode and were skipped (amwi db check names them; amwi db repair drops them)", units.Plural(int(n), "record"), d.store.Path())}
	}
	return nil
}
