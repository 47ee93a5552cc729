package mirrorsync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// archFlags is Arch's recommended mirror sync (see DESIGN.md), less the excludes, which
// depend on what is mirrored.
var archFlags = []string{
	"-rlptH", "--safe-links", "--delete-delay", "--delay-updates",
	"--timeout=600", "--contimeout=60", "--no-motd",
}

// rsyncExit explains rsync's exit codes (rsync(1), EXIT VALUES).
var rsyncExit = map[int]string{
	0:  "success",
	1:  "syntax or usage error",
	2:  "protocol incompatibility",
	3:  "errors selecting input/output files, dirs",
	4:  "requested action not supported",
	5:  "error starting client-server protocol",
	6:  "daemon unable to append to log-file",
	10: "error in socket I/O",
	11: "error in file I/O",
	12: "error in rsync protocol data stream",
	13: "errors with program diagnostics",
	14: "error in IPC code",
	20: "received SIGUSR1 or SIGINT",
	21: "some error returned by waitpid()",
	22: "error allocating core memory buffers",
	23: "partial transfer due to error",
	24: "partial transfer due to vanished source files",
	25: "the --max-delete limit stopped deletions",
	30: "timeout in data send/receive",
	35: "timeout waiting for daemon connection",
}

// ExitMeaning says what an rsync exit code means.
func ExitMeaning(code int) string {
	switch {
	case code == -1:
		return "killed by a signal"
	case rsyncExit[code] != "":
		return rsyncExit[code]
	}
	return "unknown exit code"
}

// Progress is what rsync reports while it runs.
type Progress struct {
	Bytes   int64   // bytes transferred so far (progress2's first column)
	Percent int     // of the whole transfer, as rsync estimates it
	Rate    string  // as rsync prints it, e.g. "1.23MB/s"
	RateBps float64 // the same in bytes/s
	Files   int     // files transferred (xfr#)
	File    string  // the file being transferred (name1 output)
}

// Stats is rsync's --stats summary.
type Stats struct {
	FilesTransferred int   `json:"files_transferred"`
	FilesDeleted     int   `json:"files_deleted"`
	BytesReceived    int64 `json:"bytes_received"`
	BytesSent        int64 `json:"bytes_sent"`
	TransferredSize  int64 `json:"transferred_size"`
}

func (s *Stats) add(o Stats) {
	s.FilesTransferred += o.FilesTransferred
	s.FilesDeleted += o.FilesDeleted
	s.BytesReceived += o.BytesReceived
	s.BytesSent += o.BytesSent
	s.TransferredSize += o.TransferredSize
}

var (
	progressRe = regexp.MustCompile(`^\s*([\d,.]+)\s+(\d+)%\s+(\S+/s)\s+\S+(?:\s+\(xfr#(\d+),\s*(?:to|ir)-chk=\d+/\d+\))?`)
	statsRe    = regexp.MustCompile(`^(Number of regular files transferred|Number of deleted files|Total bytes sent|Total bytes received|Total transferred file size):\s*([\d,.]+)`)
)

// parseProgress reads one progress2 line; ok is false for anything else.
func parseProgress(line string) (p Progress, ok bool) {
	m := progressRe.FindStringSubmatch(line)
	if m == nil {
		return p, false
	}
	p.Bytes = parseNum(m[1])
	p.Percent, _ = strconv.Atoi(m[2])
	p.Rate = m[3]
	p.RateBps = parseRate(m[3])
	if m[4] != "" {
		p.Files, _ = strconv.Atoi(m[4])
	}
	return p, true
}

// parseStatsLine folds one --stats line into s; ok reports whether it was one.
func parseStatsLine(s *Stats, line string) bool {
	m := statsRe.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	n := parseNum(m[2])
	switch m[1] {
	case "Number of regular files transferred":
		s.FilesTransferred = int(n)
	case "Number of deleted files":
		s.FilesDeleted = int(n)
	case "Total bytes sent":
		s.BytesSent = n
	case "Total bytes received":
		s.BytesReceived = n
	case "Total transferred file size":
		s.TransferredSize = n
	}
	return true
}

