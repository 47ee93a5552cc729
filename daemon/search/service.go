package search

import (
	"context"
	"errors"
	"fmt"
	"github.com/amwi/amwi/internal/layout"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amwi/amwi/daemon/repodb"
)

// DBPath is where repo's sync database lives under the mirror root.
func DBPath(root, repo string) string {
	return layout.DBPath(root, repo)
}

// Service keeps the current index of the mirror's databases and rebuilds it when they
// change. A database that cannot be read keeps its repo's previous packages in the index,
// and the problem is reported (Problems, the log): a damaged download never empties search.
type Service struct {
	Root   string
	Repos  []string
	Limits repodb.Limits
	Log    *slog.Logger
	Now    func() time.Time

	cur      atomic.Pointer[Index]
	mu       sync.Mutex // one Load at a time
	stamps   map[string]dbStamp
	problems atomic.Pointer[map[string]string]
}

type dbStamp struct {
	mod  time.Time
	size int64
}

// SetRepos changes the repositories covered from the next Load on.
func (s *Service) SetRepos(repos []string) {
	s.mu.Lock()
	s.Repos = repos
	s.mu.Unlock()
}

// Index is the current index (never nil after the first Load; empty before).
func (s *Service) Index() *Index {
	if ix := s.cur.Load(); ix != nil {
		return ix
	}
	return Build(s.Repos, nil, time.Time{})
}

// Problems maps a repo to what is wrong with its database, for the API and dashboard.
func (s *Service) Problems() map[string]string {
	if p := s.problems.Load(); p != nil {
		return *p
	}
	return map[string]string{}
}

// Load reads every repo's database and swaps in a new index; it returns what changed from
// the previous one. Repos whose database is missing (not synced yet) are empty.
func (s *Service) Load() (Changes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stamps == nil {
		s.stamps = map[string]dbStamp{}
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	problems := map[string]string{}
	dbs := map[string][]repodb.Package{}
	old := s.Index()
	var errs []error
	for _, r := range s.Repos {
		path := DBPath(s.Root, r)
		st, statErr := os.Stat(path)
		pkgs, err := repodb.Read(path, s.Limits)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			dbs[r] = nil
		case err != nil:
			problems[r] = err.Error()
			errs = append(errs, err)
			dbs[r] = old.repoPackages(r) // keep the last good one
			s.Log.Error("search: cannot read database; keeping the previous index of this repo", "repo", r, "err", err)
		default:
			dbs[r] = pkgs
		}
		if statErr == nil {
			s.stamps[r] = dbStamp{st.ModTime(), st.Size()}
		} else {
			delete(s.stamps, r)
		}
	}
	ix := Build(s.Repos, dbs, now())
	s.cur.Store(ix)
	s.problems.Store(&problems)
	s.Log.Info("search: index built", "packages", ix.Len(), "took", time.Since(ix.Built).Round(time.Millisecond))
	return Diff(old, ix), errors.Join(errs...)
}

// changed reports whether a database file differs from when it was last read.
func (s *Service) changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.Repos {
		st, err := os.Stat(DBPath(s.Root, r))
		old, had := s.stamps[r]
		switch {
		case err != nil && had, err == nil && !had:
			return true
		case err == nil && (!st.ModTime().Equal(old.mod) || st.Size() != old.size):
			return true
		}
	}
	return false
}

// Watch reloads the index when a database file changes (a sync does that, but so does an
// admin's own rsync), checking every interval until ctx ends.
func (s *Service) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.changed() {
				if _, err := s.Load(); err != nil {
					s.Log.Warn("search: reload after a database changed", "err", err)
				}
			}
		}
	}
}

// String describes the index for logs.
func (s *Service) String() string {
	return fmt.Sprintf("search index of %d packages in %v", s.Index().Len(), s.Repos)
}
