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
		writeJSON(w, http.StatusOK, struct {
			State   mirrorsync.State `json:"state"`
			History []mirrorsync.Run `json:"history"`
		}{s.State(), hist})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
