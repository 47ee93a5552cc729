package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/notify"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/hw"
)

// lastUsedFunc is traffic.Recorder.LastUsed: which packages clients downloaded lately.
type lastUsedFunc func(days int) (map[string]time.Time, error)

// syncConfig is what the sync engine takes from amwi.toml; lastUsed tells "used" mode what
// LAN clients use.
func syncConfig(cfg *config.Config, lastUsed lastUsedFunc) mirrorsync.Config {
	c := mirrorsync.Config{
		Root:          cfg.Mirror.Root,
		Repos:         cfg.Mirror.Repos,
		BWLimitKiB:    cfg.Sync.BWLimitKiB,
		MinFreeBytes:  uint64(cfg.Sync.MinFreeGiB * (1 << 30)),
		IOBusyPercent: cfg.Sync.IOBusyPercent,
		StateDir:      cfg.State.Dir,
	}
	if cfg.Sync.Upstream != "" {
		c.Upstreams = append([]string{cfg.Sync.Upstream}, cfg.Sync.FallbackUpstreams...)
	}
	if m := cfg.Mirror; m.Used() {
		days := m.KeepDays
		c.Used = &mirrorsync.UsedPolicy{
			LastUsed: func() (map[string]time.Time, error) { return lastUsed(days) },
			MaxBytes: budgetBytes(m.MaxGiB),
			Setting:  fmt.Sprintf("keep_days=%d max_gib=%g", m.KeepDays, m.MaxGiB),
		}
	}
	return c
}

// newSyncManager wires the sync engine to the store; with diskBusy (a sync by `amwi sync`
// alone, no daemon sampling the disk) to a busy sampler of the mirror's disk of its own.
func newSyncManager(cfg *config.Config, st *store.Store, lastUsed lastUsedFunc, log *slog.Logger, diskBusy bool) *mirrorsync.Manager {
	m := &mirrorsync.Manager{Config: syncConfig(cfg, lastUsed), Store: st, Log: log}
	if diskBusy && cfg.Sync.IOBusyPercent > 0 {
		dev, err := hw.FindBlockDevice(procRoot(), sysRoot(), cfg.Mirror.Root)
		switch {
		case errors.Is(err, hw.ErrNoBlockDevice):
			log.Info("sync: the mirror is not on a local disk; no I/O throttle, only sync.bwlimit_kib", "root", cfg.Mirror.Root)
		case err != nil:
			log.Warn("sync: cannot find the mirror's disk; no I/O throttle", "err", err)
		default:
			log.Debug("sync: I/O throttle watches", "disk", dev.Name)
			m.Busy = hw.NewDiskBusy(procRoot(), dev, nil).Sample
		}
	}
	return m
}

// syncEvent turns a sync engine event into a Discord notification.
func syncEvent(e mirrorsync.Event) notify.SyncEvent {
	r := e.Run
	n := notify.SyncEvent{Kind: e.Kind, Trigger: r.Trigger, Upstream: r.LastUpstream(), Duration: r.Duration(r.End),
		Bytes: r.Stats.BytesReceived, Files: r.Stats.FilesTransferred, Reason: r.Error, LogTail: r.StderrTail}
	var ch search.Changes
	if json.Unmarshal(r.Changes, &ch) == nil {
		n.Added, n.Updated, n.Removed = ch.AddedN(), ch.UpdatedN(), ch.RemovedN()
	}
	return n
}

// procRoot and sysRoot can be pointed at fixture trees (tests) with AMWI_PROC/AMWI_SYS.
func procRoot() string { return envOr("AMWI_PROC", "/proc") }
func sysRoot() string  { return envOr("AMWI_SYS", "/sys") }

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}
