package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/amwi/amwi/daemon/bench"
)

// BenchState is the upstream benchmark in progress.
type BenchState struct {
	Running bool      `json:"running"`
	Country string    `json:"country,omitempty"`
	Done    int       `json:"done"`
	Total   int       `json:"total"`
	Last    string    `json:"last,omitempty"` // the mirror measured last
	Started time.Time `json:"started,omitzero"`
	Error   string    `json:"error,omitempty"` // why the last run failed to start or finish
}

// BenchReport is a finished benchmark, as stored.
type BenchReport struct {
	Time    time.Time         `json:"time"`
	Country string            `json:"country"`
	Source  string            `json:"source"` // where the candidates came from, with the status JSON's age
	Dropped map[string]string `json:"dropped,omitempty"`
	Results []bench.Result    `json:"results"`
}

// BenchService runs the upstream benchmark (the daemon implements it).
type BenchService interface {
	Start(country string) error
	State() BenchState
	Last() (*BenchReport, error)
	// Use sets host's rsync URL as sync.upstream and the next two usable as fallbacks,
	// and the same hosts' measured http(s) URLs as sync.http_upstream and its fallbacks,
	// through the same validated, atomic save as the settings page.
	Use(host string) error
	DefaultCountry() string
}

// ErrBenchRunning: a benchmark is already measuring.
var ErrBenchRunning = errors.New("a benchmark is already running")

func (u *ui) benchPage(w http.ResponseWriter, r *http.Request, v viewer, status int, flash ...string) {
	rep, err := u.o.Bench.Last()
	if err != nil {
		u.log().Error("ui: bench results", "err", err)
	}
	country := u.o.Bench.DefaultCountry()
	if rep != nil && country == "" {
		country = rep.Country
	}
	st := u.o.Bench.State()
	d := map[string]any{"State": st, "Report": rep, "Country": country}
	// Not while the first one runs (the progress says it all), nor when the results could
	// not be read (that is not "none yet").
	if rep == nil && err == nil && !st.Running {
		d["Empty"] = u.emptyBench(v)
	}
	u.render(w, r, v, "bench", "Benchmark", status, d, flash...)
}

func (u *ui) benchStart(w http.ResponseWriter, r *http.Request, v viewer) {
	if err := u.o.Bench.Start(r.PostFormValue("country")); err != nil {
		status, msg := u.errorText(err, "starting the benchmark")
		u.benchPage(w, r, v, status, "", msg)
		return
	}
	http.Redirect(w, r, "/bench", http.StatusSeeOther)
}

func (u *ui) benchUse(w http.ResponseWriter, r *http.Request, v viewer) {
	if err := u.o.Bench.Use(r.PostFormValue("host")); err != nil {
		status, msg := u.errorText(err, "using the mirror")
		u.benchPage(w, r, v, status, "", msg)
		return
	}
	u.renderSettings(w, r, v, http.StatusOK, nil, nil, "Upstream set from the benchmark (rsync, and HTTP(S) for \"used\" mode's fetches where the mirrors have it); the next two usable mirrors are the fallbacks.")
}

// benchAPI: GET /api/bench (last results and progress), POST /api/bench (start; admin,
// with the session's CSRF token in X-CSRF-Token or the form).
func (u *ui) benchAPIGet(w http.ResponseWriter, r *http.Request, v viewer) {
	rep, _ := u.o.Bench.Last()
	writeJSON(w, http.StatusOK, map[string]any{"state": u.o.Bench.State(), "report": rep})
}

func (u *ui) benchAPIStart(w http.ResponseWriter, r *http.Request, v viewer) {
	var in struct {
		Country string `json:"country"`
	}
	if r.Header.Get("Content-Type") == "application/json" {
		json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in)
	} else {
		in.Country = r.PostFormValue("country")
	}
	if err := u.o.Bench.Start(in.Country); err != nil {
		status, msg := u.errorText(err, "starting the benchmark")
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"state": u.o.Bench.State()})
}
