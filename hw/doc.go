// Package hw reads the machine through injectable proc and sys roots, so that tests can
// point it at fixture trees under testdata/.
//
// For the sync throttle, FindBlockDevice maps a path to the whole disk holding it and
// DiskBusy samples how busy that disk is from diskstats.
//
// For the dashboard, Reader reads a Snapshot of the machine: CPU, memory, load, uptime,
// the mirror's filesystem and disk, network interfaces, the hottest thermal zone and the
// board's name. Rates and percentages are deltas from the previous Read; a source that
// cannot be read is left empty with its reason in Snapshot.Errors, and never stops the
// others. Sampler runs one Reader every second for all viewers, keeps the last ten minutes
// and pushes each new Snapshot to live subscribers.
//
// It does not decide anything (pausing rsync is daemon/sync's job, formatting is web's)
// and keeps no state beyond the previous reading and the sampler's ring.
package hw
