// Command amwi is the AMWI daemon and its command-line tools; see package daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/amwi/amwi/daemon"
	"github.com/amwi/amwi/daemon/mirrorsync"
)

func main() {
	// A sync starts amwi's own binary as the guard of its rsync (see mirrorsync).
	mirrorsync.RunGuardIfAsked()
	// systemd stops services with SIGTERM; Ctrl-C sends SIGINT. Both end ctx.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// The first signal asks for a clean stop; a second one, with the default
		// handlers back, ends the process at once (a stop that hangs can be forced).
		<-ctx.Done()
		stop()
	}()
	err := daemon.Main(ctx, daemon.Env{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	switch {
	case errors.Is(err, daemon.ErrUsage):
		os.Exit(2)
	case errors.Is(err, daemon.ErrDamaged):
		// The state database was refused: amwi.service does not restart on this code, a
		// restart would only refuse it again.
		fmt.Fprintf(os.Stderr, "amwi: %v\n", err)
		os.Exit(daemon.ExitDamaged)
	case err != nil:
		fmt.Fprintf(os.Stderr, "amwi: %v\n", err)
		os.Exit(1)
	}
}
