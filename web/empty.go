package web

// emptyState is what a page with nothing to show says instead of "0 packages": why it is
// empty and, to whoever can act, what to do; the "empty" block in layout.html draws it.
type emptyState struct {
	Title, Text string
	Actions     []emptyAction // links to where the reader can act; none for who cannot
}

type emptyAction struct{ Href, Label string }

// upstream is sync.upstream ("" when none is set, or without settings).
func (u *ui) upstream() string {
	if u.o.Settings == nil {
		return ""
	}
	return u.o.Settings.Current().Sync.Upstream
}

// noUpstreamActions are an administrator's ways to get an upstream.
var noUpstreamActions = []emptyAction{{"/bench", "Run the benchmark to pick an upstream"}, {"/settings", "or set one in Settings"}}

// emptyPackages: the index holds no package: no database has been fetched yet.
func (u *ui) emptyPackages(v viewer) *emptyState {
	e := &emptyState{Title: "No package databases yet", Text: "The first sync fetches them from the upstream mirror; packages show here as soon as it ends."}
	noUpstream := u.upstream() == ""
	switch {
	case v.user != nil && v.user.Admin && noUpstream:
		e.Text = "No upstream mirror is set yet, so nothing has been fetched. Pick one, then start the first sync; packages show here as soon as it ends."
		e.Actions = noUpstreamActions
	case v.user != nil && v.user.Admin:
		e.Actions = []emptyAction{{"/sync", "Start the first sync"}}
	case noUpstream:
		e.Text = "No upstream mirror is set yet: an administrator picks one and starts the first sync, which fetches the package databases."
	default:
		e.Text += " An administrator starts it, or it runs on schedule."
	}
	if v.user == nil {
		e.Actions = []emptyAction{{"/login", "Log in"}}
	}
	return e
}

// emptySync: no sync has run yet.
func (u *ui) emptySync(v viewer) *emptyState {
	e := &emptyState{Title: "No sync has run yet", Text: "The first sync fetches the repositories' databases and packages from the upstream mirror."}
	noUpstream := u.upstream() == ""
	switch {
	case v.user != nil && v.user.Admin && noUpstream:
		e.Text = "No upstream mirror is set yet: pick one, then press Sync now."
		e.Actions = noUpstreamActions
	case v.user != nil && v.user.Admin:
		e.Text += " Press Sync now to start it, or wait for the schedule."
	case noUpstream:
		e.Text += " No upstream is set yet: an administrator picks one first."
	default:
		e.Text += " An administrator starts it, or it runs on schedule."
	}
	return e
}

// emptyTraffic: no mirror download in the period shown.
func (u *ui) emptyTraffic() *emptyState {
	return &emptyState{Title: "No downloads yet",
		Text:    "Nothing was downloaded from the mirror in the last 30 days. Point pacman at this box: the Overview shows the Server line for /etc/pacman.d/mirrorlist.",
		Actions: []emptyAction{{"/#use", "Set up a client"}}}
}

// emptyBench: no benchmark has run yet. The administrator's form is right above it, so the
// text points at it rather than linking away; a viewer learns who runs it.
func (u *ui) emptyBench(v viewer) *emptyState {
	e := &emptyState{Title: "No benchmark has run yet"}
	switch {
	case v.user != nil && v.user.Admin:
		e.Text = "Type the country this box is in and press Measure, then pick the best mirror with Use as upstream."
		if u.upstream() != "" {
			e.Text = "Type a country and press Measure to compare its mirrors with the upstream in use; Use as upstream switches to a better one."
		}
		e.Actions = []emptyAction{{"/settings", "Or set an upstream by hand in Settings"}}
	default:
		e.Text = "An administrator runs it to pick the upstream mirror; its ranking of the mirrors shows here once it has run."
	}
	return e
}
