package notify

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/amwi/amwi/internal/netguard"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/amwi/amwi/internal/units"
)

// Event kinds.
const (
	KindStarted   = "started"
	KindSucceeded = "succeeded"
	// KindIncomplete: the sync ended, but files its databases name could not be fetched.
	KindIncomplete = "incomplete"
	KindFailed     = "failed"
)

// What started a sync.
const (
	TriggerSchedule = "schedule"
	TriggerCLI      = "cli"
	TriggerWeb      = "web"
)

// SyncEvent is what the sync engine reports.
type SyncEvent struct {
	Kind                    string        // KindStarted, KindSucceeded, KindIncomplete or KindFailed
	Trigger                 string        // TriggerSchedule, TriggerCLI or TriggerWeb
	Upstream                string        // rsync URL of the upstream used; shown, it holds no secret
	Duration                time.Duration // for succeeded and failed
	Bytes                   int64         // bytes received
	Files                   int           // files transferred
	Added, Updated, Removed int           // packages changed (0 when unknown)
	Reason                  string        // for failed and incomplete: one line
	LogTail                 []string      // for failed: rsync's last stderr lines; the last 10 are shown
}

const (
	queueSize = 16

	// A 5xx or a network error is retried after 1 s, 2 s, 4 s: four attempts in all.
	maxAttempts  = 4
	firstBackoff = time.Second

	// A 429 says exactly how long to wait, so it does not use up an attempt; but a webhook
	// that answers nothing else must not hold the queue forever.
	maxRateLimitWaits = 5
	maxRetryAfter     = 60 * time.Second

	defaultTimeout = 15 * time.Second

	// Enough of a response to read Discord's JSON error; the rest is discarded.
	maxResponseBody = 64 << 10

	logTailLines = 10
)

// Discord's embed limits, in characters. A message over any of them is refused with a
// 400, so every text is cut to fit before it is sent.
const (
	limitTitle       = 256
	limitDescription = 4096
	limitFieldName   = 256
	limitFieldValue  = 1024
	limitEmbedTotal  = 6000
)

const (
	colourBlue   = 0x3498db
	colourGreen  = 0x2ecc71
	colourRed    = 0xe74c3c
	colourGrey   = 0x95a5a6
	colourOrange = 0xe67e22
)

// Discord posts sync events to a Discord webhook. A nil *Discord does nothing, so the
// daemon can hold one whether or not notifications are configured.
type Discord struct {
	url     string
	secrets []string // the URL and the parts of it that identify the webhook, longest first
	client  *http.Client
	log     *slog.Logger
	queue   chan queued

	// Replaceable by tests: waiting between attempts and the clock that stamps events.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

// New returns a notifier posting to webhookURL with client (nil: a client with a 15 s
// timeout that dials public addresses only and follows no redirect, netguard.Client) and
// logging to log (nil: slog.Default()). Nothing is sent until Run is called.
func New(webhookURL string, client *http.Client, log *slog.Logger) *Discord {
	if client == nil {
		client = netguard.Client(defaultTimeout, netguard.PrivateAllowed())
	}
	if log == nil {
		log = slog.Default()
	}
	return &Discord{
		url:     webhookURL,
		secrets: secretsOf(webhookURL),
		client:  client,
		log:     log,
		queue:   make(chan queued, queueSize),
		sleep:   sleepCtx,
		now:     time.Now,
	}
}

// Notify queues e and returns at once; it never blocks. When the queue is full — the
// webhook has been failing or slow for a while — the event is dropped with a warning.
func (d *Discord) Notify(e SyncEvent) {
	if d == nil {
		return
	}
	// The caller may reuse its slice once we return; Run reads ours later.
	e.LogTail = slices.Clone(lastLines(e.LogTail))
	select {
	case d.queue <- queued{e, d.now()}:
	default:
		d.log.Warn("discord: queue full, notification dropped", "event", e.Kind)
	}
}

// Run sends queued events, in order, until ctx ends; then it returns promptly, abandoning
// an attempt in progress and dropping what is left. Call it once, in its own goroutine.
func (d *Discord) Run(ctx context.Context) {
	if d == nil {
		return
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case q := <-d.queue:
			d.handle(ctx, q)
		}
	}
}

