// Package mirrorlists turns Arch Linux's mirror directories into benchmark candidates.
//
// It reads two sources of truth: pacman-format mirrorlists (archlinux.org/mirrorlist/
// output, and the country files a user drops into bench.mirrorlists_dir, see README.md in
// this folder) and archlinux.org's mirror status JSON (/mirrors/status/json/), which
// StatusCache fetches and keeps a copy of so an offline appliance can still rank mirrors.
// Parsers are pure (io.Reader or []byte in, values out) and fuzzed; only FromMirrorlistDir
// and StatusCache touch the file system or the network.
//
// It does not measure anything: the benchmark takes the Candidates built here, times them,
// and picks an upstream. Nor does it write pacman's own /etc/pacman.d/mirrorlist.
package mirrorlists
