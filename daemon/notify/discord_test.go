package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/amwi/amwi/internal/netguard"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// gotMessage is the webhook payload as Discord documents it, declared apart from the
// package's own types so a wrong JSON tag there shows up here.
type gotMessage struct {
	Username string `json:"username"`
	Embeds   []struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Color       int    `json:"color"`
		Timestamp   string `json:"timestamp"`
		Fields      []struct {
			Name   string `json:"name"`
			Value  string `json:"value"`
			Inline bool   `json:"inline"`
		} `json:"fields"`
	} `json:"embeds"`
}

// field returns the value of the first embed's field called name.
func (m *gotMessage) field(name string) (string, bool) {
	for _, f := range m.Embeds[0].Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return "", false
}

// lockedBuffer collects log output written by Run's goroutine while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testLogger logs everything, debug included, into a buffer shown only on failure or -v.
func testLogger(t *testing.T) (*slog.Logger, *lockedBuffer) {
	t.Helper()
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("log:\n%s", buf)
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// sleepRecorder stands in for the real sleep: it records what was asked and returns at once.
type sleepRecorder struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepRecorder) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

// newTestDiscord returns a notifier for webhookURL with a recorded sleep and a fixed clock.
func newTestDiscord(t *testing.T, webhookURL string, client *http.Client) (*Discord, *lockedBuffer, *sleepRecorder) {
	t.Helper()
	log, buf := testLogger(t)
	d := New(webhookURL, client, log)
	rec := &sleepRecorder{}
	d.sleep = rec.sleep
	d.now = func() time.Time { return testNow }
	return d, buf, rec
}

// closedURL is a loopback webhook URL on which nothing listens any more.
func closedURL(t *testing.T, path string) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + path
	srv.Close()
	return u
}

