#!/usr/bin/env bash
# Dashboard weight: CPU and memory of amwi with VIEWERS live-stream viewers for SECONDS,
# against the same daemon idle, and the overview page's size over the wire (HTML + CSS +
# JS). Loopback only. Part of make bench.
set -euo pipefail
VIEWERS=${VIEWERS:-50}
SECONDS_=${DASH_SECONDS:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/mirror"
port=$((20000 + RANDOM % 20000))
printf '[server]\nlisten = "127.0.0.1:%s"\n[mirror]\nroot = "%s/mirror"\n[state]\ndir = "%s/state"\n[sync]\nenabled = false\n' "$port" "$tmp" "$tmp" > "$tmp/amwi.toml"
"$top/amwi" -c "$tmp/amwi.toml" serve 2> "$tmp/amwi.log" &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
go build -o "$tmp/viewers" "$top/internal/bench/viewers"

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # utime + stime, clock ticks
hz=$(getconf CLK_TCK)
sleep 3
c0=$(cpu); sleep "$SECONDS_"; c1=$(cpu)
idle=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$SECONDS_" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
c0=$(cpu)
"$tmp/viewers" -url "http://127.0.0.1:$port/events" -n "$VIEWERS" -duration "${SECONDS_}s" > "$tmp/viewers.out"
c1=$(cpu)
busy=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$SECONDS_" 'BEGIN { printf "%.2f", (b - a) / hz / s * 100 }')
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
page=$(curl -s --compressed -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/")
css=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/static/app.css")
js=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/static/app.js")
echo "Dashboard: $VIEWERS live-stream viewers for ${SECONDS_}s"
echo "  viewers:           $(cat "$tmp/viewers.out")"
echo "  amwi CPU idle:     ${idle} % of one core"
echo "  amwi CPU viewers:  ${busy} % of one core"
echo "  amwi RSS idle:     $((rss_idle / 1024)) MiB; peak with viewers $((hwm / 1024)) MiB"
echo "  overview page:     $((page + css + js)) bytes (HTML $page, CSS $css, JS $js; target < 100 KB)"
