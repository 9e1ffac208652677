#!/usr/bin/env bash
# bench/compare.sh: tern against Dovecot on this machine, same workloads,
# same messages and TLS setting, alternating servers (durability: see
# --dovecot-fsync).
#
# Usage: bench/compare.sh [options]
#   --rounds N        rounds per workload (default 3; medians are reported)
#   --duration D      length of each measured run (default 10s)
#   --messages N      messages in user1's INBOX (default 10000)
#   --other-messages N  messages in user2..user4's INBOX (default 2000)
#   --conns N         idle-fanout connections (default 500)
#   --workloads LIST  comma-separated subset (default: all): sync-headers, read,
#                     append, flags, idle-fanout, search, mixed, logins (a
#                     reconnect storm: 100 users per round, each logging in
#                     once, so every login checks its argon2id hash on both
#                     servers)
#   --tls             both servers over implicit TLS (default: both plaintext)
#   --compress        every measured run uses COMPRESS=DEFLATE after login
#                     (RFC 4978; Dovecot loads imap_zlib for it); result
#                     files get a -z suffix
#   --profile         afterwards, run each workload once more against tern
#                     with a CPU profile (prof-WORKLOAD.pprof + top list;
#                     ternbench's own in prof-client-WORKLOAD.pprof)
#   --out DIR         keep results here (default: a new temp dir)
#   --dovecot-fsync M Dovecot's mail_fsync: optimized (default: appended mail
#                     is fsynced, flag changes and expunges are not) or always
#                     (every change durable before its reply, as in tern)
#   --tern-fsync M    tern's store.fsync: always (default: every change durable
#                     before its reply) or optimized (as Dovecot's optimized)
#   --pin             give the servers the first half of the CPUs and the load
#                     generator the other half (taskset), so a run measures
#                     each server on its own cores instead of sharing them
#                     with ternbench; result files get a -pin suffix
#
# Needs root (installs dovecot-imapd with apt-get if missing; runs Dovecot's
# mail processes as nobody). Everything lives in a temp dir; both servers
# listen on 127.0.0.1 only and are stopped by PID on exit.
set -euo pipefail

ROUNDS=3 DURATION=10s MESSAGES=10000 OTHER_MESSAGES=2000 CONNS=500 TLS=0 COMPRESS=0 PROFILE=0 OUT="" WORKLOADS="" DOVECOT_FSYNC=optimized TERN_FSYNC=always PIN=0
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--messages) MESSAGES=$2; shift 2 ;;
	--conns) CONNS=$2; shift 2 ;;
	--other-messages) OTHER_MESSAGES=$2; shift 2 ;;
	--workloads) WORKLOADS=$2; shift 2 ;;
	--tls) TLS=1; shift ;;
	--compress) COMPRESS=1; shift ;;
	--profile) PROFILE=1; shift ;;
	--out) OUT=$2; shift 2 ;;
	--dovecot-fsync) DOVECOT_FSYNC=$2; shift 2 ;;
	--tern-fsync) TERN_FSYNC=$2; shift 2 ;;
	--pin) PIN=1; shift ;;
	-h|--help) sed -n '2,34p' "$0"; exit 0 ;;
	*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
