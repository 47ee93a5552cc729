package daemon

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/notify"
)

// settings is the dashboard's settings page behind web.SettingsService: it validates a
// form exactly as amwi.toml is validated, writes the file atomically (the old one kept as
// .bak), and applies the new values without a restart.
type settings struct {
	d  *Daemon
	mu stdsync.Mutex // one save at a time
}

func (s *settings) Current() *config.Config { return s.d.current.Load() }

// Save takes form values keyed like amwi.toml ("sync.upstream"). Nothing changes when any
// value is wrong; the problems come back per key.
func (s *settings) Save(form map[string]string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.Current()
	next := *cur
	next.Server.TrustedProxies = fields(form["server.trusted_proxies"])
	next.Mirror.Repos = fields(form["mirror.repos"])
	next.Sync.Enabled = form["sync.enabled"] == "true"
	next.Sync.Upstream = strings.TrimSpace(form["sync.upstream"])
	next.Sync.FallbackUpstreams = fields(form["sync.fallback_upstreams"])
	next.Bench.Country = strings.TrimSpace(form["bench.country"])
	next.Discord.Enabled = form["discord.enabled"] == "true"
	if u := strings.TrimSpace(form["discord.webhook_url"]); u != "" { // empty keeps the secret
		next.Discord.WebhookURL = u
	}
	problems := map[string]string{}
	if err := next.Sync.Interval.UnmarshalText([]byte(strings.TrimSpace(form["sync.interval"]))); err != nil {
		problems["sync.interval"] = err.Error()
	}
	for key, dst := range map[string]*int{"sync.bwlimit_kib": &next.Sync.BWLimitKiB, "sync.io_busy_percent": &next.Sync.IOBusyPercent, "search.per_page": &next.Search.PerPage} {
		n, err := strconv.Atoi(strings.TrimSpace(form[key]))
		if err != nil {
			problems[key] = "must be a whole number"
			continue
		}
		*dst = n
	}
	if len(problems) > 0 {
		return problems, nil
	}
	return s.commit(cur, &next)
}

// update changes the current config with f and saves it like Save does (the benchmark's
// "use as upstream").
func (s *settings) update(f func(*config.Config)) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.Current()
	next := *cur
	next.Sync.FallbackUpstreams = append([]string(nil), cur.Sync.FallbackUpstreams...)
	f(&next)
	return s.commit(cur, &next)
}

// commit validates next exactly as amwi.toml is validated, writes it atomically and
// applies it; nothing changes when there is a problem.
func (s *settings) commit(cur, next *config.Config) (map[string]string, error) {
	problems := map[string]string{}
	text := config.Render(next)
	parsed, err := config.Parse(text, cur.Path)
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			key := p.Key
			if i := strings.IndexByte(key, '['); i > 0 {
				key = key[:i]
			}
			problems[key] = strings.TrimSpace(problems[key] + " " + p.Msg)
		}
		return problems, nil
	}
	if err != nil {
		return nil, err
	}
	if err := config.WriteFile(cur.Path, text); err != nil {
		return nil, err
	}
	s.d.apply(parsed)
	s.d.Log.Info("settings saved", "file", cur.Path)
	return nil, nil
}

// TestDiscord sends a test notification with the saved webhook and says whether it arrived.
func (s *settings) TestDiscord() error {
	c := s.Current()
	if c.Discord.WebhookURL == "" {
		return errors.New("no webhook URL is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return notify.New(c.Discord.WebhookURL, nil, s.d.Log).Send(ctx, notify.SyncEvent{Kind: "test",
		Trigger: "web", Reason: "A test notification from AMWI's settings page: this channel will hear about syncs."})
}

func fields(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		return []string{}
	}
	return f
}

// apply makes a new config current: the sync engine takes it from its next run, the
// schedule is re-planned, search follows the repos, Discord the webhook.
func (d *Daemon) apply(c *config.Config) {
	old := d.setCurrent(c)
	d.syncer.SetConfig(syncConfig(c))
	if !slices.Equal(searchRepos(old), searchRepos(c)) {
		d.search.SetRepos(searchRepos(c))
		go d.search.Load()
	}
	if old.Discord != c.Discord {
		d.setDiscord(c)
	}
}

// setDiscord replaces the notifier (nil when Discord is off) and runs its queue.
func (d *Daemon) setDiscord(c *config.Config) {
	d.discordMu.Lock()
	defer d.discordMu.Unlock()
	if d.discordStop != nil {
		d.discordStop()
		d.discordStop = nil
	}
	d.discord = nil
	if !c.Discord.Enabled || c.Discord.WebhookURL == "" {
		return
	}
	d.discord = notify.New(c.Discord.WebhookURL, nil, d.Log)
	if d.runCtx != nil {
		ctx, cancel := context.WithCancel(d.runCtx)
		d.discordStop = cancel
		go d.discord.Run(ctx)
	}
}

func (d *Daemon) notifier() *notify.Discord {
	d.discordMu.Lock()
	defer d.discordMu.Unlock()
	return d.discord
}
