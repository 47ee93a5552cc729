package mirrorlists

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Defaults of StatusCache.
const (
	DefaultStatusTimeout = 20 * time.Second
	DefaultStatusMaxAge  = time.Hour
	DefaultStatusMaxSize = 32 << 20 // the real document is ~0.6 MB
)

// StatusCache fetches the status JSON over HTTP and keeps the last good copy in a file,
// with its fetch time, so an appliance that is offline (or archlinux.org that is down)
// still has a list of mirrors, and says how old it is. Only a document that parses
// replaces the copy. The zero values of Client, MaxAge, MaxSize and Now take defaults.
// Get may be called from several goroutines; processes sharing Path are safe too, as
// the file is replaced by rename.
type StatusCache struct {
	URL     string           // bench.status_url
	Path    string           // cache file, e.g. /var/lib/amwi/mirror-status.json
	Client  *http.Client     // default: 20 s timeout
	MaxAge  time.Duration    // refetch when older (default 1 h)
	MaxSize int64            // largest response accepted (default 32 MiB)
	Now     func() time.Time // default time.Now

	mu sync.Mutex
}

// cacheFile is what Path holds: the status as fetched, and where from and when.
type cacheFile struct {
	URL       string          `json:"url"`
	FetchedAt time.Time       `json:"fetched_at"`
	Status    json.RawMessage `json:"status"`
}

// Get returns the status, where it came from ("fetched" or "cache") and its age. The
// cached copy is used without asking the network while it is younger than MaxAge (and
// fetched from URL), unless refresh is set. When a fetch fails and a copy exists, Get
// returns the copy with its age and a note saying why it is not fresh (not an error);
// with no copy, the error names the URL. A note also says when a good fetch could not be
// saved.
func (c *StatusCache) Get(ctx context.Context, refresh bool) (s *Status, source string, age time.Duration, note string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()

	cached, cacheErr := c.load()
	var cacheAge time.Duration
	if cached != nil {
		cacheAge = now.Sub(cached.fetchedAt)
		fresh := cacheAge >= 0 && cacheAge < c.maxAge() && cached.url == c.URL
		if fresh && !refresh {
			return cached.status, "cache", cacheAge, "", nil
		}
	}

	body, fetchErr := c.fetch(ctx)
	if fetchErr == nil {
		s, fetchErr = ParseStatus(body)
	}
	if fetchErr == nil {
		if err := c.save(body, now); err != nil {
			note = fmt.Sprintf("could not keep a copy of the mirror status: %v", err)
		}
		return s, "fetched", 0, note, nil
	}

	if cached == nil {
		err := fmt.Errorf("fetch mirror status %s: %w", c.URL, fetchErr)
		if cacheErr != nil && !errors.Is(cacheErr, fs.ErrNotExist) {
			err = fmt.Errorf("%w (and the cached copy is unusable: %v)", err, cacheErr)
		}
		return nil, "", 0, "", err
	}
	note = fmt.Sprintf("could not refresh the mirror status from %s: %v; using the copy fetched %s", c.URL, fetchErr, describeAge(cacheAge, cached.fetchedAt))
	if cached.url != c.URL {
		note += fmt.Sprintf(" from %s", cached.url)
	}
	return cached.status, "cache", max(cacheAge, 0), note, nil
}

func describeAge(age time.Duration, at time.Time) string {
	stamp := at.UTC().Format(time.RFC3339)
	if age < 0 {
		return fmt.Sprintf("at %s (the clock is behind that time)", stamp)
	}
	return fmt.Sprintf("%s ago (%s)", age.Truncate(time.Second), stamp)
}

func (c *StatusCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *StatusCache) maxAge() time.Duration {
	if c.MaxAge > 0 {
		return c.MaxAge
	}
	return DefaultStatusMaxAge
}

func (c *StatusCache) maxSize() int64 {
	if c.MaxSize > 0 {
		return c.MaxSize
	}
	return DefaultStatusMaxSize
}

func (c *StatusCache) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return &http.Client{Timeout: DefaultStatusTimeout}
}

// fetch returns the body of a 200 answer, at most MaxSize bytes. Its errors do not repeat
// the URL: Get adds it once.
func (c *StatusCache) fetch(ctx context.Context) ([]byte, error) {
	if c.URL == "" {
		return nil, errors.New("no status URL configured (bench.status_url)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return nil, unwrapURLError(err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "amwi (Arch Linux mirror appliance)")
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	limit := c.maxSize()
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("response of %d bytes refused: the limit is %d", resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", unwrapURLError(err))
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response refused: larger than the limit of %d bytes", limit)
	}
	return body, nil
}

type cachedStatus struct {
	status    *Status
	url       string
	fetchedAt time.Time
}

// load reads the cached copy; a file that does not parse is reported, not used.
// Cached returns the copy kept in Path, whatever its age, without asking the network:
// for readers that must not make a request wait on archlinux.org (/mirrorlist). The
// error wraps fs.ErrNotExist when there is no copy.
func (c *StatusCache) Cached() (*Status, error) {
	cs, err := c.load()
	if err != nil {
		return nil, err
	}
	return cs.status, nil
}

func (c *StatusCache) load() (*cachedStatus, error) {
	if c.Path == "" {
		return nil, fs.ErrNotExist
	}
	data, err := os.ReadFile(c.Path)
	if err != nil {
		return nil, err
	}
	var f cacheFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, describeJSONError(err, data))
	}
	if f.FetchedAt.IsZero() || len(f.Status) == 0 {
		return nil, fmt.Errorf("%s: not an AMWI mirror status cache", c.Path)
	}
	s, err := ParseStatus(f.Status)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	return &cachedStatus{status: s, url: f.URL, fetchedAt: f.FetchedAt}, nil
}

// save replaces the cache file atomically: a crash leaves the old copy or the new one.
func (c *StatusCache) save(body []byte, at time.Time) error {
	if c.Path == "" {
		return nil
	}
	data, err := json.Marshal(cacheFile{URL: c.URL, FetchedAt: at.UTC(), Status: body})
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(c.Path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.Path)
	}
	if err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		d.Sync()
		d.Close()
	}
	return nil
}
