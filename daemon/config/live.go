package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Live is the running configuration's one owner. It holds the effective configuration as
// an immutable value (Current never changes what it returned), takes changes from one
// writer at a time (Update: validate exactly as the files are, write the dashboard's layer
// atomically, swap), and tells every subscriber, in order, before Update returns, so that
// "saved and applied" is true when the caller says it.
type Live struct {
	mu   sync.Mutex // one writer at a time; held while subscribers run
	cur  atomic.Pointer[Config]
	subs []func(old, cur *Config)
}

// NewLive starts from c (from LoadLayered, or a plain Config for tests and tools).
func NewLive(c *Config) *Live {
	l := &Live{}
	l.cur.Store(c)
	return l
}

// Current is the configuration in force. Do not modify it.
func (l *Live) Current() *Config { return l.cur.Load() }

// Subscribe registers f, called after every change with the old and the new value.
func (l *Live) Subscribe(f func(old, cur *Config)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs = append(l.subs, f)
}

// Update applies change to a copy of the current configuration, validates the result as
// LoadLayered would, writes the dashboard's layer (settings.toml in the state dir, only
// what differs from amwi.toml) atomically, makes it current and tells the subscribers.
// Nothing changes when there is a problem: the error is a Problems naming the keys.
func (l *Live) Update(change func(*Config)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cur.Load()
	next := old.Clone()
	change(next)
	return l.commit(old, next)
}

// Reset sets keys back to amwi.toml's values (they leave the dashboard's layer).
func (l *Live) Reset(keys ...string) error {
	return l.Update(func(c *Config) {
		base := Default()
		if c.Layers != nil && c.Layers.Base != nil {
			base = c.Layers.Base
		}
		for _, k := range keys {
			c.copyKey(base, k)
		}
	})
}

func (l *Live) commit(old, next *Config) error {
	if old.Layers == nil || old.Layers.Base == nil || old.Layers.baseData == nil {
		return fmt.Errorf("this configuration was not loaded in layers: nothing can be saved")
	}
	text := RenderSettings(next)
	// The machine's state (the mirror folder opening) is checked only when a change
	// touches it: a mirror disk that is away must not lock the dashboard's settings.
	parsed, err := parseLayered(old.Layers.baseData, old.Path, text, old.Layers.SettingsPath, next.Mirror.Root != old.Mirror.Root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(old.Layers.SettingsPath), 0o750); err != nil {
		return fmt.Errorf("save %s: %w", old.Layers.SettingsPath, err)
	}
	// 0640: it may hold the Discord webhook, a secret.
	if err := writeAtomic(old.Layers.SettingsPath, text, 0o640); err != nil {
		return err
	}
	l.cur.Store(parsed)
	for _, f := range l.subs {
		f(old, parsed)
	}
	return nil
}

// Clone is a deep copy (the lists are not shared).
func (c *Config) Clone() *Config {
	n := *c
	n.Server.TrustedProxies = append([]string{}, c.Server.TrustedProxies...)
	n.Mirror.Repos = append([]string{}, c.Mirror.Repos...)
	n.Sync.FallbackUpstreams = append([]string{}, c.Sync.FallbackUpstreams...)
	n.Sync.HTTPFallbackUpstreams = append([]string{}, c.Sync.HTTPFallbackUpstreams...)
	return &n
}

// copyKey sets key ("section.key") to from's value.
func (c *Config) copyKey(from *Config, key string) {
	f := from.Clone()
	if dst, ok := c.field(key); ok {
		if src, ok := f.field(key); ok {
			dst.Set(src)
		}
	}
}
