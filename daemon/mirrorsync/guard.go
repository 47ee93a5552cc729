package mirrorsync

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The rsync guard: rsync never outlives the amwi that started it.
//
// Pdeathsig alone cannot promise that. It fires when the *thread* that forked the child
// exits (Go retires threads freely), and it only reaches the direct child: the rsync client
// forks a receiver that goes on writing the mirror for many seconds after its parent was
// killed. So amwi starts a copy of itself as a tiny guard (amwi's own binary, told by
// GuardEnv): the guard gets SIGTERM when amwi dies (Pdeathsig, from a thread amwi keeps
// locked for the child's whole life), starts rsync in a process group of its own, and when
// either amwi or rsync goes away it kills that whole group. It reports rsync's pid (the
// group id) on fd 3, which is how amwi stops, continues and cancels the group.
//
// The guard is not in rsync's group, so the I/O throttle's SIGSTOP never stops it, and a
// stopped rsync is continued before it is killed.

// GuardEnv, set to "1" in the environment of amwi's own binary, makes it the rsync guard.
const GuardEnv = "AMWI_RSYNC_GUARD"

// RunGuardIfAsked turns this process into the rsync guard when GuardEnv says so, and then
// never returns. cmd/amwi calls it first; so does TestMain in packages whose tests sync.
func RunGuardIfAsked() {
	if os.Getenv(GuardEnv) != "1" {
		return
	}
	os.Exit(guardMain(os.Args[1:]))
}

// guardMain runs args[0] with args[1:] and exits as it did.
func guardMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "amwi rsync guard: no command")
		return 1
	}
	// Signals first: from here on, amwi's death (SIGTERM via Pdeathsig) is noticed. A
	// terminal's Ctrl-C is amwi's to handle: it cancels the sync gracefully.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM)
	signal.Ignore(unix.SIGINT, unix.SIGHUP)
	// One thread does everything that is per thread: the priorities rsync inherits, and
	// the fork whose Pdeathsig dies with this thread.
	runtime.LockOSThread()
	// rsync and what it forks inherit the idle I/O class and nice 19: everything else on
	// the box (LAN downloads first) comes before the sync.
	setIdlePriority(0)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// fd 3 reports rsync's pid; rsync must not inherit it, or amwi would read until rsync
	// ends.
	unix.CloseOnExec(3)
	report := os.NewFile(3, "pid")
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start %s: %v\n", args[0], err)
		report.Close()
		return 127
	}
	pgid := cmd.Process.Pid
	if report != nil {
		report.WriteString(strconv.Itoa(pgid) + "\n")
		report.Close()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case <-sigs:
			// amwi is gone (or asks us to stop): nothing may go on writing the mirror.
			killGroup(pgid)
		case err := <-done:
			killGroup(pgid) // helpers rsync forked, if any outlived it
			return exitAs(err)
		}
	}
}

// killGroup continues (it may be stopped by the throttle) and kills process group pgid.
func killGroup(pgid int) {
	unix.Kill(-pgid, unix.SIGCONT)
	unix.Kill(-pgid, unix.SIGKILL)
}

// exitAs turns rsync's end into the guard's: its exit code, or for a signal the same
// signal, so that amwi sees rsync's own fate.
func exitAs(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 1
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		signal.Reset()
		unix.Kill(os.Getpid(), ws.Signal())
		// A caught or ignored signal did not end us; SIGKILL does.
		unix.Kill(os.Getpid(), unix.SIGKILL)
	}
	return ee.ExitCode()
}

// setIdlePriority puts process pid (0: this one) in the idle I/O class at nice 19.
func setIdlePriority(pid int) {
	const ioprioWhoProcess, ioprioClassIdle, ioprioClassShift = 1, 3, 13
	unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(pid), ioprioClassIdle<<ioprioClassShift)
	unix.Setpriority(unix.PRIO_PROCESS, pid, 19)
}
