#!/usr/bin/env bash
# scripts/bench.sh — `make bench`: amwi against Debian's nginx on this machine, plus the
# appliance's own budgets (slow clients, memory, binary size).
#
#   1. wrk, side by side (amwi and nginx alternate on every scenario so noise hits both):
#      a 256 MiB file at 1, 16 and 256 connections, core.db at 64 connections. nginx is
#      Debian's nginx-light with one worker, sendfile and tcp_nopush on (the issue's method;
#      amwi is one process too). Every figure is the median of BENCH_ROUNDS runs.
#   2. Slow clients: SLOW_CLIENTS downloads read at 50 KB/s each for SLOW_SECONDS through a
#      16 KiB receive buffer, while amwi's RSS and the latency of GET / are sampled each second.
#   3. Idle RSS of a fresh amwi, and the size of a stripped linux/arm64 binary.
#   A minimal Go file server (internal/bench/gofloor) runs beside them at 16 and 64
#   connections, to show which part of the distance to nginx is Go's runtime.
#
# Everything runs on 127.0.0.1, in a temporary directory that is removed at exit, and every
# process started here is stopped at exit. The report goes to stdout and bench-out/report.txt,
# the raw data behind it (wrk outputs, per-second samples, configs) to bench-out/raw/;
# progress goes to stderr.
#
# Needs: ./amwi (make bench builds it), go, curl, and the Debian packages wrk and nginx-light.
#
# Environment:
#   BENCH_SECONDS  length of each wrk run (default 10)
#   BENCH_ROUNDS   wrk rounds; the order flips every round and each figure is the median of
#                  the rounds (default 3)
#   SLOW_SECONDS   length of the slow-client run (default 120)
#   SLOW_CLIENTS   number of slow clients (default 2000)
#   SLOW_RATE      bytes/s each slow client reads (default 50000)
#   BENCH_PIN      1: the servers run on CPU 0 and wrk on CPU 1 (taskset), so that load and
#                  server never share a core; Go then sees one CPU (GOMAXPROCS=1), as nginx
#                  has one worker. Default 0, the issue's method.
#   BENCH_SCENARIOS  the wrk scenarios to run, space-separated, of: big-c1 big-c16 big-c256
#                  small-c64 (default all); the rows of the others are left out
set -euo pipefail

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
SLOW_SECONDS=${SLOW_SECONDS:-120}
SLOW_CLIENTS=${SLOW_CLIENTS:-2000}
SLOW_RATE=${SLOW_RATE:-50000}

BENCH_PIN=${BENCH_PIN:-0}
log() { echo "bench: $*" >&2; }
die() {
	echo "bench: error: $*" >&2
	exit 1
}

srv_pin=() cli_pin=()
case $BENCH_PIN in
0) ;;
1)
	command -v taskset >/dev/null 2>&1 || die "BENCH_PIN=1 needs taskset (Debian package util-linux)"
	(($(nproc) >= 2)) || die "BENCH_PIN=1 needs 2 CPUs, this machine has $(nproc)"
	srv_pin=(taskset -c 0) cli_pin=(taskset -c 1)
	;;
*) die "BENCH_PIN must be 0 or 1, not '$BENCH_PIN'" ;;
esac

for v in BENCH_SECONDS BENCH_ROUNDS SLOW_SECONDS SLOW_CLIENTS SLOW_RATE; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number, not '${!v}'"
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

# --- tools ---------------------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
	[[ -x /usr/local/go/bin/go ]] || die "go not found (looked in PATH and /usr/local/go/bin)"
	PATH=$PATH:/usr/local/go/bin
fi
WRK=$(command -v wrk 2>/dev/null) ||
	die "wrk not found: install the Debian package 'wrk' (apt-get install wrk); the benchmark is not skipped without it"
