package mirrorlists

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestParseStatus(t *testing.T) {
	sync := time.Date(2023, 6, 28, 18, 27, 53, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want StatusURL
	}{
		{
			name: "integers where floats belong",
			in:   `{"url":"https://a.example/","protocol":"https","last_sync":"2023-06-28T18:27:53Z","completion_pct":1,"delay":1710,"duration_avg":2,"duration_stddev":0,"score":3,"active":true,"country":"Australia","country_code":"AU","isos":true,"ipv4":true,"ipv6":false,"details":"https://archlinux.org/mirrors/a.example/5/"}`,
			want: StatusURL{URL: "https://a.example/", Protocol: "https", LastSync: &sync, CompletionPct: 1, Delay: ptr[int64](1710), DurationAvg: ptr(2.0), DurationStddev: ptr(0.0), Score: ptr(3.0), Active: true, Country: "Australia", CountryCode: "AU", ISOs: true, IPv4: true, Details: "https://archlinux.org/mirrors/a.example/5/"},
		},
		{
			name: "floats where integers belong",
			in:   `{"url":"http://b.example/","protocol":"HTTP","delay":1.71e3,"completion_pct":0.5}`,
			want: StatusURL{URL: "http://b.example/", Protocol: "http", Delay: ptr[int64](1710), CompletionPct: 0.5},
		},
		{
			name: "nulls",
			in:   `{"url":"rsync://c.example/arch/","protocol":"rsync","last_sync":null,"completion_pct":0.0,"delay":null,"duration_avg":null,"duration_stddev":null,"score":null,"active":true,"country":null,"country_code":null,"isos":null,"details":null}`,
			want: StatusURL{URL: "rsync://c.example/arch/", Protocol: "rsync", Active: true},
		},
		{
			name: "negative delay, empty country, empty last_sync",
			in:   `{"url":"https://d.example/","protocol":"https","delay":-9,"country":"","country_code":"","last_sync":""}`,
			want: StatusURL{URL: "https://d.example/", Protocol: "https", Delay: ptr[int64](-9)},
		},
		{
			name: "unknown fields",
			in:   `{"url":"https://e.example/","protocol":"https","new_field":{"x":[1,2]},"bandwidth":null,"active":false}`,
			want: StatusURL{URL: "https://e.example/", Protocol: "https"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"cutoff":86400.0,"last_check":"2023-06-28T19:09:25.337Z","num_checks":157,"check_frequency":534,"version":3,"extra":"ignored","urls":[` + tt.in + `]}`
			s, err := ParseStatus([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			if s.Cutoff != 86400 || s.NumChecks != 157 || s.CheckFrequency != 534 || s.Version != 3 || !s.LastCheck.Equal(time.Date(2023, 6, 28, 19, 9, 25, 337e6, time.UTC)) {
				t.Errorf("top level %+v", s)
			}
			if len(s.URLs) != 1 {
				t.Fatalf("%d urls", len(s.URLs))
			}
			if got := s.URLs[0]; !sameStatusURL(got, tt.want) {
				t.Errorf("got  %s\nwant %s", dumpURL(got), dumpURL(tt.want))
			}
		})
	}
}

func sameStatusURL(a, b StatusURL) bool {
	return dumpURL(a) == dumpURL(b)
}

// dumpURL prints a StatusURL with its pointers followed.
func dumpURL(u StatusURL) string {
	show := func(p any) string {
		switch v := p.(type) {
		case *time.Time:
			if v != nil {
				return v.UTC().Format(time.RFC3339Nano)
			}
		case *int64:
			if v != nil {
				return fmt.Sprint(*v)
			}
		case *float64:
			if v != nil {
				return fmt.Sprint(*v)
			}
		}
		return "nil"
	}
	head := fmt.Sprintf("last_sync=%s delay=%s avg=%s stddev=%s score=%s ", show(u.LastSync), show(u.Delay), show(u.DurationAvg), show(u.DurationStddev), show(u.Score))
	u.LastSync, u.Delay, u.DurationAvg, u.DurationStddev, u.Score = nil, nil, nil, nil, nil
	return head + fmt.Sprintf("%+v", u)
}

func TestParseStatusErrors(t *testing.T) {
	valid := `{"cutoff":86400,"urls":[{"url":"https://a.example/","protocol":"https","completion_pct":1}]}`
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{"empty document"}},
		{"HTML error page", "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", []string{"not a JSON object", "<!DOCTYPE html>"}},
		{"a list", `[1,2]`, []string{"not a JSON object"}},
		{"truncated", valid[:len(valid)/2], []string{"truncated JSON", "ends after"}},
		{"invalid", `{"urls":[}`, []string{"invalid JSON at byte 10"}},
		{"trailing garbage", valid + "xyz", []string{"invalid JSON"}},
		{"no urls", `{"cutoff":86400}`, []string{`no "urls"`}},
		{"null urls", `{"urls":null}`, []string{`no "urls"`}},
		{"urls not a list", `{"urls":{"a":1}}`, []string{`field "urls": want a list`}},
		{"entry not an object", `{"urls":[{"url":"https://a.example/"},"x"]}`, []string{"urls[1]", "want an object"}},
		{"string completion", `{"urls":[{"url":"https://a.example/","completion_pct":"1"}]}`, []string{"urls[0] (https://a.example/)", `field "completion_pct"`, "want a number"}},
		{"bad time", `{"urls":[{"url":"https://a.example/","last_sync":"yesterday"}]}`, []string{`field "last_sync"`, "RFC 3339", "yesterday"}},
		{"bad delay", `{"urls":[{"url":"https://a.example/","delay":"soon"}]}`, []string{`field "delay"`, "whole number"}},
		{"bad bool", `{"urls":[{"url":"https://a.example/","active":1}]}`, []string{`field "active"`, "true or false"}},
		{"bad url", `{"urls":[{"url":42}]}`, []string{"urls[0]:", `field "url"`, "a string"}},
		{"bad top-level time", `{"last_check":12,"urls":[]}`, []string{`field "last_check"`}},
		{"huge number", `{"cutoff":1e300,"urls":[]}`, []string{`field "cutoff"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseStatus([]byte(tt.in))
			if err == nil {
				t.Fatalf("no error; got %+v", s)
			}
			if !strings.HasPrefix(err.Error(), "parse mirror status: ") {
				t.Errorf("error %q lacks the step prefix", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := ParseStatus([]byte(valid)); err != nil {
		t.Errorf("valid document: %v", err)
	}
}
