package daemon

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/notify"
	"github.com/amwi/amwi/daemon/search"
	"github.com/amwi/amwi/daemon/store"
	"github.com/amwi/amwi/daemon/sync"
	"github.com/amwi/amwi/hw"
)

// newSyncManager wires the sync engine to the store, the mirror disk's busy sampler and
// (when enabled) Discord. The caller runs the notifier's queue: see startNotifier.
func newSyncManager(cfg *config.Config, st *store.Store, log *slog.Logger) *sync.Manager {
	m := &sync.Manager{
		Config: sync.Config{
			Root:          cfg.Mirror.Root,
			Repos:         cfg.Mirror.Repos,
			BWLimitKiB:    cfg.Sync.BWLimitKiB,
			MinFreeBytes:  uint64(cfg.Sync.MinFreeGiB * (1 << 30)),
			IOBusyPercent: cfg.Sync.IOBusyPercent,
			StateDir:      cfg.State.Dir,
		},
		Store: st,
		Log:   log,
	}
	if cfg.Sync.Upstream != "" {
		m.Config.Upstreams = append([]string{cfg.Sync.Upstream}, cfg.Sync.FallbackUpstreams...)
	}
	if cfg.Sync.IOBusyPercent > 0 {
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

// notifier returns the Discord notifier and the OnEvent hook for the sync engine, or nils
// when Discord is off.
func notifier(cfg *config.Config, log *slog.Logger) (*notify.Discord, func(sync.Event)) {
	if !cfg.Discord.Enabled || cfg.Discord.WebhookURL == "" {
		return nil, nil
	}
	d := notify.New(cfg.Discord.WebhookURL, nil, log)
	return d, func(e sync.Event) {
		r := e.Run
		var d2 = notify.SyncEvent{Kind: e.Kind, Trigger: r.Trigger, Upstream: r.Upstream, Duration: r.Duration(r.End),
			Bytes: r.Stats.BytesReceived, Files: r.Stats.FilesTransferred, Reason: r.Error, LogTail: r.StderrTail}
		var ch search.Changes
		if json.Unmarshal(r.Changes, &ch) == nil {
			d2.Added, d2.Updated, d2.Removed = len(ch.Added), len(ch.Updated), len(ch.Removed)
		}
		if d2.Upstream == "" && len(r.Attempts) > 0 {
			d2.Upstream = r.Attempts[len(r.Attempts)-1].Upstream
		}
		d.Notify(d2)
	}
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
