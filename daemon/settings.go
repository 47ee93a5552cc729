package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amwi/amwi/daemon/config"
	"github.com/amwi/amwi/daemon/notify"
)

// settings is the dashboard's settings page behind web.SettingsService: a form becomes one
// change of the running configuration (config.Live: validated exactly as amwi.toml is,
// written to the dashboard's layer in the state dir, applied everywhere before it returns).
type settings struct {
	d *Daemon
}

func (s *settings) Current() *config.Config { return s.d.live.Current() }

// Save takes form values keyed like amwi.toml ("sync.upstream"). Nothing changes when any
// value is wrong; the problems come back per key.
func (s *settings) Save(form map[string]string) (map[string]string, error) {
	problems := map[string]string{}
	var interval config.Duration
	if err := interval.UnmarshalText([]byte(strings.TrimSpace(form["sync.interval"]))); err != nil {
		problems["sync.interval"] = err.Error()
	}
	nums := map[string]int{}
	for _, key := range []string{"sync.bwlimit_kib", "sync.io_busy_percent", "search.per_page"} {
		n, err := strconv.Atoi(strings.TrimSpace(form[key]))
		if err != nil {
			problems[key] = "must be a whole number"
			continue
		}
		nums[key] = n
	}
	// The "used" mode fields change only when the form carries them: a form from before
	// them (or a script posting the old fields) leaves them as they are.
	_, hasKeep := form["mirror.keep_days"]
	if hasKeep {
		n, err := strconv.Atoi(strings.TrimSpace(form["mirror.keep_days"]))
		if err != nil {
			problems["mirror.keep_days"] = "must be a whole number of days"
		}
		nums["mirror.keep_days"] = n
	}
	_, hasMax := form["mirror.max_gib"]
	var maxGiB float64
	if hasMax {
		v := strings.TrimSpace(form["mirror.max_gib"])
		if v == "" {
			v = "0"
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			problems["mirror.max_gib"] = "must be a number of GiB (0 = no budget)"
		}
		maxGiB = f
	}
	if len(problems) > 0 {
		return problems, nil
	}
	return s.update(func(next *config.Config) {
		if v, ok := form["mirror.packages"]; ok {
			next.Mirror.Packages = strings.TrimSpace(v)
		}
		if hasKeep {
			next.Mirror.KeepDays = nums["mirror.keep_days"]
		}
		if hasMax {
			next.Mirror.MaxGiB = maxGiB
		}
		if v, ok := form["sync.http_upstream"]; ok {
			next.Sync.HTTPUpstream = strings.TrimSpace(v)
		}
		if v, ok := form["sync.http_fallback_upstreams"]; ok {
			next.Sync.HTTPFallbackUpstreams = fields(v)
		}
		if v, ok := form["server.public_url"]; ok {
			next.Server.PublicURL = strings.TrimSpace(v)
		}
		// Read at every use (clientName): off names nobody from the next page on.
		if v, ok := form["traffic.reverse_dns"]; ok {
			next.Traffic.ReverseDNS = v == "true"
		}
		next.Server.TrustedProxies = fields(form["server.trusted_proxies"])
		next.Mirror.Repos = fields(form["mirror.repos"])
		next.Sync.Enabled = form["sync.enabled"] == "true"
		next.Sync.Upstream = strings.TrimSpace(form["sync.upstream"])
		next.Sync.FallbackUpstreams = fields(form["sync.fallback_upstreams"])
		next.Sync.Interval = interval
		next.Sync.BWLimitKiB, next.Sync.IOBusyPercent, next.Search.PerPage = nums["sync.bwlimit_kib"], nums["sync.io_busy_percent"], nums["search.per_page"]
		next.Bench.Country = strings.TrimSpace(form["bench.country"])
		next.Discord.Enabled = form["discord.enabled"] == "true"
		if u := strings.TrimSpace(form["discord.webhook_url"]); u != "" { // empty keeps the secret
			next.Discord.WebhookURL = u
		}
	})
}

// update changes the running configuration with f (the form's save, the benchmark's "use
// as upstream"); problems come back per key, nothing changes when there is any.
func (s *settings) update(f func(*config.Config)) (map[string]string, error) {
	err := s.d.live.Update(f)
	var ps config.Problems
	if errors.As(err, &ps) {
		return problemsByKey(ps), nil
	}
	if err != nil {
		return nil, err
	}
	s.d.Log.Info("settings saved", "file", s.Current().Layers.SettingsPath)
	return nil, nil
}

// Reset sets a key back to amwi.toml's value.
func (s *settings) Reset(key string) error {
	if !slices.Contains(config.DashboardKeys, key) {
		return fmt.Errorf("%q is not a setting of this page", key)
	}
	if err := s.d.live.Reset(key); err != nil {
		return err
	}
	s.d.Log.Info("setting reset to amwi.toml's value", "key", key)
	return nil
}

// problemsByKey turns config problems into messages per form field.
func problemsByKey(ps config.Problems) map[string]string {
	problems := map[string]string{}
	for _, p := range ps {
		key := p.Key
		if i := strings.IndexByte(key, '['); i > 0 {
			key = key[:i]
		}
		problems[key] = strings.TrimSpace(problems[key] + " " + p.Msg)
	}
	return problems
}

// TestDiscord sends a test notification with the saved webhook and says whether it arrived.
func (s *settings) TestDiscord() error {
	c := s.Current()
	if c.Discord.WebhookURL == "" {
		return errors.New("no webhook URL is set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return notify.New(c.Discord.WebhookURL, nil, s.d.Log).SendOnce(ctx, notify.SyncEvent{Kind: "test",
		Trigger: "web", Reason: "A test notification from AMWI's settings page: this channel will hear about syncs."})
}

func fields(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		return []string{}
	}
	return f
}

// applied is told of every change of the running configuration and passes it on: the
// sync engine takes it from its next run and re-plans its schedule, search follows the
// repos, Discord the webhook, the web side the trusted proxies.
func (d *Daemon) applied(old, c *config.Config) {
	d.setProxies(c)
	d.syncer.SetConfig(syncConfig(c, d.traffic.LastUsed))
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
		n := d.discord
		d.parts.Go(func() { n.Run(ctx) })
	}
}

func (d *Daemon) notifier() *notify.Discord {
	d.discordMu.Lock()
	defer d.discordMu.Unlock()
	return d.discord
}
