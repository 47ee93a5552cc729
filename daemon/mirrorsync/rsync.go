package mirrorsync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
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

// rsyncRun is one rsync process.
type rsyncRun struct {
	Bin        string
	Args       []string
	OnStart    func(pgid int) // after start: priorities, throttle
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

// run starts rsync in its own process group and waits. When ctx ends rsync's group gets
// SIGCONT (it may be paused by the throttle) and SIGTERM, then SIGKILL after KillGrace.
func (r *rsyncRun) run(ctx context.Context) error {
	cmd := exec.Command(r.Bin, r.Args...)
	// Own process group: the throttle stops and continues rsync and the helpers it forks
	// together. Pdeathsig: rsync must not go on writing the mirror when amwi is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.Stdin = r.Stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rsync: %w", err)
	}
	pgid := cmd.Process.Pid
	// Whatever happens below, never leave rsync stopped or running behind us.
	defer unix.Kill(-pgid, unix.SIGCONT)
	setIdlePriority(pgid)
	if r.OnStart != nil {
		r.OnStart(pgid)
	}

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
			return
		}
		unix.Kill(-pgid, unix.SIGCONT)
		unix.Kill(-pgid, unix.SIGTERM)
		select {
		case <-time.After(r.KillGrace):
			unix.Kill(-pgid, unix.SIGKILL)
		case <-stop:
		}
	}()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if r.Stdout != nil {
			io.Copy(r.Stdout, stdout)
		} else {
			r.readStdout(stdout)
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				r.tail.add(l)
			}
		}
	}()
	wg.Wait()
	err = cmd.Wait()
	unix.Kill(-pgid, unix.SIGKILL) // helpers rsync forked, if any outlived it
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("rsync: %w", err)
	}
	code := ee.ExitCode()
	return &RsyncError{Code: code, Meaning: ExitMeaning(code), Last: r.tail.last()}
}

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

// setIdlePriority puts rsync at the idle I/O class and nice 19 so everything else on the
// box (LAN downloads first) comes before it. It is applied right after start, before rsync
// has connected and forked its receiver, which inherits it.
func setIdlePriority(pid int) {
	const ioprioWhoProcess, ioprioClassIdle, ioprioClassShift = 1, 3, 13
	unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(pid), ioprioClassIdle<<ioprioClassShift)
	unix.Setpriority(unix.PRIO_PROCESS, pid, 19)
}

// lineRing keeps the last n lines.
type lineRing struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func newLineRing(n int) *lineRing { return &lineRing{n: n} }

func (l *lineRing) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	l.lines = append(l.lines, s)
	if len(l.lines) > l.n {
		l.lines = l.lines[len(l.lines)-l.n:]
	}
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
