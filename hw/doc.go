// Package hw reads the machine through injectable proc and sys roots, so that tests can
// point it at fixture trees under testdata/.
//
// Today it holds what the sync throttle needs: FindBlockDevice maps a path to the whole
// disk holding it, and DiskBusy samples how busy that disk is from diskstats. The
// dashboard's CPU, memory, load, network, temperature and board model readers belong here
// too. It does not decide anything (pausing rsync is daemon/sync's job) and keeps no state
// beyond a sampler's previous reading.
package hw