// handle delivers one event and logs the outcome. It recovers from a panic because Run
// is a goroutine of its own: a panic there would take the whole daemon down over a chat
// message.
func (d *Discord) handle(ctx context.Context, q queued) {
	e := q.SyncEvent
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("discord: notification panicked", "event", e.Kind, "panic", d.redact(fmt.Sprint(r)))
		}
	}()
	err := d.deliver(ctx, e, q.at)
	switch {
	case err == nil:
		d.log.Debug("discord: notified", "event", e.Kind)
	case ctx.Err() != nil:
		d.log.Debug("discord: notification dropped at shutdown", "event", e.Kind)
	default:
		d.log.Warn("discord: notification failed", "event", e.Kind, "err", d.redact(err.Error()))
	}
}

// request is the webhook POST of e, which happened at at. Its errors are free of the
// webhook URL.
func (d *Discord) request(ctx context.Context, e SyncEvent, at time.Time) (*http.Request, error) {
	body, err := json.Marshal(message(e, at))
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", d.clean(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "AMWI (https://github.com/amwi/amwi)")
	return req, nil
}

// deliver posts e, which happened at at, waiting out rate limits and retrying server and
// network errors. Every error it returns is already free of the webhook URL.
func (d *Discord) deliver(ctx context.Context, e SyncEvent, at time.Time) error {
	// A URL that does not parse will not parse on the next attempt either.
	req, err := d.request(ctx, e, at)
	if err != nil {
		return err
	}
	backoff := firstBackoff
	attempts, waits := 0, 0
	for {
		res, err := d.post(req)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			// A network error: retried below.
		case res.status >= 200 && res.status < 300:
			return nil
		case res.status == http.StatusTooManyRequests:
			waits++
			if waits > maxRateLimitWaits {
				return fmt.Errorf("still rate limited after %d waits", maxRateLimitWaits)
			}
			wait := retryAfter(res.header.Get("Retry-After"), res.body)
			d.log.Debug("discord: rate limited", "event", e.Kind, "wait", wait)
			if err := d.sleep(ctx, wait); err != nil {
				return err
			}
			continue
		case res.status >= 500:
			err = d.statusError(res)
		default:
			// Any other answer (400 bad payload, 401/404 wrong or deleted webhook) will
			// not change by asking again.
			return d.statusError(res)
		}
		attempts++
		if attempts >= maxAttempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempts, err)
		}
		d.log.Debug("discord: retrying", "event", e.Kind, "attempt", attempts, "wait", backoff, "err", d.redact(err.Error()))
		if err := d.sleep(ctx, backoff); err != nil {
			return err
		}
		backoff *= 2
	}
}

