#!/usr/bin/env bash
# A sync at Arch's scale, side by side with plain rsync (part of `make bench`).
#
# An upstream of ~15,500 packages (~31,000 pool files with their .sig; today's
# core+extra+multilib) is built from the real 2019 databases in ../shared/data/arch-real
# (internal/bench/synctree) and served by a real rsync daemon on 127.0.0.1. Three
# alternating rounds measure, each: plain `rsync -rlptH` of the pool (first copy, then
# again with nothing new), rsync of the repos' link dirs alone and Arch's own sync
# script's rsync of the same repos (both with nothing new), amwi's first sync, a forced
# sync with nothing new, the gated sync, and `amwi verify --full` against `sha256sum` over
# the same pool files. Wall time, CPU of the whole process tree, and the peak of its summed
# RSS; the report gives medians and the ratios the README quotes (absolute times vary from
# run to run on shared machines).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-bench-out}
data=${ARCH_REAL:-../shared/data/arch-real/alpm.rs-sync}
rounds=${ROUNDS:-3}
if [[ ! -f $data/extra.db ]]; then
	echo "bench-sync: needs the real Arch databases in $data (the project's ../shared/data/arch-real; set ARCH_REAL=DIR)" >&2
	exit 1
fi
command -v rsync >/dev/null || { echo "bench-sync: needs rsync (apt install rsync)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$work/synctree" ./internal/bench/synctree
CGO_ENABLED=0 go build -tags "$(sed -n 's/^GOTAGS *:\{0,1\}= *//p' Makefile)" -o "$work/amwi" ./cmd/amwi
"$work/synctree" build -data "$data" -out "$work/up"

port=$(( 20000 + RANDOM % 20000 ))
cat > "$work/rsyncd.conf" <<CONF
pid file = $work/rsyncd.pid
use chroot = no
$( [[ $(id -u) -eq 0 ]] && printf 'uid = root\ngid = root\n' )
[archlinux]
path = $work/up
read only = yes
CONF
rsync --daemon --no-detach --config="$work/rsyncd.conf" --port=$port --address=127.0.0.1 &
pid=$!
sleep 1
up=rsync://127.0.0.1:$port/archlinux/

cat > "$work/amwi.toml" <<CONF
[mirror]
root = "$work/mirror"
repos = ["core", "extra", "multilib"]
[sync]
upstream = "$up"
min_free_gib = 0
io_busy_percent = 0
[state]
dir = "$work/state"
CONF
repos=(); arch=(--include=/lastupdate --include=/lastsync '--include=/pool/***')
for r in core extra multilib; do
	repos+=("--include=/$r/" "--include=/$r/os/" "--include=/$r/os/x86_64/***")
	arch+=("--include=/$r/***")
done
repos+=('--exclude=*'); arch+=('--exclude=*')
log="$out/sync.jsonl"
: > "$log"
m() { local label=$1; shift; "$work/synctree" measure -label "$label" -log "$log" -- "$@" >/dev/null; }
for r in $(seq "$rounds"); do
	echo "bench-sync: round $r of $rounds"
	rm -rf "$work/plain" "$work/mirror" "$work/state"; mkdir -p "$work/plain" "$work/mirror"
	m rsync-pool-first rsync -rlptH "${up}pool/" "$work/plain/pool/"
	m rsync-pool-nochange rsync -rlptH "${up}pool/" "$work/plain/pool/"
	# The floor of any sync of these repos: their os/x86_64 dirs alone (~31,000 links into
	# the pool), with nothing new; and what Arch's own sync script does for the same repos
	# (pool and repo dirs, --delete-delay --delay-updates), with nothing new.
	rsync -rlpt "${repos[@]}" "$up" "$work/plain/"
	m rsync-links-nochange rsync -rlpt "${repos[@]}" "$up" "$work/plain/"
	rm -rf "$work/arch"; mkdir -p "$work/arch"
	rsync -rlptH --safe-links --delete-delay --delay-updates "${arch[@]}" "$up" "$work/arch/"
	m rsync-arch-nochange rsync -rlptH --safe-links --delete-delay --delay-updates "${arch[@]}" "$up" "$work/arch/"
	m amwi-first "$work/amwi" -c "$work/amwi.toml" sync
	m amwi-forced-nochange "$work/amwi" -c "$work/amwi.toml" sync --force
	m amwi-gate-nochange "$work/amwi" -c "$work/amwi.toml" sync
	m amwi-verify-full "$work/amwi" -c "$work/amwi.toml" verify --full
	m sha256sum sh -c "find '$work/mirror/pool' -type f -print0 | xargs -0 sha256sum > /dev/null"
done
"$work/synctree" report "$log" | tee "$out/sync.txt"