func TestPayload(t *testing.T) {
	const upstream = "rsync://mirror.example.org/archlinux/"
	tail := make([]string, 12)
	for i := range tail {
		tail[i] = fmt.Sprintf("line %d", i+1)
	}
	tail[11] = "oops ``` a fence in the log"

	longLine := strings.Repeat("é", 999) + "X" // multi-byte: limits count characters
	var longTail []string
	for range 10 {
		longTail = append(longTail, longLine)
	}
	longTail[9] = strings.Repeat("é", 995) + "END"

	tests := []struct {
		name  string
		event SyncEvent
		title string
		color int
		// fields that must be present with exactly this value, and fields that must be absent
		fields map[string]string
		absent []string
		check  func(t *testing.T, m *gotMessage)
	}{
		{
			name:   "started",
			event:  SyncEvent{Kind: KindStarted, Trigger: TriggerSchedule, Upstream: upstream},
			title:  "Sync started",
			color:  0x3498db,
			fields: map[string]string{"Trigger": "schedule", "Upstream": "`" + upstream + "`"},
			absent: []string{"Duration", "Data", "Packages", "Reason"},
			check: func(t *testing.T, m *gotMessage) {
				if d := m.Embeds[0].Description; d != "" {
					t.Errorf("description = %q, want none", d)
				}
			},
		},
		{
			name: "succeeded",
			event: SyncEvent{
				Kind: KindSucceeded, Trigger: TriggerCLI, Upstream: upstream,
				Duration: 83400 * time.Millisecond, Bytes: 1536 << 20, Files: 1234,
				Added: 3, Updated: 12, Removed: 1,
			},
			title: "Sync succeeded",
			color: 0x2ecc71,
			fields: map[string]string{
				"Trigger":  "cli",
				"Duration": "1m23s",
				"Data":     "1.5 GiB in 1234 files",
				"Packages": "3 added, 12 updated, 1 removed",
			},
			absent: []string{"Reason"},
		},
		{
			name:   "succeeded with nothing new",
			event:  SyncEvent{Kind: KindSucceeded, Trigger: TriggerWeb, Duration: 400 * time.Millisecond, Files: 1, Bytes: 700},
			title:  "Sync succeeded",
			color:  0x2ecc71,
			fields: map[string]string{"Duration": "0s", "Data": "700 B in 1 file"},
			absent: []string{"Packages", "Upstream"},
		},
		{
			name: "failed",
			event: SyncEvent{
				Kind: KindFailed, Trigger: TriggerWeb, Upstream: upstream, Duration: 12 * time.Second,
				Bytes: 2048, Files: 2, Reason: "rsync exited with code 23 (partial transfer)", LogTail: tail,
			},
			title: "Sync failed",
			color: 0xe74c3c,
			fields: map[string]string{
				"Trigger":  "web",
				"Duration": "12s",
				"Data":     "2.0 KiB in 2 files",
				"Reason":   "rsync exited with code 23 (partial transfer)",
			},
			check: func(t *testing.T, m *gotMessage) {
				desc := m.Embeds[0].Description
				inner, ok := strings.CutPrefix(desc, "```\n")
				inner, ok2 := strings.CutSuffix(inner, "\n```")
				if !ok || !ok2 {
					t.Fatalf("log tail is not a code block:\n%s", desc)
				}
				if n := strings.Count(desc, "```"); n != 2 {
					t.Errorf("%d fences in the description, want 2 (a ``` in the log must not end the block):\n%s", n, desc)
				}
				lines := strings.Split(inner, "\n")
				want := []string{"line 3", "line 4", "line 5", "line 6", "line 7", "line 8", "line 9", "line 10", "line 11"}
				if len(lines) != 10 || !slices.Equal(lines[:9], want) || !strings.HasPrefix(lines[9], "oops ") {
					t.Errorf("log tail lines = %q, want the last 10", lines)
				}
			},
		},
		{
			name: "failed with everything too long",
			event: SyncEvent{
				Kind: KindFailed, Trigger: TriggerSchedule,
				Upstream: "rsync://" + strings.Repeat("u", 2000),
				Reason:   strings.Repeat("r", 5000),
				LogTail:  longTail,
			},
			title: "Sync failed",
			color: 0xe74c3c,
			check: func(t *testing.T, m *gotMessage) {
				em := m.Embeds[0]
				total := runes(em.Title) + runes(em.Description)
				for _, f := range em.Fields {
					total += runes(f.Name) + runes(f.Value)
					if runes(f.Value) > 1024 {
						t.Errorf("field %s has %d characters, Discord allows 1024", f.Name, runes(f.Value))
					}
				}
				if reason, _ := m.field("Reason"); runes(reason) != 1024 || !strings.HasSuffix(reason, "r…") {
					t.Errorf("reason not cut to 1024 characters ending in …: %d characters, ends %q", runes(reason), reason[len(reason)-8:])
				}
				if up, _ := m.field("Upstream"); !strings.HasPrefix(up, "`rsync://uuu") || !strings.HasSuffix(up, "u…`") {
					t.Errorf("upstream not cut inside its code span: ...%q", up[len(up)-10:])
				}
				if n := runes(em.Description); n > 4096 {
					t.Errorf("description has %d characters, Discord allows 4096", n)
				}
				if !strings.HasPrefix(em.Description, "```\n…") || !strings.HasSuffix(em.Description, "END\n```") {
					t.Errorf("log tail should keep its end and mark the cut at its start: %q … %q",
						string([]rune(em.Description)[:8]), em.Description[len(em.Description)-10:])
				}
				if total > 6000 {
					t.Errorf("embed has %d characters, Discord allows 6000", total)
				}
			},
		},
		{
			name:   "unknown kind with a long name",
			event:  SyncEvent{Kind: strings.Repeat("k", 300), Trigger: "   "},
			color:  0x95a5a6,
			absent: []string{"Trigger"}, // blank: Discord refuses empty field values
			check: func(t *testing.T, m *gotMessage) {
				title := m.Embeds[0].Title
				if runes(title) != 256 || !strings.HasPrefix(title, "Sync kkk") || !strings.HasSuffix(title, "k…") {
					t.Errorf("title not cut to 256 characters: %d, %q", runes(title), title)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan gotMessage, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost {
					t.Errorf("method %s, want POST", r.Method)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
				var m gotMessage
				if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
					t.Errorf("decode payload: %v", err)
				}
				got <- m
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()

			d, _, _ := newTestDiscord(t, srv.URL+"/api/webhooks/1/token", srv.Client())
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			d.Notify(tt.event)

			var m gotMessage
			select {
			case m = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no message reached the webhook in 5 s")
			}
			if m.Username != "AMWI" {
				t.Errorf("username %q, want AMWI", m.Username)
			}
			if len(m.Embeds) != 1 {
				t.Fatalf("%d embeds, want 1", len(m.Embeds))
			}
			em := m.Embeds[0]
			if tt.title != "" && em.Title != tt.title {
				t.Errorf("title %q, want %q", em.Title, tt.title)
			}
			if em.Color != tt.color {
				t.Errorf("color %#x, want %#x", em.Color, tt.color)
			}
			if em.Timestamp != "2026-01-02T03:04:05Z" {
				t.Errorf("timestamp %q, want RFC 3339 of the clock", em.Timestamp)
			}
			for name, want := range tt.fields {
				if v, ok := m.field(name); !ok || v != want {
					t.Errorf("field %s = %q (present %v), want %q", name, v, ok, want)
				}
			}
			for _, name := range tt.absent {
				if v, ok := m.field(name); ok {
					t.Errorf("field %s = %q, want none", name, v)
				}
			}
			if tt.check != nil {
				tt.check(t, &m)
			}
		})
	}
}

// reply is one scripted answer of a fake webhook.
type reply struct {
	status     int
	retryAfter string // Retry-After header
	body       string
}

// scriptedWebhook answers with replies in turn, repeating the last, and counts requests
// and successes.
func scriptedWebhook(t *testing.T, replies ...reply) (srv *httptest.Server, requests, delivered *atomic.Int32, times *[]time.Time) {
	t.Helper()
	requests, delivered = &atomic.Int32{}, &atomic.Int32{}
	var mu sync.Mutex
	times = &[]time.Time{}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		*times = append(*times, time.Now())
		mu.Unlock()
		n := int(requests.Add(1))
		rp := replies[min(n, len(replies))-1]
		if rp.retryAfter != "" {
			w.Header().Set("Retry-After", rp.retryAfter)
		}
		if rp.body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		if rp.status/100 == 2 {
			delivered.Add(1)
		}
		w.WriteHeader(rp.status)
		io.WriteString(w, rp.body)
	}))
	t.Cleanup(srv.Close)
	return srv, requests, delivered, times
}