// queued is an event and when it was reported: the embed shows that time, not the time a
// rate limit or a retry finally let it through.
type queued struct {
	SyncEvent
	at time.Time
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// post makes one attempt with a copy of req and a fresh body: the transport may still hold
// the previous attempt's request after a failure. A network error comes back without the
// URL in it.
func (d *Discord) post(req *http.Request) (*response, error) {
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	resp, err := d.client.Do(r)
	if err != nil {
		return nil, d.clean(err)
	}
	defer resp.Body.Close()
	// Reading (and so draining) the body lets the connection be reused; a read error
	// only loses Discord's explanation, not the status.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// statusError describes an unsuccessful answer.
func (d *Discord) statusError(res *response) error {
	// Only the status: the body is whatever the host answered, and a host that is not
	// Discord (discord.allow_any_host) must not be able to show or log anything through us.
	msg := fmt.Sprintf("webhook answered %d %s", res.status, http.StatusText(res.status))
	if res.status == http.StatusUnauthorized || res.status == http.StatusNotFound {
		msg += "; the webhook was deleted or discord.webhook_url is wrong"
	}
	return errors.New(d.redact(msg))
}

// clean turns an error from net/http into one that can be logged. The client's errors are
// *url.Error, whose text quotes the URL — the webhook's secret — so only the inner error is
// kept, and its text is scrubbed as well in case it repeats the URL.
func (d *Discord) clean(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	if err == nil {
		return errors.New("request failed")
	}
	if s := err.Error(); d.redact(s) != s {
		return errors.New(d.redact(s))
	}
	return err
}

// redact replaces the webhook URL, and the parts of it that identify the webhook, in s.
func (d *Discord) redact(s string) string {
	for _, secret := range d.secrets {
		s = strings.ReplaceAll(s, secret, "[webhook]")
	}
	return s
}

// secretsOf lists what must never be shown of a webhook URL: the URL itself, its path
// (/api/webhooks/ID/TOKEN) and its last segment (the token), longest first so the longest
// match is replaced whole. Short segments are left alone: replacing "api" everywhere
// would garble messages without hiding anything.
func secretsOf(webhookURL string) []string {
	s := []string{webhookURL}
	if u, err := url.Parse(webhookURL); err == nil {
		s = append(s, u.Path, u.EscapedPath(), u.String())
		if base := path.Base(u.Path); len(base) >= 8 {
			s = append(s, base)
		}
	}
	s = slices.DeleteFunc(s, func(x string) bool { return len(x) < 2 })
	slices.SortFunc(s, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return slices.Compact(s)
}

// retryAfter reads how long Discord asks us to wait: retry_after in the JSON body
// (seconds, fractional), else the Retry-After header, else a second; at most a minute.
func retryAfter(header string, body []byte) time.Duration {
	secs := 0.0
	var b struct {
		RetryAfter float64 `json:"retry_after"`
	}
	if json.Unmarshal(body, &b) == nil && b.RetryAfter > 0 {
		secs = b.RetryAfter
	} else if h, err := strconv.ParseFloat(strings.TrimSpace(header), 64); err == nil && h > 0 {
		secs = h
	}
	switch {
	case !(secs > 0): // also NaN
		return time.Second
	case secs >= maxRetryAfter.Seconds(): // also +Inf
		return maxRetryAfter
	}
	return time.Duration(secs * float64(time.Second))
}

// sleepCtx waits for d or until ctx ends, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// The webhook payload: https://discord.com/developers/docs/resources/webhook#execute-webhook
type webhookMessage struct {
	Username string  `json:"username"`
	Embeds   []embed `json:"embeds"`
}

type embed struct {
	Title       string  `json:"title"`
	Description string  `json:"description,omitempty"`
	Color       int     `json:"color"`
	Fields      []field `json:"fields,omitempty"`
	Timestamp   string  `json:"timestamp"`
}

type field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline,omitempty"`
}

// size is what Discord counts against limitEmbedTotal.
func (e *embed) size() int {
	n := runes(e.Title) + runes(e.Description)
	for _, f := range e.Fields {
		n += runes(f.Name) + runes(f.Value)
	}
	return n
}

// message builds the payload for e, within Discord's limits.
func message(e SyncEvent, now time.Time) webhookMessage {
	em := embed{
		Title:     truncate(title(e.Kind), limitTitle),
		Color:     colour(e.Kind),
		Timestamp: now.UTC().Format(time.RFC3339),
	}
	add := func(name, value string, inline bool) {
		if strings.TrimSpace(value) == "" {
			return // Discord refuses a blank field with a 400
		}
		em.Fields = append(em.Fields, field{
			Name:   truncate(name, limitFieldName),
			Value:  truncate(value, limitFieldValue),
			Inline: inline,
		})
	}
	if e.Trigger != "" {
		add("Trigger", e.Trigger, true)
	}
	if e.Kind != KindStarted {
		add("Duration", e.Duration.Round(time.Second).String(), true)
		add("Data", units.Bytes(e.Bytes)+" in "+plural(e.Files, "file"), true)
	}
	if p := packagesChanged(e.Added, e.Updated, e.Removed); p != "" {
		add("Packages", p, true)
	}
	if e.Upstream != "" {
		// In code style so Discord's markdown leaves underscores and asterisks alone.
		u := strings.ReplaceAll(e.Upstream, "`", "")
		add("Upstream", "`"+truncate(u, limitFieldValue-2)+"`", false)
	}
	if e.Reason != "" {
		add("Reason", e.Reason, false)
	}
	// The log tail goes in the description, which holds four times what a field does,
	// and takes whatever room the rest of the embed leaves.
	if len(e.LogTail) > 0 {
		em.Description = codeBlock(e.LogTail, min(limitDescription, limitEmbedTotal-em.size()))
	}
	return webhookMessage{Username: "AMWI", Embeds: []embed{em}}
}

func title(kind string) string {
	if kind == "" {
		return "Sync event"
	}
	return "Sync " + kind
}

func colour(kind string) int {
	switch kind {
	case KindStarted:
		return colourBlue
	case KindSucceeded:
		return colourGreen
	case KindIncomplete:
		return colourOrange
	case KindFailed:
		return colourRed
	}
	return colourGrey
}

func packagesChanged(added, updated, removed int) string {
	var parts []string
	for _, p := range []struct {
		n    int
		verb string
	}{{added, "added"}, {updated, "updated"}, {removed, "removed"}} {
		if p.n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.verb))
		}
	}
	return strings.Join(parts, ", ")
}

