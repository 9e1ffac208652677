#!/usr/bin/env bash
# bench/crossnode.sh: issue 12's cross-node IDLE figure. Two tern nodes
# (A and B) on one private PostgreSQL; --conns clients IDLE on a mailbox
# through node A; APPENDs go through node B; ternbench's idle-fanout
# reports, per APPEND, the time until each idler saw the new EXISTS
# ("notify" p50/p99) and until all had ("all-notified"). For contrast the
# same run with the APPENDs through node A itself (same node).
#
# Usage: bench/crossnode.sh [--conns N] [--duration D] [--out DIR] [--profile]
#   --conns N       idle connections on node A (default 1000)
#   --duration D    measuring time per run (default 20s; one APPEND per round,
#                   50 ms apart)
#   --out DIR       keep the JSON results here (default: a new temp dir)
#   --profile       write node A's CPU profile to DIR/node-a.pprof
#
# Needs root (PostgreSQL runs as nobody) and Debian's postgresql package.
# Everything lives in a temp dir, listens on 127.0.0.1 only, and is stopped
# by PID on exit.
set -euo pipefail

CONNS=1000 DURATION=20s OUT="" PROFILE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--conns) CONNS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--profile) PROFILE=1; shift ;;
	-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "crossnode.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d /tmp/terncross.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PASS=bench-pass-$RANDOM$RANDOM
PG_PORT=$(free_port 21532)
A_PORT=$(free_port $((PG_PORT + 1)))
B_PORT=$(free_port $((A_PORT + 1)))
A_PID="" B_PID="" PGBIN="" PGDATA=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
	for p in $A_PID $B_PID; do
		if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
	done
	for p in $A_PID $B_PID; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	done
	pg_stop
	log "results in $OUT"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log "building tern and ternbench"
build_bins

pg_start "$WORK" "$PG_PORT" "-c max_connections=200"
URL=$(pg_createdb tern)

node_config() { # name port
	mkdir -p "$WORK/$1"
	cat >"$WORK/$1/tern.toml" <<CONF
data_dir = "$WORK/$1/data"
[listen]
imap = "127.0.0.1:$2"
imaps = ""
lmtp = ""
admin = ""
managesieve = ""
[auth]
insecure_auth = true
free_failures = 1000000
max_user_failures = 1000000
max_ip_failures = 1000000
[limits]
max_conns = 30000
max_preauth_conns_per_ip = 30000
conn_rate_per_ip = 1000000.0
conn_burst_per_ip = 30000
max_userip_conns = 30000
max_user_conns = 30000
[log]
level = "warn"
[store]
url = "$URL"
CONF
}
node_config a "$A_PORT"
node_config b "$B_PORT"
printf '%s\n' "$PASS" | "$WORK/bin/tern" user add benchuser --config "$WORK/a/tern.toml" >/dev/null
A_PROF=()
[ "$PROFILE" = 1 ] && A_PROF=(--cpuprofile "$OUT/node-a.pprof")
"$WORK/bin/tern" serve --config "$WORK/a/tern.toml" "${A_PROF[@]}" 2>>"$WORK/a/tern.log" &
A_PID=$!
"$WORK/bin/tern" serve --config "$WORK/b/tern.toml" 2>>"$WORK/b/tern.log" &
B_PID=$!
for port in $A_PORT $B_PORT; do
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

run() { # label append-port
	log "idle-fanout: $CONNS idlers on node A, APPENDs through port $2 ($1)"
	TERNBENCH_PASSWORD=$PASS "$WORK/bin/ternbench" --port "$A_PORT" --append-port "$2" --user benchuser \
		--conns "$CONNS" --duration "$DURATION" --server-pid "$A_PID" --label "$1" --json "$OUT/$1.json" idle-fanout
}
run crossnode "$B_PORT"
run samenode "$A_PORT"
