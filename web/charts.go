package web

import (
	"math"
	"net/http"
	"strconv"
	"time"

	dsync "github.com/amwi/amwi/daemon/mirrorsync"
	"github.com/amwi/amwi/daemon/traffic"
	"github.com/amwi/amwi/hw"
)

// The dashboard's charts are drawn in the browser by static/chart.js. Their data reaches
// the page two ways: the Overview's machine history from /api/stats/series (then live from
// /events), and the Traffic and Sync pages' bars in a <script type="application/json">
// block the template writes (not executed, so the Content-Security-Policy allows it).

func init() {
	// took is a run's duration for the sync history. A run still going has no End:
	// End.Sub(Start) would be some -2000 years; it says how long it has run so far.
	funcs["took"] = func(r dsync.Run) string { return took(r, time.Now()) }
}

func took(r dsync.Run, now time.Time) string {
	if r.End.IsZero() {
		if r.Result != dsync.ResultRunning {
			return "–"
		}
		return roundDuration(max(now.Sub(r.Start), 0)) + " so far"
	}
	if d := r.End.Sub(r.Start); d > 0 {
		if d < 10*time.Second { // "0s" for a run of 0.6 s says it did nothing
			return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
		}
		return roundDuration(d)
	}
	return "–" // the clock was set back during the run
}

// column is one series of numbers, NaN written as null (a value that could not be read).
type column []float64

func (c column) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 8*len(c)+2)
	b = append(b, '[')
	for i, v := range c {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	return append(b, ']'), nil
}

// round1 keeps one decimal (a percentage, a temperature).
func round1(v float64) float64 { return math.Round(v*10) / 10 }

// statsSeries answers GET /api/stats/series: the sampler's history (10 minutes, one point a
// second) as columns, about 30 KiB, where /api/stats/history's whole snapshots (every
// core, every interface) are twenty times that. t is Unix milliseconds; rates are bytes
// per second; null where a source could not be read.
func (u *ui) statsSeries(w http.ResponseWriter, r *http.Request) {
	var h []hw.Snapshot
	if u.o.Machine != nil {
		h = u.o.Machine.History()
	}
	writeJSON(w, http.StatusOK, machineSeries(h))
}

func machineSeries(h []hw.Snapshot) map[string]column {
	names := []string{"t", "cpu", "mem", "busy", "rd", "wr", "rx", "tx", "temp"}
	s := make(map[string]column, len(names))
	for _, n := range names {
		s[n] = make(column, len(h))
	}
	nan := math.NaN()
	for i, m := range h {
		s["t"][i] = float64(m.Time.UnixMilli())
		s["cpu"][i], s["mem"][i], s["temp"][i] = nan, nan, nan
		s["busy"][i], s["rd"][i], s["wr"][i], s["rx"][i], s["tx"][i] = nan, nan, nan, nan, nan
		if m.CPU != nil {
			s["cpu"][i] = round1(m.CPU.Total)
		}
		if m.Memory != nil {
			s["mem"][i] = round1(m.Memory.UsedPercent)
		}
		if m.Disk != nil {
			s["busy"][i], s["rd"][i], s["wr"][i] = round1(m.Disk.BusyPercent), math.Round(m.Disk.ReadBps), math.Round(m.Disk.WriteBps)
		}
		if m.Net != nil {
			rx, tx := m.NetRate() // as the live pulse shows them (pulseJSON's "net")
			s["rx"][i], s["tx"][i] = math.Round(rx), math.Round(tx)
		}
		if m.TempC != nil {
			s["temp"][i] = round1(*m.TempC)
		}
	}
	return s
}

// barPoint is one bar of a traffic chart.
type barPoint struct {
	Label    string `json:"label"` // the bucket's start, in the server's time zone
	Bytes    int64  `json:"bytes"`
	Requests int64  `json:"requests"`
}

// trafficChart is the Traffic page's data block: bytes per hour and per day, oldest first.
type trafficChart struct {
	Hours []barPoint `json:"hours"`
	Days  []barPoint `json:"days"`
}

func newTrafficChart(hours, days []traffic.Bucket) trafficChart {
	c := trafficChart{Hours: make([]barPoint, 0, len(hours)), Days: make([]barPoint, 0, len(days))}
	for _, b := range hours {
		c.Hours = append(c.Hours, barPoint{b.Start.Format("2006-01-02 15:00"), b.Bytes, b.Requests})
	}
	for _, b := range days {
		c.Days = append(c.Days, barPoint{b.Start.Format("2006-01-02"), b.Bytes, b.Requests})
	}
	return c
}

// syncBar is one finished run in the Sync page's data block.
type syncBar struct {
	ID      uint64  `json:"id"`
	Label   string  `json:"label"` // its start
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"` // received from the upstream
	Result  string  `json:"result"`
}

// newSyncChart is the runs that ended, oldest first (history is newest first). A running
// run has no duration yet and is left out, as is one whose clock went backwards. Seconds
// keep milliseconds: a run that found nothing new takes well under a second.
func newSyncChart(history []dsync.Run) []syncBar {
	bars := make([]syncBar, 0, len(history))
	for i := len(history) - 1; i >= 0; i-- {
		r := history[i]
		if r.End.IsZero() || r.End.Before(r.Start) {
			continue
		}
		bars = append(bars, syncBar{r.ID, r.Start.Format("2006-01-02 15:04"), math.Round(r.End.Sub(r.Start).Seconds()*1e3) / 1e3,
			r.Stats.BytesReceived, r.Result})
	}
	return bars
}