NGINX=$(command -v nginx 2>/dev/null) || { [[ -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx; } ||
	die "nginx not found: install the Debian package 'nginx-light' (apt-get install nginx-light); the benchmark is not skipped without it"
command -v curl >/dev/null 2>&1 || die "curl not found: install the Debian package 'curl'"
[[ -x ./amwi ]] || die "./amwi not found in $repo: run 'make bench' (it builds first) or 'make build'"

# --- process bookkeeping -------------------------------------------------------------------
tmp=""
pids=() # every background process started here; stopped in reverse order at exit

# stop_pid PID: SIGTERM, up to 10 s to go, then SIGKILL (and its children, e.g. nginx workers,
# which would outlive a killed master).
stop_pid() {
	local pid=$1 kids i
	kill -0 "$pid" 2>/dev/null || {
		wait "$pid" 2>/dev/null || true
		return 0
	}
	kids=$(pgrep -P "$pid" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop on SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	for k in $kids; do
		kill -KILL "$k" 2>/dev/null || true
	done
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$? i
	set +e
	trap - EXIT INT TERM
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		stop_pid "${pids[i]}"
	done
	[[ -n $tmp && -d $tmp ]] && rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- report --------------------------------------------------------------------------------
raw=$repo/bench-out/raw
rm -rf "$raw"
mkdir -p "$raw"
report=$repo/bench-out/report.txt
: >"$report"
out() {
	printf '%s\n' "$*"
	printf '%s\n' "$*" >>"$report"
}
outf() {
	# shellcheck disable=SC2059
	printf "$@"
	# shellcheck disable=SC2059
	printf "$@" >>"$report"
}

misses=()
# verdict OK NAME: sets V to PASS or MISS and remembers misses for the summary (not to be
# called in $(...), whose changes to misses would be lost).
V=""
verdict() {
	if [[ $1 == 1 ]]; then
		V=PASS
	else
		V=MISS
		misses+=("$2")
	fi
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; } # kB -> MiB

# --- limits --------------------------------------------------------------------------------
# 2000 slow clients need 2000 fds in the client and as many in amwi.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
if [[ $nofile != unlimited ]] && ((nofile < SLOW_CLIENTS + 200)); then
	log "warning: open-files limit is $nofile, below SLOW_CLIENTS=$SLOW_CLIENTS + headroom"
fi

# --- ports ---------------------------------------------------------------------------------
# free_port: a port on 127.0.0.1 nothing answers on (a server that cannot bind fails loudly
# at start anyway).
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 30000))
		[[ $p == "${1:-}" ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found on 127.0.0.1"
}
AMWI_PORT=$(free_port)
NGINX_PORT=$(free_port "$AMWI_PORT")
FLOOR_PORT=$(free_port "$NGINX_PORT")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/amwi-bench.XXXXXX")
www=$tmp/www
mirror=$www/archlinux
rel=core/os/x86_64
mkdir -p "$mirror/$rel" "$tmp/state" "$tmp/nginx"

# --- header --------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
out "AMWI benchmark report"
out "====================="
out "date:      $(date -R)"
out "host:      $(uname -srm), nproc=$(nproc)${cpu:+, $cpu}"
out "memory:    $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
out "load avg:  $(loadavg) at start (other work on this machine skews every number below)"
out "go:        $(go version)"
out "amwi:      $(./amwi version 2>/dev/null | head -n1 || echo '?') ($repo/amwi)"
out "nginx:     $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
out "wrk:       $("$WRK" -v 2>&1 | head -n1 | awk '{ print $2 }')"
out "settings:  BENCH_SECONDS=$BENCH_SECONDS BENCH_ROUNDS=$BENCH_ROUNDS SLOW_SECONDS=$SLOW_SECONDS SLOW_CLIENTS=$SLOW_CLIENTS SLOW_RATE=$SLOW_RATE BENCH_PIN=$BENCH_PIN ulimit-n=$nofile"
out ""

# --- tree ----------------------------------------------------------------------------------
log "building the test tree in $tmp"
head -c 256M /dev/urandom >"$mirror/$rel/big.bin"
top=$(git rev-parse --show-toplevel 2>/dev/null || echo "$repo")
real_db=$top/../shared/data/arch-real/alpm.rs-sync/core.db
if [[ -f $real_db ]]; then
	cp "$real_db" "$mirror/$rel/core.db"
	db_src="real Arch core.db"
else
	head -c 150K /dev/urandom >"$mirror/$rel/core.db"
	db_src="random bytes (no $real_db)"
fi
chmod -R a+rX "$www"
big_size=$(stat -c %s "$mirror/$rel/big.bin")
db_size=$(stat -c %s "$mirror/$rel/core.db")
cat "$mirror/$rel/big.bin" "$mirror/$rel/core.db" >/dev/null # into the page cache
out "tree:      big.bin $big_size bytes (random), core.db $db_size bytes ($db_src)"

log "building the slow-client tool"
go build -o "$tmp/slowclients" ./internal/bench/slowclients
go build -o "$tmp/gofloor" ./internal/bench/gofloor

# --- amwi ----------------------------------------------------------------------------------
cat >"$tmp/amwi.toml" <<EOF
[server]
listen = "127.0.0.1:$AMWI_PORT"
shutdown_grace = "2s"

[mirror]
root = "$mirror"
repos = ["core"]

[sync]
enabled = false

[state]
dir = "$tmp/state"
EOF

amwi_pid=""
# start_amwi TAG: a fresh amwi, waited for until it logs msg=serving.
start_amwi() {
	local logf=$tmp/amwi-$1.log i
	"${srv_pin[@]}" ./amwi -c "$tmp/amwi.toml" serve >"$logf" 2>&1 &
	amwi_pid=$!
	pids+=("$amwi_pid")
	for ((i = 0; i < 100; i++)); do
		grep -q 'msg=serving' "$logf" && return 0
		kill -0 "$amwi_pid" 2>/dev/null || {
			tail -n 20 "$logf" >&2
			die "amwi exited at start (log above)"
		}
		sleep 0.1
	done
	tail -n 20 "$logf" >&2
	die "amwi did not log msg=serving within 10 s"
}
stop_amwi() {
	[[ -n $amwi_pid ]] && stop_pid "$amwi_pid"
	amwi_pid=""
}
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # proc_kb PID VmRSS

# --- nginx ---------------------------------------------------------------------------------
ng=$tmp/nginx
user_line=""
[[ $(id -u) == 0 ]] && user_line="user root;" # workers would otherwise be nobody
cat >"$ng/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon off;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 4096; }
http {
    types { application/octet-stream bin db; }
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $ng/body;
    proxy_temp_path $ng/proxy;
    fastcgi_temp_path $ng/fastcgi;
    uwsgi_temp_path $ng/uwsgi;
    scgi_temp_path $ng/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $www;
        location /archlinux/ { }
    }
}
EOF
"$NGINX" -t -q -p "$ng/" -e "$ng/error.log" -c "$ng/nginx.conf" 2>"$ng/test.log" || {
	cat "$ng/test.log" >&2
	die "nginx rejects the generated config $ng/nginx.conf"
}

wait_http() { # wait_http URL WHAT PID
	local i
	for ((i = 0; i < 100; i++)); do
		curl -sf -o /dev/null --max-time 2 "$1" && return 0
		kill -0 "$3" 2>/dev/null || die "$2 exited at start"
		sleep 0.1
	done
	die "$2 did not answer $1 within 10 s"
}

log "starting amwi on 127.0.0.1:$AMWI_PORT and nginx on 127.0.0.1:$NGINX_PORT"
start_amwi idle
"${srv_pin[@]}" "$NGINX" -p "$ng/" -e "$ng/error.log" -c "$ng/nginx.conf" >"$ng/stdout.log" 2>&1 &
nginx_pid=$!
pids+=("$nginx_pid")

# gofloor: the least Go can do (see internal/bench/gofloor), to tell Go's share of the
# distance to nginx from amwi's own.
"${srv_pin[@]}" "$tmp/gofloor" -listen "127.0.0.1:$FLOOR_PORT" -root "$www" 2>"$tmp/gofloor.log" &
gofloor_pid=$!
pids+=("$gofloor_pid")

amwi_url=http://127.0.0.1:$AMWI_PORT
nginx_url=http://127.0.0.1:$NGINX_PORT
gofloor_url=http://127.0.0.1:$FLOOR_PORT
wait_http "$amwi_url/healthz" amwi "$amwi_pid"
wait_http "$nginx_url/archlinux/$rel/core.db" nginx "$nginx_pid"
wait_http "$gofloor_url/archlinux/$rel/core.db" gofloor "$gofloor_pid"

# Both must serve the same bytes, or the comparison means nothing.
for srv in amwi nginx; do
	base=${srv}_url
	curl -sf --max-time 10 -o "$tmp/check-$srv.db" "${!base}/archlinux/$rel/core.db" ||
		die "$srv does not serve core.db"
	cmp -s "$tmp/check-$srv.db" "$mirror/$rel/core.db" || die "$srv serves a different core.db"
	len=$(curl -sfI --max-time 10 "${!base}/archlinux/$rel/big.bin" | tr -d '\r' |
		awk 'tolower($1) == "content-length:" { print $2 }')
	[[ $len == "$big_size" ]] || die "$srv announces big.bin as '$len' bytes, not $big_size"
done

curl -sf --max-time 10 -o "$tmp/check-gofloor.db" "$gofloor_url/archlinux/$rel/core.db" &&
	cmp -s "$tmp/check-gofloor.db" "$mirror/$rel/core.db" || die "gofloor does not serve core.db as it is"

# --- idle RSS ------------------------------------------------------------------------------
log "idle RSS: waiting 3 s with no traffic"
sleep 3
idle_kb=$(proc_kb "$amwi_pid" VmRSS)

# --- wrk -----------------------------------------------------------------------------------
read -ra scenarios <<<"${BENCH_SCENARIOS:-big-c1 big-c16 big-c256 small-c64}"
declare -A sc_file=([big-c1]=big.bin [big-c16]=big.bin [big-c256]=big.bin [small-c64]=core.db)
declare -A sc_conns=([big-c1]=1 [big-c16]=16 [big-c256]=256 [small-c64]=64)
for sc in "${scenarios[@]}"; do
	[[ -n ${sc_file[$sc]:-} ]] || die "BENCH_SCENARIOS: no scenario '$sc' (there are: ${!sc_file[*]})"
done
# Per run values, space-separated, keyed "scenario,server": req/s, bytes/s, errors,
# completed requests, bytes read, server CPU ticks.
declare -A rps_v=() tps_v=() err_v=() req_v=() read_v=() cpu_v=()

# median VALUES...: the middle value (the mean of the two middle ones for an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Server CPU time is less sensitive to other load on the machine than throughput is.
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime+stime of the given processes, in clock ticks
	local p sum=0 t
	for p in "$@"; do
		t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || continue
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}
server_pids() {
	case $1 in
	amwi) echo "$amwi_pid" ;;
	gofloor) echo "$gofloor_pid" ;;
	nginx) echo "$nginx_pid" $(pgrep -P "$nginx_pid" || true) ;;
	esac
}