func lastLines(lines []string) []string {
	if len(lines) > logTailLines {
		return lines[len(lines)-logTailLines:]
	}
	return lines
}

// codeBlock renders the last lines of lines as a code block of at most limit characters.
// When they do not fit, the oldest text is cut: rsync's last words say what went wrong.
func codeBlock(lines []string, limit int) string {
	const fenceOpen, fenceClose = "```\n", "\n```"
	lines = lastLines(lines)
	clean := make([]string, len(lines))
	for i, l := range lines {
		clean[i] = defuseFences(strings.TrimRight(l, "\r\n"))
	}
	budget := limit - runes(fenceOpen) - runes(fenceClose)
	if budget < 2 {
		return ""
	}
	return fenceOpen + truncateStart(strings.Join(clean, "\n"), budget) + fenceClose
}

// defuseFences puts a zero-width space between adjacent backticks, so that no ``` in a log
// line can end the code block early. Single backticks, which cannot, are left alone.
func defuseFences(s string) string {
	if !strings.Contains(s, "``") {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if r == '`' && i > 0 && s[i-1] == '`' {
			b.WriteString("\u200b")
		}
		b.WriteRune(r)
	}
	return b.String()
}

func plural(n int, noun string) string { return units.Plural(n, noun) }

func runes(s string) int { return utf8.RuneCountInString(s) }

// truncate cuts s to at most n characters, ending it with "…" when cut.
func truncate(s string, n int) string {
	if runes(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	return string([]rune(s)[:n-1]) + "…"
}

// truncateStart cuts s to at most n characters by dropping its beginning, marking the cut
// with "…".
func truncateStart(s string, n int) string {
	if runes(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	return "…" + string(r[len(r)-(n-1):])
}

// Send delivers e now, with the queue's retries, and reports whether it arrived: for the
// dashboard's "send a test notification". Errors never contain the webhook URL.
func (d *Discord) Send(ctx context.Context, e SyncEvent) error {
	if d == nil {
		return errors.New("discord is not configured")
	}
	return d.deliver(ctx, e, time.Now())
}

// SendOnce posts e once: no retry, no waiting out a rate limit (the settings page's test
// button: one click, one request).
func (d *Discord) SendOnce(ctx context.Context, e SyncEvent) error {
	if d == nil {
		return errors.New("discord is not configured")
	}
	req, err := d.request(ctx, e, time.Now())
	if err != nil {
		return err
	}
	res, err := d.post(req)
	switch {
	case err != nil:
		return d.clean(err)
	case res.status >= 200 && res.status < 300:
		return nil
	}
	return d.statusError(res)
}
