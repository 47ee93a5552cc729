package web

// UsedStats is what the Overview and /metrics show of "used" mode (mirror.packages =
// "used": only the packages LAN clients use are on disk, the rest fetched on first
// request). Counters run since the daemon started.
type UsedStats struct {
	// Used is the mode: false for a full mirror of the repos (the rest is then zero).
	Used     bool
	KeepDays int
	// Hits are package files (and .sig) served from disk; Misses the requests answered
	// through an upstream fetch, Shared those of them that joined a fetch already running,
	// Failed the misses the upstream could not deliver.
	Hits, Misses, Shared, Failed int64
	// FetchedBytes came from the HTTP upstream on misses; MissServedBytes went to clients
	// from those fetches (the rest of the mirror's bytes came from disk).
	FetchedBytes, MissServedBytes int64
	// PrefetchedFiles and PrefetchedBytes: the package files the last sync fetched
	// because clients use them, and what they weigh.
	PrefetchedFiles int
	PrefetchedBytes int64
	// HeldBytes is what the package files on disk take; BudgetBytes is mirror.max_gib
	// (0: none).
	HeldBytes, BudgetBytes int64
	// FullBytes is what a full mirror of these repos would need (the databases' %CSIZE%).
	FullBytes int64
}

// PackagesEstimate is what switching mirror.packages would do to the mirror's disk, as the
// settings page says it before the switch: computed from the pool's file sizes, the live
// databases and the packages LAN clients downloaded within keep_days (no hashing).
type PackagesEstimate struct {
	// Mode is mirror.packages in force ("all" or "used"); KeepDays and BudgetBytes the
	// used-mode settings the estimate assumes.
	Mode        string
	KeepDays    int
	BudgetBytes int64
	// From "all" to "used": the package files (with their .sig) the databases name and
	// the disk holds that "used" would not keep (not downloaded within KeepDays, or past
	// the budget), and what they weigh.
	FreeFiles int
	FreeBytes int64
	// From "used" to "all": the package files the databases name and the disk lacks, and
	// their %CSIZE%.
	FetchFiles int
	FetchBytes int64
	// Partial: the pool held more entries than the estimate reads; the figures are a
	// lower bound.
	Partial bool
}