# run_wrk SERVER SCENARIO: one wrk run; records req/s, bytes/s, errors, completed requests,
# bytes read and server CPU ticks.
run_wrk() {
	local srv=$1 sc=$2 base=${1}_url conns threads=2 f res rps tps errs reqs rd c0 c1
	conns=${sc_conns[$sc]}
	((conns < 2)) && threads=1
	f=$raw/wrk-$sc-$srv-$round.txt
	log "wrk $sc on $srv (-t$threads -c$conns -d${BENCH_SECONDS}s)"
	# shellcheck disable=SC2046
	c0=$(cpu_ticks $(server_pids "$srv"))
	# A 256 MiB response at 256 connections takes far longer than wrk's 2 s default timeout.
	timeout -k 5 $((BENCH_SECONDS + 90)) "${cli_pin[@]}" "$WRK" -t"$threads" -c"$conns" -d"${BENCH_SECONDS}s" \
		--timeout 60s --latency "${!base}/archlinux/$rel/${sc_file[$sc]}" >"$f" 2>&1 ||
		log "wrk exited with status $? on $srv/$sc (output: $f)"
	# shellcheck disable=SC2046
	c1=$(cpu_ticks $(server_pids "$srv"))
	res=$(awk '
		function bytes(s,   n, u) {
			n = s + 0; u = s; sub(/^[0-9.]+/, "", u)
			if (u == "KB") n *= 1024; else if (u == "MB") n *= 1048576
			else if (u == "GB") n *= 1073741824; else if (u == "TB") n *= 1099511627776
			return n
		}
		/^Requests\/sec:/ { rps = $2 }
		/^Transfer\/sec:/ { tps = bytes($2) }
		/Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errs += $i + 0 }
		/Non-2xx or 3xx responses:/ { errs += $NF }
		/ requests in .* read$/ { reqs = $1; rd = bytes($(NF - 1)) }
		END {
			printf "%s %s %d %d %.0f\n", (rps == "" ? "nan" : rps), (tps == "" ? "nan" : tps), errs, reqs, rd
		}
	' "$f")
	read -r rps tps errs reqs rd <<<"$res"
	if [[ $rps == nan || $tps == nan ]]; then
		cat "$f" >&2
		die "could not read wrk's results for $srv/$sc (output above)"
	fi
	rps_v[$sc,$srv]+=" $rps"
	tps_v[$sc,$srv]+=" $tps"
	err_v[$sc,$srv]+=" $errs"
	req_v[$sc,$srv]+=" $reqs"
	read_v[$sc,$srv]+=" $rd"
	cpu_v[$sc,$srv]+=" $((c1 - c0))"
	echo "server-cpu-ticks $((c1 - c0)) clk_tck $clk_tck" >>"$f"
}

