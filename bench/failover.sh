#!/usr/bin/env bash
# bench/failover.sh: issue 12's reconnect storm. Two tern nodes on one
# private PostgreSQL behind a private HAProxy (TCP mode, round robin);
# --conns clients of --users users log in through it, SELECT INBOX with
# QRESYNC enabled and IDLE; node A is killed with SIGKILL; ternbench's
# failover workload reports how long its clients took to be IDLE again
# on node B (log in, SELECT with QRESYNC, IDLE), and node B's CPU and
# peak memory. The nodes run tern's default limits, and the clients come
# from --sources loopback addresses, as clients of many addresses do.
#
# Two runs, fresh nodes each: "proxy" (HAProxy sends each client's
# address with the PROXY protocol, send-proxy-v2, and the nodes trust it:
# proxy_protocol.trusted_networks) and "plain" (no PROXY header: every
# client is HAProxy's one address to the nodes, so the per-address
# connection limits see one client).
#
# Usage: bench/failover.sh [--conns N] [--users N] [--sources N] [--messages N] [--out DIR] [--only proxy|plain]
#   --conns N     clients (default 1000)
#   --users N     users testuser1..N, clients spread over them (default 400)
#   --sources N   client source addresses 127.0.0.2 on (default 250)
#   --messages N  messages in each user's INBOX (default 50)
#   --duration D  how long the clients may take to come back (default 120s)
#   --out DIR     keep the JSON results here (default: a new temp dir)
#   --only MODE   run only proxy or plain
#
# Needs root (PostgreSQL runs as nobody), Debian's postgresql and haproxy
# packages. Everything lives in a temp dir, listens on 127.0.0.1 only,
# and is stopped by PID on exit.
set -euo pipefail

CONNS=1000 USERS=400 SOURCES=250 MESSAGES=50 DURATION=120s OUT="" ONLY=""
while [ $# -gt 0 ]; do
	case "$1" in
	--conns) CONNS=$2; shift 2 ;;
	--users) USERS=$2; shift 2 ;;
	--sources) SOURCES=$2; shift 2 ;;
	--messages) MESSAGES=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	-h|--help) sed -n '2,27p' "$0"; exit 0 ;;
	*) echo "failover.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
command -v haproxy >/dev/null || { echo "failover.sh: needs haproxy (apt-get install haproxy)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ternfailover.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PASS=bench-pass-$RANDOM$RANDOM
PG_PORT=$(free_port 21632)
A_PORT=$(free_port $((PG_PORT + 1)))
B_PORT=$(free_port $((A_PORT + 1)))
LB_PORT=$(free_port $((B_PORT + 1)))
A_PID="" B_PID="" LB_PID="" PGBIN="" PGDATA=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

stop_pid() { # pid: TERM, then KILL after 10 s
	local p=$1
	[ -n "$p" ] || return 0
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
	kill -KILL "$p" 2>/dev/null || true
}

stop_nodes() {
	stop_pid "$LB_PID"
	stop_pid "$A_PID"
	stop_pid "$B_PID"
	A_PID="" B_PID="" LB_PID=""
}

cleanup() {
	stop_nodes
	pg_stop
	log "results in $OUT"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log "building tern and ternbench"
build_bins

pg_start "$WORK" "$PG_PORT" "-c max_connections=200"
URL=$(pg_createdb tern)

node_config() { # name port trusted-networks
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
[log]
level = "warn"
[store]
url = "$URL"
[proxy_protocol]
trusted_networks = [$3]
CONF
}

lb_config() { # server-options
	cat >"$WORK/haproxy.cfg" <<CONF
global
	maxconn 9000
defaults
	mode tcp
	timeout connect 1s
	timeout client 30m
	timeout server 30m
	timeout check 500ms
	retries 3
	option redispatch
frontend imap
	bind 127.0.0.1:$LB_PORT
	default_backend tern
backend tern
	balance roundrobin
	server a 127.0.0.1:$A_PORT check inter 500ms fall 2 rise 2 $1
	server b 127.0.0.1:$B_PORT check inter 500ms fall 2 rise 2 $1
CONF
}

wait_port() {
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done
	log "nothing listens on port $1"
	return 1
}

node_config a "$A_PORT" ""
log "creating $USERS users"
for i in $(seq "$USERS"); do
	printf '%s\n' "$PASS" | "$WORK/bin/tern" user add "testuser$i" --config "$WORK/a/tern.toml" >/dev/null
done
"$WORK/bin/tern" serve --config "$WORK/a/tern.toml" 2>>"$WORK/a/tern.log" &
A_PID=$!
wait_port "$A_PORT"
log "seeding $MESSAGES messages into each INBOX"
TERNBENCH_PASSWORD=$PASS "$WORK/bin/ternbench" --port "$A_PORT" --user 'testuser%d' --users "$USERS" \
	--concurrency 8 --messages "$MESSAGES" --duration 10m seed >/dev/null
stop_nodes

run() { # mode trusted-networks haproxy-server-options
	log "failover ($1): $CONNS clients of $USERS users from $SOURCES addresses through HAProxy; node A killed"
	node_config a "$A_PORT" "$2"
	node_config b "$B_PORT" "$2"
	lb_config "$3"
	"$WORK/bin/tern" serve --config "$WORK/a/tern.toml" 2>>"$WORK/a/tern-$1.log" &
	A_PID=$!
	"$WORK/bin/tern" serve --config "$WORK/b/tern.toml" 2>>"$WORK/b/tern-$1.log" &
	B_PID=$!
	wait_port "$A_PORT"
	wait_port "$B_PORT"
	haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy-$1.log" 2>&1 &
	LB_PID=$!
	wait_port "$LB_PORT"
	sleep 1.5 # both servers checked up
	local rc=0
	TERNBENCH_PASSWORD=$PASS "$WORK/bin/ternbench" --port "$LB_PORT" --user 'testuser%d' --users "$USERS" \
		--conns "$CONNS" --sources "$SOURCES" --duration "$DURATION" --kill-pid "$A_PID" --server-pid "$B_PID" \
		--label "$1" --json "$OUT/$1.json" failover || rc=$?
	kill -KILL "$A_PID" 2>/dev/null || true # killed by ternbench unless it failed first
	wait "$A_PID" 2>/dev/null || true
	A_PID=""
	stop_nodes
	[ "$rc" = 0 ] || log "failover ($1): ternbench exit $rc"
}
[ "$ONLY" = plain ] || run proxy '"127.0.0.1"' "send-proxy-v2 check-send-proxy"
[ "$ONLY" = proxy ] || run plain "" ""
