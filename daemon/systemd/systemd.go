// Package systemd is the little of systemd AMWI speaks: sd_notify (READY, STATUS,
// STOPPING, watchdog pings) and socket activation. Every call is a no-op, or falls back to
// ordinary behaviour, when the process is not running under systemd, so the same binary
// behaves the same everywhere.
package systemd

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends sd_notify messages. The zero value and a nil *Notifier do nothing.
type Notifier struct {
	enabled  bool
	watchdog time.Duration
}

// NewNotifier reads NOTIFY_SOCKET and WATCHDOG_USEC from the environment.
func NewNotifier() *Notifier {
	n := &Notifier{enabled: os.Getenv("NOTIFY_SOCKET") != ""}
	if d, err := sddaemon.SdWatchdogEnabled(false); err == nil {
		n.watchdog = d
	}
	return n
}

func (n *Notifier) send(state string) {
	if n == nil || !n.enabled {
		return
	}
	// A lost notification must not stop the daemon; systemd will notice by itself.
	_, _ = sddaemon.SdNotify(false, state)
}

// Ready says start-up is complete: listeners and store are open.
func (n *Notifier) Ready() { n.send(sddaemon.SdNotifyReady) }

// Stopping says shutdown has begun.
func (n *Notifier) Stopping() { n.send(sddaemon.SdNotifyStopping) }

// Status sets the one-line status `systemctl status` shows.
func (n *Notifier) Status(format string, args ...any) {
	n.send("STATUS=" + fmt.Sprintf(format, args...))
}

// WatchdogInterval is how often to ping, half of WATCHDOG_USEC as sd_watchdog_enabled(3)
// advises, or 0 when no watchdog is configured.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}

// Watchdog pings the service manager's watchdog.
func (n *Notifier) Watchdog() { n.send(sddaemon.SdNotifyWatchdog) }

// Listeners returns the stream sockets systemd passed (LISTEN_FDS for this pid), or none.
// Any passed descriptor that is not a listening stream socket is an error that names it,
// rather than being skipped: a datagram socket in amwi.socket is a mistake to report.
func Listeners() ([]net.Listener, error) {
	files := activation.Files(true)
	var ls []net.Listener
	for i, f := range files {
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("socket activation: passed fd %d (%s) is not a listening stream socket: %w", 3+i, f.Name(), err)
		}
		ls = append(ls, l)
	}
	return ls, nil
}