for ((round = 1; round <= BENCH_ROUNDS; round++)); do
	order=(amwi nginx gofloor)
	((round % 2 == 0)) && order=(gofloor nginx amwi)
	for sc in "${scenarios[@]}"; do
		for srv in "${order[@]}"; do
			# The reference server runs only where the goals are.
			[[ $srv == gofloor && $sc != big-c16 && $sc != small-c64 ]] && continue
			run_wrk "$srv" "$sc"
			sleep 1
		done
	done
done
wrk_hwm_kb=$(proc_kb "$amwi_pid" VmHWM)

out ""
# per_run SCENARIO SERVER: CPU per unit of work of each run (ms per GiB for the big file,
# µs per request for the small one), one per line.
per_run() {
	local -a c r b
	read -ra c <<<"${cpu_v[$1,$2]}"
	read -ra r <<<"${req_v[$1,$2]}"
	read -ra b <<<"${read_v[$1,$2]}"
	local i
	for i in "${!c[@]}"; do
		if [[ $1 == big-* ]]; then
			awk -v t="${c[i]}" -v b="${b[i]}" -v hz="$clk_tck" 'BEGIN { if (b > 0) printf "%.3f\n", t / hz * 1000 / (b / 1073741824) }'
		else
			awk -v t="${c[i]}" -v r="${r[i]}" -v hz="$clk_tck" 'BEGIN { if (r > 0) printf "%.3f\n", t / hz * 1e6 / r }'
		fi
	done
}
sum_of() { local s=0 v; for v in $1; do s=$((s + v)); done; echo "$s"; }