selected() { [ -z "$WORKLOADS" ] || [[ ",$WORKLOADS," == *",$1,"* ]]; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d /tmp/ternbench.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PASS=bench-pass-$RANDOM$RANDOM
USERS=4          # user1: $MESSAGES messages; user2..user4: 2000 each
LOGIN_USERS=100  # per round: login1..login100, then login101..login200, ...
TERN_PORT=$(free_port 21143)
TERN_TLS_PORT=$(free_port 21993)
DOVE_PORT=$(free_port $((TERN_PORT + 1)))
DOVE_TLS_PORT=$(free_port $((TERN_TLS_PORT + 1)))
TERN_PID="" DOVE_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# --pin: servers on the first half of the allowed CPUs, ternbench on the rest.
pin_cpus compare.sh

cleanup() {
	for p in $TERN_PID $DOVE_PID; do
		if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
		fi
	done
	for p in $TERN_PID $DOVE_PID; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	done
	if [ -n "${INOTIFY_OLD:-}" ]; then
		echo "$INOTIFY_OLD" >/proc/sys/fs/inotify/max_user_instances 2>/dev/null || true
	fi
	if [ "${KEEP:-0}" != 1 ]; then
		case "$OUT" in
		"$WORK"/*) rm -rf "$WORK/tern" "$WORK/dovecot" ;;
		*) rm -rf "$WORK" ;; # the results are elsewhere: remove it all, the binaries too
		esac
	fi
}
trap cleanup EXIT INT TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Dovecot's IDLE uses one inotify instance per imap process; above the
# per-user limit (default 128) it falls back to polling every 30 s. Raise
# the limit for the run (as Dovecot's documentation advises) and restore it.
INOTIFY_OLD=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo "")
if [ -n "$INOTIFY_OLD" ] && [ "$INOTIFY_OLD" -lt $((CONNS + 1000)) ]; then
	echo $((CONNS + 1000)) >/proc/sys/fs/inotify/max_user_instances 2>/dev/null ||
		log "warning: cannot raise fs.inotify.max_user_instances ($INOTIFY_OLD): Dovecot's IDLE will poll"
fi

if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
	log "installing dovecot-imapd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd >&2
fi

log "building tern and ternbench"
build_bins
HASH=$(printf '%s\n' "$PASS" | (cd "$REPO" && go run ./bench/hashpw))

# ---- tern ----
mkdir -p "$WORK/tern"
TD=$WORK/tern/data
cat >"$WORK/tern/tern.toml" <<CONF
data_dir = "$TD"
[listen]
imap = "127.0.0.1:$TERN_PORT"
imaps = "127.0.0.1:$TERN_TLS_PORT"
lmtp = ""
[auth]
insecure_auth = true
# The load generator logs one user in on many connections at once.
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
fsync = "$TERN_FSYNC"
CONF
for i in $(seq 1 $USERS); do
	printf '%s\n' "$PASS" | "$WORK/bin/tern" user add "user$i" --config "$WORK/tern/tern.toml" >/dev/null
done
# The logins workload's users: each logs in once, in one round.
if selected logins; then
	for i in $(seq 1 $((LOGIN_USERS * ROUNDS))); do
		printf '%s\n' "$PASS" | "$WORK/bin/tern" user add "login$i" --config "$WORK/tern/tern.toml" >/dev/null
	done
fi
"$WORK/bin/tern" cert --config "$WORK/tern/tern.toml" >/dev/null

start_tern() { # [extra args]
	"${SERVER_CPUS[@]}" "$WORK/bin/tern" serve --config "$WORK/tern/tern.toml" "$@" 2>>"$WORK/tern/tern.log" &
	TERN_PID=$!
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/$TERN_PORT) 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	log "tern did not start"; cat "$WORK/tern/tern.log" >&2; exit 1
}
stop_tern() {
	kill -TERM "$TERN_PID"; wait "$TERN_PID" || true; TERN_PID=""
}

# ---- Dovecot ----
DD=$WORK/dovecot
mkdir -p "$DD/run" "$DD/state" "$DD/mail" "$DD/home"
chown nobody:nogroup "$DD/mail" "$DD/home"
: >"$DD/passwd"
for i in $(seq 1 $USERS); do
	echo "user$i:{ARGON2ID}$HASH::::::" >>"$DD/passwd"
done
if selected logins; then
	for i in $(seq 1 $((LOGIN_USERS * ROUNDS))); do
		echo "login$i:{ARGON2ID}$HASH::::::" >>"$DD/passwd"
	done
fi
SSL="ssl = no"
if [ "$TLS" = 1 ]; then
	SSL="ssl = required
ssl_cert = <$TD/tls/cert.pem
ssl_key = <$TD/tls/key.pem"
fi
cat >"$DD/dovecot.conf" <<CONF
# Private Dovecot for bench/compare.sh: defaults except what a benchmark needs.
base_dir = $DD/run
state_dir = $DD/state
instance_name = ternbench-dovecot
log_path = $DD/dovecot.log
protocols = imap
listen = 127.0.0.1
$SSL
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:$DD/mail/%u
mail_uid = nobody
mail_gid = nogroup
# optimized (Dovecot's default) fsyncs appended mail but not flag changes
# or expunges; tern makes every change durable before its tagged OK.
mail_fsync = $DOVECOT_FSYNC
# Logins are not measured; the cache only shortens idle-fanout's setup
# (one argon2id check per user instead of per connection).
auth_cache_size = 10M
auth_cache_ttl = 1 hour
default_client_limit = 40000
default_process_limit = 30000
protocol imap {
  mail_max_userip_connections = 30000
  # COMPRESS=DEFLATE (used only by runs with --compress)
  mail_plugins = \$mail_plugins imap_zlib
}
passdb {
  driver = passwd-file
  args = $DD/passwd
}
userdb {
  driver = static
  args = home=$DD/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVE_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $DOVE_TLS_PORT
  }
}
service imap {
  process_limit = 30000
}
service anvil {
  client_limit = 40000
}
service auth {
  client_limit = 40000
}
CONF
"${SERVER_CPUS[@]}" /usr/sbin/dovecot -F -c "$DD/dovecot.conf" 2>>"$DD/dovecot.stderr" &
DOVE_PID=$!
for _ in $(seq 100); do
	if (exec 3<>/dev/tcp/127.0.0.1/$DOVE_PORT) 2>/dev/null; then break; fi
	sleep 0.1
done
kill -0 "$DOVE_PID" || { log "dovecot did not start"; cat "$DD/dovecot.stderr" "$DD/dovecot.log" >&2; exit 1; }

start_tern

bench() { # server workload extra-args...
	local srv=$1 wl=$2; shift 2
	local port pid
	if [ "$srv" = tern ]; then pid=$TERN_PID; port=$TERN_PORT; [ "$TLS" = 1 ] && port=$TERN_TLS_PORT
	else pid=$DOVE_PID; port=$DOVE_PORT; [ "$TLS" = 1 ] && port=$DOVE_TLS_PORT; fi
	local tlsargs=()
	[ "$TLS" = 1 ] && tlsargs=(--tls --insecure)
	"${CLIENT_CPUS[@]}" "$WORK/bin/ternbench" --port "$port" "${tlsargs[@]}" --password "$PASS" --label "$srv" \
		--server-pid "$pid" "$@" "$wl"
}

log "seeding both servers (user1: $MESSAGES messages, user2..$USERS: $OTHER_MESSAGES)"
for srv in tern dovecot; do
	bench $srv seed --users 1 --messages "$MESSAGES" --json "$OUT/seed-$srv-user1.json" >"$OUT/seed-$srv-user1.txt"
	sed -n 1p "$OUT/seed-$srv-user1.txt"
	bench $srv seed --first-user 2 --users $((USERS - 1)) --concurrency 3 --messages "$OTHER_MESSAGES" --json "$OUT/seed-$srv-others.json" >"$OUT/seed-$srv-others.txt"
	sed -n 1p "$OUT/seed-$srv-others.txt"
done
# The seeded mail waits in tern's full-text index queue, and the server's
# background indexer would work through it during the first workloads.
# Measure the steady state: index it now (timed; reported below).
idx_start=$(date +%s)
"$WORK/bin/tern" index --all --config "$WORK/tern/tern.toml" >"$OUT/tern-index.txt" 2>&1
log "tern index --all after seeding: $(($(date +%s) - idx_start)) s"

# workload name | ternbench arguments
ALL=(
	"sync-headers|--users 1 --concurrency 1"
	"read|--users $USERS --concurrency 8"
	"append|--users $USERS --concurrency 1"
	"append|--users $USERS --concurrency 8"
	"append|--users $USERS --concurrency 64"
	"flags|--users $USERS --concurrency 4 --idlers 2"
	"idle-fanout|--users 1 --conns $CONNS"
	"search|--users 1 --concurrency 2"
	"mixed|--users $USERS --concurrency 16"
	"logins|--user login%d --first-user @FIRST@ --users $LOGIN_USERS --concurrency 8"
)

for round in $(seq 1 "$ROUNDS"); do
	order="tern dovecot"
	[ $((round % 2)) = 0 ] && order="dovecot tern"
	for entry in "${ALL[@]}"; do
		wl=${entry%%|*} args=${entry#*|}
		selected "$wl" || continue
		args=${args//@FIRST@/$(((round - 1) * LOGIN_USERS + 1))} # logins: users not seen before
		for srv in $order; do
			c=$(sed -n 's/.*--concurrency \([0-9]*\).*/\1/p' <<<"$args")
			f="$OUT/$wl-c${c:-1}-$srv-r$round.json"
			zargs=()
			if [ "$COMPRESS" = 1 ]; then f="$OUT/$wl-c${c:-1}-z-$srv-r$round.json"; zargs=(--compress); fi
			if [ "$PIN" = 1 ]; then f="${f%-"$srv"-r"$round".json}-pin-$srv-r$round.json"; fi
			# shellcheck disable=SC2086
			bench "$srv" "$wl" $args "${zargs[@]}" --duration "$DURATION" --json "$f" >"${f%.json}.txt" 2>&1 || log "$srv $wl failed (see ${f%.json}.txt)"
			sed -n 1p "${f%.json}.txt"
		done
	done
done

echo
pinned="unpinned"
[ "$PIN" = 1 ] && pinned="servers pinned to CPUs ${SERVER_CPUS[2]}, ternbench to ${CLIENT_CPUS[2]}"
echo "## tern vs Dovecot (medians of $ROUNDS rounds, $DURATION each, fsync tern=$TERN_FSYNC Dovecot=$DOVECOT_FSYNC, $pinned; ratio > 1 means tern is better)"
echo
"$WORK/bin/ternbench" report $(ls "$OUT"/*-r*.json)
echo
printf 'seed: '
for srv in tern dovecot; do
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], "%.0f msg/s" % r["value"], end="  ")' "$OUT/seed-$srv-user1.json" "$srv" 2>/dev/null || true
done
echo
du -sh "$TD" "$DD/mail" 2>/dev/null | sed 's/^/disk: /'

if [ "$PROFILE" = 1 ]; then
	log "profiling tern"
	for entry in "${ALL[@]}"; do
		wl=${entry%%|*} args=${entry#*|}
		selected "$wl" || continue
		[ "$wl" = logins ] && continue # its users have logged in: the success cache would answer
		c=$(sed -n 's/.*--concurrency \([0-9]*\).*/\1/p' <<<"$args")
		prof="$OUT/prof-$wl-c${c:-1}.pprof"
		stop_tern
		start_tern --cpuprofile "$prof"
		# shellcheck disable=SC2086
		bench tern "$wl" $args --duration "$DURATION" --cpuprofile "$OUT/prof-client-$wl-c${c:-1}.pprof" >/dev/null || true
		stop_tern
		start_tern
		echo "### profile $wl c=${c:-1}"
		go tool pprof -top -nodecount=25 "$WORK/bin/tern" "$prof" 2>/dev/null | sed -n '1,32p'
	done
fi
log "results in $OUT"
