package web

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/amwi/amwi/daemon/mirrorsync"
)

// SyncService is what the web side may do with the sync engine (mirrorsync.Manager implements
// it). GET /api/sync uses State and History; the dashboard adds Start and Cancel buttons.
type SyncService interface {
	State() mirrorsync.State
	History(n int) ([]mirrorsync.Run, error)
	Start(ctx context.Context, o mirrorsync.Options) error
	Cancel() error
	// LastVerification is the last `amwi verify` (nil: none yet).
	LastVerification() (*mirrorsync.Verification, error)
}

// lastFinished is the newest run that has ended, or nil.
func lastFinished(s SyncService) *mirrorsync.Run {
	h, err := s.History(5)
	if err != nil {
		return nil
	}
	for i := range h {
		if h[i].Result != mirrorsync.ResultRunning {
			return &h[i]
		}
	}
	return nil
}

var _ SyncService = (*mirrorsync.Manager)(nil)

// syncAPI answers GET /api/sync: live state and the last runs.
func syncAPI(s SyncService, log interface{ Error(string, ...any) }) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hist, err := s.History(20)
		if err != nil {
			log.Error("api: sync history", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot read sync history"})
			return
		}
		if hist == nil {
			hist = []mirrorsync.Run{}
		}
		v, err := s.LastVerification()
		if err != nil {
			log.Error("api: last verification", "err", err)
		}
		writeJSON(w, http.StatusOK, struct {
			State        mirrorsync.State         `json:"state"`
			History      []mirrorsync.Run         `json:"history"`
			Verification *mirrorsync.Verification `json:"verification"`
		}{s.State(), hist, v})
	}
}

// WriteJSON answers with v as JSON, uncached: the one way AMWI's APIs (and its control
// socket) answer.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