out "1. Serving: amwi vs nginx (wrk, ${BENCH_SECONDS}s per run, median of $BENCH_ROUNDS alternating rounds)"
out "--------------------------------------------------------------------------------------------"
out "nginx: worker_processes 1; sendfile on; tcp_nopush on; access_log off. Ratio = amwi/nginx."
outf '%-44s %12s %12s %7s %8s %6s\n' measure amwi nginx ratio goal status
row() { # row LABEL A N GOAL(>=x|<=x|-) : one line of the table, with its verdict
	local label=$1 a=$2 n=$3 goal=$4 ratio ok status=info
	ratio=$(awk -v a="$a" -v n="$n" 'BEGIN { if (n + 0 > 0) printf "%.2f", a / n; else print "n/a" }')
	if [[ $goal != - ]]; then
		ok=$(awk -v r="$ratio" -v g="${goal:2}" -v op="${goal:0:2}" 'BEGIN {
			if (r == "n/a") { print 0; exit }
			print ((op == ">=" && r + 0 >= g + 0) || (op == "<=" && r + 0 <= g + 0)) ? 1 : 0 }')
		verdict "$ok" "$label: ratio $ratio (goal $goal)"
		status=$V
	fi
	outf '%-44s %12s %12s %7s %8s %6s\n' "$label" "$a" "$n" "$ratio" "$goal" "$status"
}
ran() { [[ " ${scenarios[*]} " == *" $1 "* ]]; } # ran SCENARIO: it was in BENCH_SCENARIOS
mibs() { awk -v v="$(median ${tps_v[$1,$2]})" 'BEGIN { printf "%.1f", v / 1048576 }'; }
ran big-c1 && row "256 MiB file, 1 connection, MiB/s" "$(mibs big-c1 amwi)" "$(mibs big-c1 nginx)" ">=1.0"
ran big-c16 && row "256 MiB file, 16 connections, MiB/s" "$(mibs big-c16 amwi)" "$(mibs big-c16 nginx)" ">=1.0"
ran big-c256 && row "256 MiB file, 256 connections, MiB/s" "$(mibs big-c256 amwi)" "$(mibs big-c256 nginx)" "-"
cpu_med() { awk -v v="$(median $(per_run "$1" "$2"))" 'BEGIN { printf "%.1f", v }'; }
ran big-c1 && row "server CPU ms per GiB, 1 connection" "$(cpu_med big-c1 amwi)" "$(cpu_med big-c1 nginx)" "-"
ran big-c16 && row "server CPU ms per GiB, 16 connections" "$(cpu_med big-c16 amwi)" "$(cpu_med big-c16 nginx)" "<=1.0"
ran big-c256 && row "server CPU ms per GiB, 256 connections" "$(cpu_med big-c256 amwi)" "$(cpu_med big-c256 nginx)" "-"
rps() { awk -v v="$(median ${rps_v[$1,$2]})" 'BEGIN { printf "%.0f", v }'; }
ran small-c64 && row "150 KB file, 64 connections, requests/s" "$(rps small-c64 amwi)" "$(rps small-c64 nginx)" ">=0.8"
ran small-c64 && row "server CPU µs per request, 64 connections" "$(cpu_med small-c64 amwi)" "$(cpu_med small-c64 nginx)" "-"
out ""
out "Go's floor: gofloor (internal/bench/gofloor: ReadRequest, a fixed head, TCP_CORK, sendfile;"
out "nothing else) against the same nginx runs. What separates it from nginx is Go's runtime."
outf '%-44s %12s %12s %7s\n' measure gofloor nginx ratio
floor_row() { outf '%-44s %12s %12s %7s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v n="$3" 'BEGIN { if (n + 0 > 0) printf "%.2f", a / n; else print "n/a" }')"; }
ran big-c16 && floor_row "256 MiB file, 16 connections, MiB/s" "$(mibs big-c16 gofloor)" "$(mibs big-c16 nginx)"
ran big-c16 && floor_row "server CPU ms per GiB, 16 connections" "$(cpu_med big-c16 gofloor)" "$(cpu_med big-c16 nginx)"
ran small-c64 && floor_row "150 KB file, 64 connections, requests/s" "$(rps small-c64 gofloor)" "$(rps small-c64 nginx)"
ran small-c64 && floor_row "server CPU µs per request, 64 connections" "$(cpu_med small-c64 gofloor)" "$(cpu_med small-c64 nginx)"
errs_a=0 errs_n=0
for sc in "${scenarios[@]}"; do
	errs_a=$((errs_a + $(sum_of "${err_v[$sc,amwi]}")))
	errs_n=$((errs_n + $(sum_of "${err_v[$sc,nginx]}")))
done
out "wrk errors (socket errors and non-2xx answers), all runs: amwi $errs_a, nginx $errs_n"
verdict "$((errs_a == 0 ? 1 : 0))" "amwi answered $errs_a wrk requests with errors"
# Per-run numbers, for judging noise.
out ""
out "per run (req/s, transfer/s as wrk printed them):"
for f in "$raw"/wrk-*.txt; do
	name=$(basename "$f" .txt)
	outf '  %-28s %s\n' "${name#wrk-}" "$(awk '/^Requests\/sec:/ { r = $2 } /^Transfer\/sec:/ { t = $2 }
		/^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
		/^server-cpu-ticks/ { c = $2 }
		END { printf "%10s req/s %10s/s  latency p50 %9s p99 %9s  cpu-ticks %s", r, t, p50, p99, c }' "$f")"
done
outf '  amwi peak RSS during wrk (VmHWM): %s MiB; load avg after wrk: %s\n' "$(mib "$wrk_hwm_kb")" "$(loadavg)"

# --- slow clients --------------------------------------------------------------------------
# A fresh amwi, so VmHWM is the peak of this run alone.
stop_pid "$nginx_pid"
stop_pid "$gofloor_pid"
stop_amwi
start_amwi slow
wait_http "$amwi_url/healthz" amwi "$amwi_pid"

lat_sample() { # prints "CODE SECONDS"
	curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "$amwi_url/" || true
}
idle_lat=()
for _ in 1 2 3 4 5; do
	read -r _ t <<<"$(lat_sample)"
	idle_lat+=("$t")
	sleep 0.2
done
idle_lat_ms=$(printf '%s\n' "${idle_lat[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] * 1000 }')

log "slow clients: $SLOW_CLIENTS x $SLOW_RATE B/s for ${SLOW_SECONDS}s against amwi"
"$tmp/slowclients" -n "$SLOW_CLIENTS" -rate "$SLOW_RATE" -duration "${SLOW_SECONDS}s" \
	-url "$amwi_url/archlinux/$rel/big.bin" >"$raw/slowclients.out" 2>"$raw/slowclients.err" &
sc_pid=$!
pids+=("$sc_pid")
slow_c0=$(cpu_ticks "$amwi_pid")

: >"$raw/slow-samples.txt" # t rss_kb fds http_code latency_s
t0=$SECONDS
deadline=$((SECONDS + SLOW_SECONDS + 30))
amwi_died=0
while kill -0 "$sc_pid" 2>/dev/null && ((SECONDS < deadline)); do
	if ! kill -0 "$amwi_pid" 2>/dev/null; then
		amwi_died=1
		log "amwi died during the slow-client run"
		break
	fi
	rss=$(proc_kb "$amwi_pid" VmRSS 2>/dev/null || echo 0)
	fds=$(find "/proc/$amwi_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	read -r code t <<<"$(lat_sample)"
	echo "$((SECONDS - t0)) ${rss:-0} $fds ${code:-000} ${t:-5}" >>"$raw/slow-samples.txt"
	sleep 1
done
if kill -0 "$sc_pid" 2>/dev/null; then
	log "slowclients overran its duration by 30 s; stopping it"
	stop_pid "$sc_pid"
fi
wait "$sc_pid" 2>/dev/null || log "slowclients exited with status $?"
slow_hwm_kb=0 slow_cpu=?
if ((!amwi_died)); then
	slow_hwm_kb=$(proc_kb "$amwi_pid" VmHWM)
	slow_cpu=$(awk -v t="$(($(cpu_ticks "$amwi_pid") - slow_c0))" -v hz="$clk_tck" -v s="$SLOW_SECONDS" \
		'BEGIN { printf "%.1f s (%.1f%% of a core)", t / hz, 100 * t / hz / s }')
fi

line=$(grep '^clients=' "$raw/slowclients.out" | tail -n1 || true)
[[ -n $line ]] || {
	cat "$raw/slowclients.err" >&2
	die "slowclients printed no summary (stderr above)"
}
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$line"; }
s_dropped=$(field dropped)
s_behind=$(field behind)
s_bytes=$(field bytes)
s_elapsed=$(field elapsed)
s_ideal=$(field ideal)
s_errors=$(sed -n 's/.*errors="\(.*\)"$/\1/p' <<<"$line")

read -r n_samples lat_max lat_p99 lat_p50 lat_fail rss_max fds_max < <(awk '
	{ n++; lat[n] = $5 * 1000; if ($4 != "200") fail++; if ($2 > rss) rss = $2; if ($3 > fds) fds = $3 }
	END {
		if (n == 0) { print "0 0 0 0 0 0 0"; exit }
		for (i = 2; i <= n; i++) { v = lat[i]; j = i - 1; while (j > 0 && lat[j] > v) { lat[j + 1] = lat[j]; j-- } lat[j + 1] = v }
		p99 = int(n * 0.99 + 0.999); if (p99 < 1) p99 = 1
		printf "%d %.1f %.1f %.1f %d %d %d\n", n, lat[n], lat[p99], lat[int((n + 1) / 2)], fail + 0, rss, fds
	}' "$raw/slow-samples.txt")

got_pct=$(awk -v g="$s_bytes" -v e="$s_ideal" 'BEGIN { if (e > 0) printf "%.0f", 100 * g / e; else print "?" }')
peak_kb=$((slow_hwm_kb > rss_max ? slow_hwm_kb : rss_max))

out ""
out "2. Slow clients: $SLOW_CLIENTS x $SLOW_RATE B/s, 16 KiB receive buffers, ${SLOW_SECONDS}s, fresh amwi"
out "--------------------------------------------------------------------------------------------"
out "client:    $line"
outf '%-34s %-22s %-12s %s\n' measure value target status
verdict "$([[ $s_dropped == 0 && $amwi_died == 0 ]] && echo 1 || echo 0)" "slow clients dropped: $s_dropped of $SLOW_CLIENTS (target 0)"
outf '%-34s %-22s %-12s %s\n' "dropped clients" "$s_dropped" "0" "$V"
outf '%-34s %-22s %-12s %s\n' "clients under half their rate" "${s_behind:-?}" "0" info
outf '%-34s %-22s %-12s %s\n' "bytes delivered / rate allowed" "${got_pct}%" "~100%" info
verdict "$((peak_kb <= 64 * 1024 ? 1 : 0))" "peak RSS under slow clients $(mib "$peak_kb") MiB (target <= 64 MiB)"
outf '%-34s %-22s %-12s %s\n' "amwi peak RSS (VmHWM)" "$(mib "$peak_kb") MiB" "<= 64 MiB" "$V"
outf '%-34s %-22s %-12s %s\n' "amwi max sampled RSS / open fds" "$(mib "$rss_max") MiB / $fds_max" "-" info
outf '%-34s %-22s %-12s %s\n' "amwi CPU time" "$slow_cpu" "-" info
outf '%-34s %-22s %-12s %s\n' "GET / latency, idle (median of 5)" "$idle_lat_ms ms" "-" info
verdict "$(awk -v m="$lat_p99" -v f="$lat_fail" -v n="$n_samples" 'BEGIN { print (n > 0 && f == 0 && m < 100) ? 1 : 0 }')" \
	"dashboard latency p99 $lat_p99 ms, $lat_fail failed of $n_samples samples (target < 100 ms)"
outf '%-34s %-22s %-12s %s\n' "GET / latency under load, p99" "$lat_p99 ms" "< 100 ms" "$V"
outf '%-34s %-22s %-12s %s\n' "GET / latency under load, max/p50" "$lat_max / $lat_p50 ms" "-" info
outf '%-34s %-22s %-12s %s\n' "GET / samples (failed)" "$n_samples ($lat_fail)" "-" info
[[ $amwi_died == 1 ]] && out "amwi DIED during the run; last log lines:" && tail -n 20 "$tmp/amwi-slow.log" | while IFS= read -r l; do out "  $l"; done
[[ -n $s_errors && $s_errors != none ]] && out "client errors: $s_errors"
out "load avg after the slow clients: $(loadavg)"
log "slow clients finished in ${s_elapsed:-?}"
stop_amwi

# --- size ----------------------------------------------------------------------------------
log "building a stripped linux/arm64 binary"
gotags=$(sed -n 's/^GOTAGS *:\{0,1\}= *//p' Makefile) # as make cross builds it
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -tags "$gotags" -ldflags "-s -w" -o "$tmp/amwi-arm64" ./cmd/amwi
arm_size=$(stat -c %s "$tmp/amwi-arm64")

out ""
out "3. Footprint"
out "--------------------------------------------------------------------------------------------"
outf '%-34s %-22s %-12s %s\n' measure value target status
verdict "$((idle_kb <= 20 * 1024 ? 1 : 0))" "idle RSS $(mib "$idle_kb") MiB (target <= 20 MiB)"
outf '%-34s %-22s %-12s %s\n' "idle RSS (fresh amwi, 3 s idle)" "$(mib "$idle_kb") MiB" "<= 20 MiB" "$V"
verdict "$((arm_size <= 12 * 1024 * 1024 ? 1 : 0))" "arm64 binary $arm_size bytes (target <= 12 MiB)"
outf '%-34s %-22s %-12s %s\n' "linux/arm64 binary, -s -w" \
	"$(awk -v b="$arm_size" 'BEGIN { printf "%.2f MiB", b / 1048576 }') ($arm_size B)" "<= 12 MiB" "$V"

out ""
out "Summary"
out "--------------------------------------------------------------------------------------------"
if ((${#misses[@]} == 0)); then
	out "all targets met"
else
	out "${#misses[@]} target(s) missed:"
	for m in "${misses[@]}"; do out "  - $m"; done
fi
cp "$tmp/amwi.toml" "$ng/nginx.conf" "$tmp"/amwi-*.log "$raw/" 2>/dev/null || true
log "report written to $report (raw data in $raw/)"