func TestRetries(t *testing.T) {
	rateLimited := func(secs string) reply {
		return reply{429, "1", `{"message": "You are being rate limited.", "retry_after": ` + secs + `, "global": false}`}
	}
	tests := []struct {
		name      string
		replies   []reply
		requests  int
		delivered bool
		waits     []time.Duration
		warn      []string // substrings of the warning; none when delivered
	}{
		{"204", []reply{{status: 204}}, 1, true, nil, nil},
		{"200", []reply{{status: 200, body: `{"id": "1"}`}}, 1, true, nil, nil},
		{"429 then 204", []reply{rateLimited("0.2"), {status: 204}}, 2, true, []time.Duration{200 * time.Millisecond}, nil},
		{"429 with the header only", []reply{{status: 429, retryAfter: "3"}, {status: 204}}, 2, true, []time.Duration{3 * time.Second}, nil},
		{"429 asking for an hour waits a minute", []reply{rateLimited("3600"), {status: 204}}, 2, true, []time.Duration{time.Minute}, nil},
		{"always 429", []reply{rateLimited("0.2")}, 6, false, slices.Repeat([]time.Duration{200 * time.Millisecond}, 5), []string{"still rate limited"}},
		{"500 twice then 204", []reply{{status: 500}, {status: 500}, {status: 204}}, 3, true, []time.Duration{time.Second, 2 * time.Second}, nil},
		{
			"always 500", []reply{{status: 502, body: "<html>bad gateway</html>"}}, 4, false,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second},
			[]string{"gave up after 4 attempts", "502 Bad Gateway"},
		},
		{
			"400 gives up at once", []reply{{status: 400, body: `{"message": "Invalid Form Body", "code": 50035}`}}, 1, false, nil,
			[]string{"400 Bad Request"},
		},
		{
			"404 says what to fix", []reply{{status: 404, body: `{"message": "Unknown Webhook", "code": 10015}`}}, 1, false, nil,
			[]string{"404 Not Found", "discord.webhook_url"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, requests, delivered, _ := scriptedWebhook(t, tt.replies...)
			d, logs, rec := newTestDiscord(t, srv.URL+"/api/webhooks/1/token", srv.Client())

			d.handle(t.Context(), queued{SyncEvent{Kind: KindSucceeded}, testNow})

			if n := int(requests.Load()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
			if want := map[bool]int32{true: 1}[tt.delivered]; delivered.Load() != want {
				t.Errorf("delivered %d times, want %d", delivered.Load(), want)
			}
			if waits := rec.get(); !slices.Equal(waits, tt.waits) {
				t.Errorf("waited %v, want %v", waits, tt.waits)
			}
			warned := strings.Contains(logs.String(), "level=WARN")
			if warned != (tt.warn != nil) {
				t.Errorf("warning logged: %v, want %v", warned, tt.warn != nil)
			}
			for _, s := range tt.warn {
				if !strings.Contains(logs.String(), s) {
					t.Errorf("log does not say %q", s)
				}
			}
		})
	}
}

