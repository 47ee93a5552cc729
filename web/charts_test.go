package web

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	dsync "github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/hw"
)

func TestColumnJSON(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    column
		want string
	}{
		{"empty", column{}, `[]`},
		{"numbers", column{0, 1.5, -2, 1e15, 0.001}, `[0,1.5,-2,1000000000000000,0.001]`},
		{"unreadable", column{math.NaN(), 3, math.Inf(1), math.Inf(-1)}, `[null,3,null,null]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.c)
			if err != nil || string(b) != tt.want {
				t.Errorf("got %s, %v; want %s", b, err, tt.want)
			}
		})
	}
}

// TestMachineSeries: /api/stats/series's columns, one value per snapshot, null for a
// source that could not be read, and the network the sum of the counted interfaces as the
// live pulse shows it.
func TestMachineSeries(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	temp := 47.26
	h := []hw.Snapshot{
		{
			Time:   t0,
			CPU:    &hw.CPU{Total: 12.345},
			Memory: &hw.Memory{UsedPercent: 40.06},
			Disk:   &hw.Disk{BusyPercent: 3.33, ReadBps: 1024.4, WriteBps: 99.6},
			Net:    []hw.Iface{{Name: "eth0", RxBps: 1000.2, TxBps: 10}, {Name: "wlan0", RxBps: 500.4, TxBps: 5.7}},
			TempC:  &temp,
		},
		// Every source failed: nil sections, not zeros.
		{Time: t0.Add(time.Second), Errors: map[string]string{"cpu": "x", "memory": "x", "disk": "x", "net": "x", "temp": "x"}},
		// The CPU reading itself is NaN (a first delta of nothing): null too.
		{Time: t0.Add(2 * time.Second), CPU: &hw.CPU{Total: math.NaN()}, Net: []hw.Iface{}},
	}
	b, err := json.Marshal(machineSeries(h))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]*float64
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	ms := float64(t0.UnixMilli())
	n := func(v float64) *float64 { return &v }
	want := map[string][]*float64{
		"t":    {n(ms), n(ms + 1000), n(ms + 2000)},
		"cpu":  {n(12.3), nil, nil},
		"mem":  {n(40.1), nil, nil},
		"busy": {n(3.3), nil, nil},
		"rd":   {n(1024), nil, nil},
		"wr":   {n(100), nil, nil},
		"rx":   {n(1501), nil, n(0)}, // 1000.2 + 500.4; no interface is no traffic, not unknown
		"tx":   {n(16), nil, n(0)},
		"temp": {n(47.3), nil, nil},
	}
	if len(got) != len(want) {
		t.Errorf("%d columns, want %d: %s", len(got), len(want), b)
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %s, want %s", k, show(got[k]), show(w))
		}
	}
	if rx, tx := h[0].NetRate(); got["rx"][0] == nil || *got["rx"][0] != math.Round(rx) || *got["tx"][0] != math.Round(tx) {
		t.Errorf("rx, tx %s %s; NetRate says %v %v", show(got["rx"]), show(got["tx"]), rx, tx)
	}

	b, _ = json.Marshal(machineSeries(nil))
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if c, ok := got[k]; !ok || c == nil || len(c) != 0 {
			t.Errorf("no history: %s = %v, want [] (a chart reads an empty column, not a missing one)", k, c)
		}
	}
}

// show is a column as the page gets it.
func show(c []*float64) string { b, _ := json.Marshal(c); return string(b) }

// TestTrafficChart: the Traffic page's bars keep the store's order (oldest first), with
// an hour labelled by date and hour and a day by date, in the buckets' own time zone.
func TestTrafficChart(t *testing.T) {
	zone := time.FixedZone("CET", 3600)
	h0 := time.Date(2026, 3, 1, 23, 0, 0, 0, zone)
	c := newTrafficChart(
		[]traffic.Bucket{{Start: h0, Bytes: 2048, Requests: 2}, {Start: h0.Add(time.Hour), Bytes: 0}, {Start: h0.Add(2 * time.Hour), Bytes: 2 << 30, Requests: 9}},
		[]traffic.Bucket{{Start: time.Date(2026, 2, 28, 0, 0, 0, 0, zone), Bytes: 5}, {Start: time.Date(2026, 3, 1, 0, 0, 0, 0, zone), Bytes: 7, Requests: 1}},
	)
	want := trafficChart{
		Hours: []barPoint{{"2026-03-01 23:00", 2048, 2}, {"2026-03-02 00:00", 0, 0}, {"2026-03-02 01:00", 2 << 30, 9}},
		Days:  []barPoint{{"2026-02-28", 5, 0}, {"2026-03-01", 7, 1}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	b, _ := json.Marshal(newTrafficChart(nil, nil))
	if string(b) != `{"hours":[],"days":[]}` {
		t.Errorf("no traffic: %s, want empty arrays for the page's script", b)
	}
}

// TestSyncChart: the Sync page's bars are the finished runs, oldest first, with their
// duration to the millisecond; a running run and one whose clock went back are left out.
func TestSyncChart(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	history := []dsync.Run{ // newest first, as the store gives it
		{ID: 5, Start: t0.Add(4 * time.Hour), Result: dsync.ResultRunning},
		{ID: 4, Start: t0.Add(3 * time.Hour), End: t0.Add(3*time.Hour + 1234567*time.Microsecond), Result: dsync.ResultSuccess, Stats: dsync.Stats{BytesReceived: 2150}},
		{ID: 3, Start: t0.Add(2 * time.Hour), End: t0.Add(2*time.Hour - time.Minute), Result: dsync.ResultSuccess},
		{ID: 2, Start: t0.Add(time.Hour), End: t0.Add(time.Hour + 300*time.Millisecond), Result: dsync.ResultFailed},
		{ID: 1, Start: t0, End: t0.Add(90 * time.Minute), Result: dsync.ResultSuccess, Stats: dsync.Stats{BytesReceived: 3 << 30}},
	}
	want := []syncBar{
		{1, "2026-03-01 06:00", 5400, 3 << 30, dsync.ResultSuccess},
		{2, "2026-03-01 07:00", 0.3, 0, dsync.ResultFailed},
		{4, "2026-03-01 09:00", 1.235, 2150, dsync.ResultSuccess},
	}
	if got := newSyncChart(history); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got := newSyncChart(history[:1]); got == nil || len(got) != 0 {
		t.Errorf("only a running run: %#v, want no bars", got)
	}
}

func TestTook(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	now := t0.Add(90 * time.Second)
	for _, tt := range []struct {
		name string
		r    dsync.Run
		want string
	}{
		{"running", dsync.Run{Start: t0, Result: dsync.ResultRunning}, "1m so far"},
		{"running, clock set back", dsync.Run{Start: now.Add(time.Minute), Result: dsync.ResultRunning}, "0s so far"},
		{"no end, not running", dsync.Run{Start: t0, Result: dsync.ResultFailed}, "–"},
		{"under a second", dsync.Run{Start: t0, End: t0.Add(640 * time.Millisecond), Result: dsync.ResultSuccess}, "0.6s"},
		{"seconds", dsync.Run{Start: t0, End: t0.Add(42 * time.Second), Result: dsync.ResultSuccess}, "42s"},
		{"hours", dsync.Run{Start: t0, End: t0.Add(3*time.Hour + 5*time.Minute), Result: dsync.ResultSuccess}, "3h 5m"},
		{"clock set back", dsync.Run{Start: t0, End: t0.Add(-time.Second), Result: dsync.ResultSuccess}, "–"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := took(tt.r, now); got != tt.want {
				t.Errorf("took = %q, want %q", got, tt.want)
			}
		})
	}
}