// parseNum reads rsync's numbers, which carry thousands separators ("1,234,567"; some
// locales use '.').
func parseNum(s string) int64 {
	n, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(s), 10, 64)
	return n
}

func parseRate(s string) float64 {
	s = strings.TrimSuffix(s, "/s")
	mult := 1.0
	for suffix, m := range map[string]float64{"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12} {
		if strings.HasSuffix(s, suffix) {
			mult, s = m, strings.TrimSuffix(s, suffix)
			break
		}
	}
	s = strings.TrimSuffix(s, "B")
	v, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	if err != nil {
		return 0
	}
	return v * mult
}

// rsyncRun is one rsync process, started through the guard (guard.go).
type rsyncRun struct {
	Bin        string
	Args       []string
	Guard      string         // the guard's executable: amwi's own binary
	OnStart    func(pgid int) // after start: the throttle
	OnProgress func(Progress) // as rsync reports
	KillGrace  time.Duration  // SIGTERM → SIGKILL
	Stdin      io.Reader      // e.g. --files-from=-
	Stdout     io.Writer      // when set, stdout goes here instead of the parser
	tail       *lineRing      // stderr tail, shared across a run's phases
	stats      Stats          // filled from --stats
	progress   Progress       // last reported
	mu         sync.Mutex     // guards progress
}

// RsyncError is a failed rsync.
type RsyncError struct {
	Code    int // -1: killed by a signal
	Meaning string
	Last    string // rsync's last stderr line
}

func (e *RsyncError) Error() string {
	msg := fmt.Sprintf("rsync exited %d (%s)", e.Code, e.Meaning)
	if e.Last != "" {
		msg += ": " + e.Last
	}
	return msg
}

// guardStartTimeout bounds the wait for the guard to report rsync's pid.
const guardStartTimeout = 10 * time.Second

// pipeDrain bounds how long output is read after rsync ended: the guard has killed its
// group by then, so the pipes close at once unless something else holds them.
const pipeDrain = 2 * time.Second

// run starts rsync through the guard and waits. rsync runs in its own process group (the
// throttle stops and continues it with the helpers it forks); when ctx ends the group gets
// SIGCONT (it may be paused) and SIGTERM, then SIGKILL after KillGrace. run returns as soon
// as rsync has ended, however it ended.
func (r *rsyncRun) run(ctx context.Context) error {
	guard := r.Guard
	if guard == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find amwi's own binary for the rsync guard: %w", err)
		}
		guard = exe
	}
	// rsync is looked up in amwi's PATH (an admin's wrapper there is honoured) and runs
	// with a fixed, minimal environment.
	bin, err := exec.LookPath(r.Bin)
	if err != nil {
		return fmt.Errorf("rsync not found (%s): install rsync (apt install rsync; pacman -S rsync): %w", r.Bin, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	pidR, pidW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return err
	}
	cmd := exec.Command(guard, append([]string{bin}, r.Args...)...)
	cmd.Env = []string{GuardEnv + "=1", "LC_ALL=C", "PATH=" + rsyncPath()}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r.Stdin, outW, errW
	cmd.ExtraFiles = []*os.File{pidW}
	// The guard learns of amwi's death by Pdeathsig, which the kernel ties to the thread
	// that forked it: that thread stays locked to this goroutine until the guard is reaped.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	err = <-started
	outW.Close()
	errW.Close()
	pidW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		pidR.Close()
		return fmt.Errorf("start rsync guard %s: %w", guard, err)
	}
	pidR.SetReadDeadline(time.Now().Add(guardStartTimeout))
	pgid := readPID(pidR)
	pidR.Close()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if r.Stdout != nil {
			io.Copy(r.Stdout, outR)
		} else {
			r.readStdout(outR)
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(errR)
		sc.Buffer(make([]byte, 4096), 64<<10)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				r.tail.add(l)
			}
		}
		io.Copy(io.Discard, errR) // past an over-long line
	}()
	if pgid > 1 {
		if r.OnStart != nil {
			r.OnStart(pgid)
		}
	}
	var waitErr error
	killTimer := (<-chan time.Time)(nil)
	ctxDone := ctx.Done()