// TestRateLimitRealWait checks the real sleep honours retry_after between the two requests.
func TestRateLimitRealWait(t *testing.T) {
	t.Setenv(netguard.UnsafeEnv, "1") // the stand-in lives on loopback
	srv, requests, delivered, times := scriptedWebhook(t,
		reply{429, "1", `{"message": "You are being rate limited.", "retry_after": 0.2, "global": false}`},
		reply{status: 204})
	log, _ := testLogger(t)
	d := New(srv.URL+"/api/webhooks/1/token", nil, log)
	if err := d.deliver(t.Context(), SyncEvent{Kind: KindStarted}, testNow); err != nil {
		t.Fatal(err)
	}
	if requests.Load() != 2 || delivered.Load() != 1 {
		t.Fatalf("%d requests, %d delivered; want 2 and 1", requests.Load(), delivered.Load())
	}
	if gap := (*times)[1].Sub((*times)[0]); gap < 200*time.Millisecond || gap > 900*time.Millisecond {
		t.Errorf("retried after %s, want about retry_after (200ms; not the header's 1 s)", gap)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		header, body string
		want         time.Duration
	}{
		{"1", `{"retry_after": 0.25}`, 250 * time.Millisecond},
		{"2", `{"message": "You are being rate limited."}`, 2 * time.Second},
		{"0.5", "", 500 * time.Millisecond},
		{"", "", time.Second},
		{"Wed, 21 Oct 2015 07:28:00 GMT", "", time.Second},
		{"-3", `{"retry_after": -1}`, time.Second},
		{"NaN", "", time.Second},
		{"Inf", "", time.Minute},
		{"", `{"retry_after": 64.57}`, time.Minute},
		{"", `not json`, time.Second},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.header, []byte(tt.body)); got != tt.want {
			t.Errorf("retryAfter(%q, %q) = %s, want %s", tt.header, tt.body, got, tt.want)
		}
	}
}

