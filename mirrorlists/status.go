package mirrorlists

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Status is archlinux.org's /mirrors/status/json/.
type Status struct {
	Cutoff         int64 // seconds of history the figures cover
	LastCheck      time.Time
	NumChecks      int
	CheckFrequency int // seconds
	Version        int
	URLs           []StatusURL
}

// StatusURL is one URL (one protocol of one mirror host) in the status.
type StatusURL struct {
	URL            string
	Protocol       string // http, https, rsync, ftp
	LastSync       *time.Time
	CompletionPct  float64 // 0..1: the share of recent checks that succeeded
	Delay          *int64  // seconds behind the master; may be negative (clock skew)
	DurationAvg    *float64
	DurationStddev *float64
	Score          *float64 // lower is better
	Active         bool
	Country        string // "" for the worldwide (geo-balanced) mirrors
	CountryCode    string
	ISOs           bool
	IPv4           bool
	IPv6           bool
	Details        string // https://archlinux.org/mirrors/NAME/ID/
}

// ParseStatus decodes the mirror status JSON. It takes the quirks of the real thing:
// numbers written as integers (completion_pct: 1, after a trip through jq) or integers
// written as floats, null last_sync, delay, score and durations, negative delays, an
// empty country; unknown fields are ignored. An HTML page, truncated or invalid JSON, a
// wrongly typed field and a missing "urls" are errors that say so (and name the entry).
func ParseStatus(data []byte) (*Status, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n\ufeff")
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("parse mirror status: empty document")
	case trimmed[0] != '{':
		return nil, fmt.Errorf("parse mirror status: not a JSON object (starts with %q)", clip(string(trimmed), 40))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		return nil, fmt.Errorf("parse mirror status: %w", describeJSONError(err, trimmed))
	}
	f := fields{m: top}
	s := &Status{
		Cutoff:         deref(f.int("cutoff")),
		LastCheck:      deref(f.time("last_check")),
		NumChecks:      int(deref(f.int("num_checks"))),
		CheckFrequency: int(deref(f.int("check_frequency"))),
		Version:        int(deref(f.int("version"))),
	}
	if f.err != nil {
		return nil, fmt.Errorf("parse mirror status: %w", f.err)
	}
	var urls []json.RawMessage
	if raw, ok := top["urls"]; !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil, errors.New(`parse mirror status: no "urls" list`)
	} else if err := json.Unmarshal(raw, &urls); err != nil {
		return nil, fmt.Errorf(`parse mirror status: field "urls": want a list, got %s`, clip(string(bytes.TrimSpace(raw)), 40))
	}
	s.URLs = make([]StatusURL, 0, len(urls))
	for i, msg := range urls {
		u, err := parseStatusURL(msg)
		if err != nil {
			if u.URL != "" {
				return nil, fmt.Errorf("parse mirror status: urls[%d] (%s): %w", i, clip(u.URL, 80), err)
			}
			return nil, fmt.Errorf("parse mirror status: urls[%d]: %w", i, err)
		}
		s.URLs = append(s.URLs, u)
	}
	return s, nil
}

// parseStatusURL decodes one entry; on error the returned URL field is still set when
// it could be read, to name the entry.
func parseStatusURL(msg json.RawMessage) (StatusURL, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return StatusURL{}, fmt.Errorf("want an object, got %s", clip(string(bytes.TrimSpace(msg)), 40))
	}
	f := fields{m: m}
	u := StatusURL{URL: strings.TrimSpace(f.str("url"))}
	if f.err != nil {
		return StatusURL{}, f.err
	}
	u.Protocol = strings.ToLower(strings.TrimSpace(f.str("protocol")))
	u.LastSync = f.time("last_sync")
	u.CompletionPct = deref(f.float("completion_pct"))
	u.Delay = f.int("delay")
	u.DurationAvg = f.float("duration_avg")
	u.DurationStddev = f.float("duration_stddev")
	u.Score = f.float("score")
	u.Active = f.bool("active")
	u.Country = strings.TrimSpace(f.str("country"))
	u.CountryCode = strings.TrimSpace(f.str("country_code"))
	u.ISOs = f.bool("isos")
	u.IPv4 = f.bool("ipv4")
	u.IPv6 = f.bool("ipv6")
	u.Details = strings.TrimSpace(f.str("details"))
	return u, f.err
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// fields reads the members of one JSON object, remembering the first error with the
// member's name. Absent and null members read as zero or nil.
type fields struct {
	m   map[string]json.RawMessage
	err error
}

func (f *fields) get(key string) (string, bool) {
	raw, ok := f.m[key]
	if !ok || f.err != nil {
		return "", false
	}
	s := string(bytes.TrimSpace(raw))
	return s, s != "null"
}

func (f *fields) fail(key, want, got string) {
	f.err = fmt.Errorf("field %q: want %s, got %s", key, want, clip(got, 40))
}

func (f *fields) str(key string) string {
	s, ok := f.get(key)
	if !ok {
		return ""
	}
	var v string
	if json.Unmarshal([]byte(s), &v) != nil {
		f.fail(key, "a string", s)
	}
	return v
}

func (f *fields) bool(key string) bool {
	s, ok := f.get(key)
	if !ok {
		return false
	}
	if s != "true" && s != "false" {
		f.fail(key, "true or false", s)
	}
	return s == "true"
}

func (f *fields) float(key string) *float64 {
	s, ok := f.get(key)
	if !ok {
		return nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || !isJSONNumber(s) {
		f.fail(key, "a number or null", s)
		return nil
	}
	return &x
}

// int takes whole numbers, also when written as 12.0 or 1.2e1 (rounding others).
func (f *fields) int(key string) *int64 {
	s, ok := f.get(key)
	if !ok {
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return &n
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || !isJSONNumber(s) || math.Abs(x) > 1<<62 {
		f.fail(key, "a whole number or null", s)
		return nil
	}
	n := int64(math.Round(x))
	return &n
}

func (f *fields) time(key string) *time.Time {
	s, ok := f.get(key)
	if !ok || s == `""` {
		return nil
	}
	var str string
	if json.Unmarshal([]byte(s), &str) != nil {
		f.fail(key, "a time string or null", s)
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, str)
	if err != nil {
		f.fail(key, "an RFC 3339 time like 2023-06-28T18:27:53Z", s)
		return nil
	}
	return &t
}

// isJSONNumber rejects what strconv takes but JSON does not (Inf, NaN, 0x1p3, 1_000).
func isJSONNumber(s string) bool {
	return json.Valid([]byte(s)) && s != "" && (s[0] == '-' || ('0' <= s[0] && s[0] <= '9'))
}

// describeJSONError turns encoding/json's errors into ones that say where and what.
func describeJSONError(err error, data []byte) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && strings.Contains(se.Error(), "unexpected end of JSON input"):
		return fmt.Errorf("truncated JSON: it ends after %d bytes", len(data))
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}