wait:
	for {
		select {
		case waitErr = <-exited:
			break wait
		case <-ctxDone:
			ctxDone = nil
			if pgid > 1 {
				unix.Kill(-pgid, unix.SIGCONT)
				unix.Kill(-pgid, unix.SIGTERM)
			} else {
				cmd.Process.Signal(unix.SIGTERM)
			}
			killTimer = time.After(r.KillGrace)
		case <-killTimer:
			if pgid > 1 {
				unix.Kill(-pgid, unix.SIGCONT)
				unix.Kill(-pgid, unix.SIGKILL)
			}
			cmd.Process.Kill()
		}
	}
	if pgid > 1 {
		// Never leave anything of the group stopped or running behind us (the guard has
		// done this already unless it was killed itself).
		unix.Kill(-pgid, unix.SIGCONT)
		unix.Kill(-pgid, unix.SIGKILL)
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(pipeDrain):
	}
	outR.Close()
	errR.Close()
	<-drained
	if waitErr == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) {
		return fmt.Errorf("rsync: %w", waitErr)
	}
	code := ee.ExitCode()
	if code == 127 && pgid <= 1 {
		return fmt.Errorf("rsync could not be started (%s): %s", r.Bin, r.tail.last())
	}
	return &RsyncError{Code: code, Meaning: ExitMeaning(code), Last: r.tail.last()}
}

// readPID reads the rsync pid the guard reports; 0 when it reported none.
func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := io.ReadFull(f, b)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return 0
	}
	return pid
}

// rsyncPath is the PATH rsync is looked up in and runs with.
func rsyncPath() string { return "/usr/local/bin:/usr/bin:/bin" }

// readStdout splits rsync's stdout on \r and \n: progress2 rewrites its line with \r,
// name1 prints file names one per line, --stats prints its summary at the end.
func (r *rsyncRun) readStdout(out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		for i, b := range data {
			if b == '\n' || b == '\r' {
				return i + 1, data[:i], nil
			}
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if p, ok := parseProgress(line); ok {
			r.mu.Lock()
			p.File = r.progress.File
			r.progress = p
			r.mu.Unlock()
			if r.OnProgress != nil {
				r.OnProgress(p)
			}
			continue
		}
		if parseStatsLine(&r.stats, line) || statsNoise(line) {
			continue
		}
		// name1: a path being transferred.
		r.mu.Lock()
		r.progress.File = line
		p := r.progress
		r.mu.Unlock()
		if r.OnProgress != nil {
			r.OnProgress(p)
		}
	}
}

// statsNoise is the rest of --stats' summary, which is not a file name.
func statsNoise(line string) bool {
	for _, p := range []string{"Number of ", "Total ", "Literal data", "Matched data", "File list ", "sent ", "total size is ", "receiving ", "created directory", "deleting "} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// lineRing keeps the last n lines.
type lineRing struct {
	mu          sync.Mutex
	n           int
	lines       []string
	sawDiskFull bool // rsync said the disk is full (diskFullRe)
}

func newLineRing(n int) *lineRing { return &lineRing{n: n} }

func (l *lineRing) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Whole, before it is cut below: the errno is at the end.
	if diskFullRe.MatchString(s) {
		l.sawDiskFull = true
	}
	// rsync's messages quote upstream's file names: a record or a log line stays small.
	if len(s) > maxLineLen {
		s = s[:maxLineLen] + "…"
	}
	l.lines = append(l.lines, s)
	if len(l.lines) > l.n {
		l.lines = l.lines[len(l.lines)-l.n:]
	}
}

// maxLineLen bounds one kept line of rsync's stderr.
const maxLineLen = 240

// diskFullRe is rsync's own report of a full disk: by the receiving side, and ending with
// the errno. (Upstream's file names appear in other lines, quoted: a name that says "No
// space left on device" must not pass for a full disk.)
var diskFullRe = regexp.MustCompile(`^rsync(: error)?:? \[(receiver|generator)\] .*: (No space left on device \(28\)|Disk quota exceeded \(122\))$`)

// diskFull reports whether rsync said the mirror's disk is full.
func (l *lineRing) diskFull() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sawDiskFull
}

func (l *lineRing) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *lineRing) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return ""
	}
	return l.lines[len(l.lines)-1]
}