func TestDeadWebhookNeverBlocks(t *testing.T) {
	log, logs := testLogger(t)
	d := New(closedURL(t, "/api/webhooks/1/token"), nil, log) // the real sleep

	start := time.Now()
	for i := range 100 {
		d.Notify(SyncEvent{Kind: KindFailed, Reason: fmt.Sprint("attempt ", i)})
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("100 Notify calls took %s", elapsed)
	}
	if n := strings.Count(logs.String(), "queue full"); n != 100-queueSize {
		t.Errorf("%d drops logged, want %d", n, 100-queueSize)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	time.Sleep(300 * time.Millisecond) // refused at once, so Run is now in its 1 s backoff
	cancel()
	start = time.Now()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run still running 2 s after its context ended")
	}
	if elapsed := time.Since(start); elapsed > 500*time.Millisecond {
		t.Errorf("Run took %s to return after cancel", elapsed)
	}
	if strings.Contains(logs.String(), "notification failed") {
		t.Error("an event abandoned at shutdown was logged as a failure")
	}
}

func TestRunStopsDuringHangingRequest(t *testing.T) {
	t.Setenv(netguard.UnsafeEnv, "1") // the stand-in lives on loopback
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a client hanging up only after this
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler outlives the test

	log, _ := testLogger(t)
	d := New(srv.URL+"/api/webhooks/1/token", nil, log) // 15 s client timeout
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	d.Notify(SyncEvent{Kind: KindStarted})
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the webhook")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Run waited for the hanging request after its context ended")
	}
}

func TestWebhookSecretNeverLogged(t *testing.T) {
	const token = "TOPSECRET"
	const path = "/api/webhooks/123/" + token
	echo := func(status int, body func(r *http.Request) string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, body(r))
		}))
		t.Cleanup(srv.Close)
		return srv.URL + path
	}
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a client hanging up only after this
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler outlives the test

	tests := []struct {
		name   string
		url    string
		client *http.Client
	}{
		{"connection refused", closedURL(t, path), nil},
		{"404 echoing the path", echo(404, func(r *http.Request) string {
			return `{"message": "Unknown Webhook ` + r.URL.Path + `", "code": 10015}`
		}), nil},
		{"500 echoing the URL", echo(500, func(r *http.Request) string {
			return "upstream error for http://" + r.Host + r.URL.Path
		}), nil},
		{"client timeout", hanging.URL + path, &http.Client{Timeout: 50 * time.Millisecond}},
		{"unparsable URL", "http://127.0.0.1:1" + path + "\x7f", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, logs, _ := newTestDiscord(t, tt.url, tt.client)
			d.Notify(SyncEvent{Kind: KindFailed})
			d.handle(t.Context(), <-d.queue)
			out := logs.String()
			if !strings.Contains(out, "discord: notification failed") {
				t.Fatal("no warning logged: the test proves nothing")
			}
			if strings.Contains(out, token) {
				t.Errorf("the webhook token is in the log:\n%s", out)
			}
		})
	}

	// The point of unwrapping: net/http's own error quotes the URL.
	_, err := http.Post(closedURL(t, path), "application/json", strings.NewReader("{}"))
	if err == nil || !strings.Contains(err.Error(), token) {
		t.Errorf("net/http's error no longer quotes the URL (%v); the test cases above may be too easy", err)
	}
}

func TestTimestampIsWhenNotified(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m gotMessage
		json.NewDecoder(r.Body).Decode(&m)
		got <- m.Embeds[0].Timestamp
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d, _, _ := newTestDiscord(t, srv.URL+"/api/webhooks/1/token", srv.Client())
	d.Notify(SyncEvent{Kind: KindStarted})
	d.now = func() time.Time { return testNow.Add(time.Hour) } // delivered an hour later
	d.handle(t.Context(), <-d.queue)
	if ts := <-got; ts != "2026-01-02T03:04:05Z" {
		t.Errorf("timestamp %s, want the time of Notify", ts)
	}
}

func TestNilDiscordDoesNothing(t *testing.T) {
	var d *Discord
	d.Notify(SyncEvent{Kind: KindStarted})
	d.Run(t.Context()) // returns at once
}

func TestNotifyCopiesLogTail(t *testing.T) {
	d, _, _ := newTestDiscord(t, "http://127.0.0.1:1/", nil)
	tail := []string{"a", "b"}
	d.Notify(SyncEvent{Kind: KindFailed, LogTail: tail})
	tail[0] = "changed after Notify"
	if q := <-d.queue; q.LogTail[0] != "a" {
		t.Errorf("queued log tail changed with the caller's slice: %q", q.LogTail)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		s         string
		n         int
		want      string
		wantStart string
	}{
		{"short", 10, "short", "short"},
		{"exactly", 7, "exactly", "exactly"},
		{"abcdefgh", 5, "abcd…", "…efgh"},
		{"ééééé", 3, "éé…", "…éé"},
		{"abc", 0, "", ""},
	}
	for _, tt := range tests {
		if got := truncate(tt.s, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
		if got := truncateStart(tt.s, tt.n); got != tt.wantStart {
			t.Errorf("truncateStart(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.wantStart)
		}
	}
}

// FuzzMessage checks that whatever the sync engine reports, the payload stays within
// Discord's limits and the log tail stays one code block.
func FuzzMessage(f *testing.F) {
	f.Add("failed", "web", "rsync://a/b", "reason", "line", 12)
	f.Add("started", "", "", "", "", 0)
	f.Add("x", " ", "``", "\n", "````````", 3)
	f.Add("failed", "cli", strings.Repeat("ü", 2000), strings.Repeat("r", 3000), strings.Repeat("`", 700), 10)
	f.Fuzz(func(t *testing.T, kind, trigger, upstream, reason, line string, lines int) {
		e := SyncEvent{Kind: kind, Trigger: trigger, Upstream: upstream, Reason: reason, Duration: time.Duration(lines) * time.Second}
		for i := range lines % 40 {
			e.LogTail = append(e.LogTail, fmt.Sprint(i, line))
		}
		m := message(e, testNow)
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		em := m.Embeds[0]
		if runes(em.Title) > limitTitle || runes(em.Description) > limitDescription || em.size() > limitEmbedTotal {
			t.Errorf("over a limit: title %d, description %d, total %d", runes(em.Title), runes(em.Description), em.size())
		}
		for _, fl := range em.Fields {
			if runes(fl.Name) > limitFieldName || runes(fl.Value) > limitFieldValue || strings.TrimSpace(fl.Value) == "" {
				t.Errorf("bad field %q: %d characters", fl.Name, runes(fl.Value))
			}
		}
		if em.Description != "" && (strings.Count(em.Description, "```") != 2 ||
			!strings.HasPrefix(em.Description, "```\n") || !strings.HasSuffix(em.Description, "\n```")) {
			t.Errorf("log tail is not exactly one code block: %q", em.Description)
		}
	})
}

// TestWebhookCannotProbeTheLAN: the default client refuses loopback (by address and by
// name), follows no redirect, and nothing of an answer's body reaches the error or the log.
func TestWebhookCannotProbeTheLAN(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://127.0.0.1:1/admin", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "INTERNAL-ONLY-DATA")
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	for _, u := range []string{srv.URL + "/x", "http://localhost:" + port + "/x"} {
		log, buf := testLogger(t)
		err := New(u, nil, log).SendOnce(t.Context(), SyncEvent{Kind: "test"})
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: %v, want refused", u, err)
		}
		_ = buf
	}
	t.Setenv(netguard.UnsafeEnv, "1")
	log, buf := testLogger(t)
	err := New(srv.URL+"/x", nil, log).SendOnce(t.Context(), SyncEvent{Kind: "test"})
	if err == nil || strings.Contains(err.Error(), "INTERNAL-ONLY-DATA") || strings.Contains(buf.String(), "INTERNAL-ONLY-DATA") || !strings.Contains(err.Error(), "500") {
		t.Errorf("an answer's body reached the error or the log: %v\n%s", err, buf)
	}
	err = New(srv.URL+"/redirect", nil, log).SendOnce(t.Context(), SyncEvent{Kind: "test"})
	if err == nil || !strings.Contains(err.Error(), "302") {
		t.Errorf("a redirect was followed: %v", err)
	}
}
