#!/usr/bin/env bash
# bench/lmtp.sh: LMTP delivery throughput, tern against Dovecot's
# dovecot-lmtp on this machine: same messages, same recipients, fsync on
# for both (tern: SQLite synchronous=FULL and fsynced body files; Dovecot:
# mail_fsync at its default, optimized, which fsyncs delivered mail).
#
# Usage: bench/lmtp.sh [options]
#   --rounds N      rounds (default 3; medians are reported)
#   --duration D    length of each measured run (default 10s)
#   --clients LIST  concurrent LMTP connections (default 1,8)
#   --sizes LIST    message sizes in bytes (default 4096,102400)
#   --users N       recipients user1..userN, rotating per message (default 8)
#   --out DIR       keep results here (default: a new temp dir)
#   --report DIR    only print the table of the results in DIR
#
# Each run starts both servers on empty mail storage (so mailbox growth
# does not favour whichever server ran first), runs the servers one after
# the other (the order alternates per round), and stops them by PID.
# Needs root (installs dovecot-lmtpd with apt-get if missing; runs
# Dovecot's delivery as nobody). Everything lives in a temp dir; both
# servers listen on 127.0.0.1 only.
set -euo pipefail

ROUNDS=3 DURATION=10s CLIENTS=1,8 SIZES=4096,102400 USERS=8 OUT="" REPORT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--clients) CLIENTS=$2; shift 2 ;;
	--sizes) SIZES=$2; shift 2 ;;
	--users) USERS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--report) REPORT=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/{/^#/p}' "$0"; exit 0 ;;
	*) echo "lmtp.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

print_table() { # results-dir
	echo
	echo "## LMTP delivery: tern vs Dovecot (medians over rounds; ratio > 1 means tern is faster)"
	echo
	python3 - "$1" <<'PY'
import glob, json, os, statistics, sys
rows = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "lmtp-c*-s*-*-r*.json"))):
    r = json.load(open(f))
    if r.get("error"):
        continue
    size = int(os.path.basename(f).split("-")[2][1:])
    rows.setdefault((r["concurrency"], size), {}).setdefault(r["label"], []).append(r)
def med(rs, k):
    v = [r["extra"][k] if k in r.get("extra", {}) else r[k] for r in rs]
    return statistics.median(v) if v else 0
def kib(n):
    return "%d KiB" % (n // 1024)
print("| clients | size | tern msgs/s | Dovecot msgs/s | tern/Dovecot | tern p50 / p99 ms | Dovecot p50 / p99 ms | tern CPU ms/msg | Dovecot CPU ms/msg | runs |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (c, size) in sorted(rows):
    t, d = rows[(c, size)].get("tern", []), rows[(c, size)].get("dovecot", [])
    tv, dv = med(t, "value"), med(d, "value")
    ratio = "%.2f×" % (tv / dv) if tv and dv else "–"
    cpu = lambda rs: "%.1f" % statistics.median([1000 * r["server"]["cpu_seconds"] / max(1, sum(o["count"] for o in r["ops"])) for r in rs]) if rs and all(r.get("server") for r in rs) else "–"
    lat = lambda rs: "%.2f / %.2f" % (med(rs, "deliver_p50_ms"), med(rs, "deliver_p99_ms")) if rs else "–"
    print("| %d | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %d/%d |" % (c, kib(size), tv, dv, ratio, lat(t), lat(d), cpu(t), cpu(d), len(t), len(d)))
PY
	echo
	echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1); dovecot $(dovecot --version | cut -d' ' -f1)"
}

if [ -n "$REPORT" ]; then
	print_table "$REPORT"
	exit 0
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d /tmp/ternlmtp.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PASS=bench-pass-$RANDOM$RANDOM
TERN_PORT=$(free_port 21024)
DOVE_PORT=$(free_port $((TERN_PORT + 1)))
TERN_PID="" DOVE_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

stop_pid() { # pid: TERM, wait up to 10 s, then KILL
	local p=$1
	[ -n "$p" ] || return 0
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}

cleanup() {
	stop_pid "$TERN_PID"; TERN_PID=""
	stop_pid "$DOVE_PID"; DOVE_PID=""
	if [ "${KEEP:-0}" != 1 ]; then
		rm -rf "$WORK/tern" "$WORK/dovecot"
	fi
}
trap cleanup EXIT INT TERM

wait_port() { # port pid name logfile...
	local port=$1 pid=$2 name=$3; shift 3
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then return 0; fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	log "$name did not start"; cat "$@" >&2; exit 1
}

if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/lmtp ]; then
	log "installing dovecot-lmtpd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-lmtpd >&2
fi

log "building tern and ternbench"
build_bins
HASH=$(printf '%s\n' "$PASS" | (cd "$REPO" && go run ./bench/hashpw))

# ---- tern: default settings (fsync on), LMTP only ----
TD=$WORK/tern/data
start_tern() {
	rm -rf "$WORK/tern"
	mkdir -p "$WORK/tern"
	for i in $(seq 1 "$USERS"); do
		printf '%s\n' "$PASS" | "$WORK/bin/tern" user add "user$i" --data "$TD" >/dev/null
	done
	"$WORK/bin/tern" serve --data "$TD" --listen-imap "" --listen-imaps "" \
		--listen-lmtp "127.0.0.1:$TERN_PORT" 2>>"$WORK/tern/tern.log" &
	TERN_PID=$!
	wait_port "$TERN_PORT" "$TERN_PID" tern "$WORK/tern/tern.log"
}

# ---- Dovecot: defaults except what a private instance needs ----
DD=$WORK/dovecot
start_dovecot() {
	rm -rf "$DD"
	mkdir -p "$DD/run" "$DD/state" "$DD/mail" "$DD/home"
	chown nobody:nogroup "$DD/mail" "$DD/home"
	: >"$DD/passwd"
	for i in $(seq 1 "$USERS"); do
		echo "user$i:{ARGON2ID}$HASH::::::" >>"$DD/passwd"
	done
	cat >"$DD/dovecot.conf" <<CONF
# Private Dovecot for bench/lmtp.sh: defaults except what a benchmark needs.
base_dir = $DD/run
state_dir = $DD/state
instance_name = ternbench-lmtp
log_path = $DD/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
# RCPT TO:<userN@example.org> is user userN (tern ignores the domain too).
auth_username_format = %Ln
mail_location = maildir:$DD/mail/%u
mail_uid = nobody
mail_gid = nogroup
# mail_fsync stays at its default (optimized): delivered mail is fsynced.
passdb {
  driver = passwd-file
  args = $DD/passwd
}
userdb {
  driver = static
  args = home=$DD/home/%u
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $DOVE_PORT
  }
}
CONF
	/usr/sbin/dovecot -F -c "$DD/dovecot.conf" 2>>"$DD/dovecot.stderr" &
	DOVE_PID=$!
	wait_port "$DOVE_PORT" "$DOVE_PID" dovecot "$DD/dovecot.stderr" "$DD/dovecot.log"
}

run_one() { # server clients size round
	local srv=$1 c=$2 size=$3 round=$4 port pid
	if [ "$srv" = tern ]; then
		start_tern; pid=$TERN_PID port=$TERN_PORT
	else
		start_dovecot; pid=$DOVE_PID port=$DOVE_PORT
	fi
	local f="$OUT/lmtp-c$c-s$size-$srv-r$round.json"
	"$WORK/bin/ternbench" lmtp --port "$port" --label "$srv" --server-pid "$pid" \
		--concurrency "$c" --size "$size" --users "$USERS" --duration "$DURATION" \
		--json "$f" >"${f%.json}.txt" 2>&1 || log "$srv c=$c size=$size failed (see ${f%.json}.txt)"
	printf 'round %s %-7s c=%-2s size=%-6s %s\n' "$round" "$srv" "$c" "$size" "$(sed -n 1p "${f%.json}.txt")"
	if [ "$srv" = tern ]; then
		stop_pid "$TERN_PID"; TERN_PID=""
	else
		stop_pid "$DOVE_PID"; DOVE_PID=""
	fi
}

IFS=, read -r -a CLIENT_LIST <<<"$CLIENTS"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
for round in $(seq 1 "$ROUNDS"); do
	order="tern dovecot"
	[ $((round % 2)) = 0 ] && order="dovecot tern"
	for c in "${CLIENT_LIST[@]}"; do
		for size in "${SIZE_LIST[@]}"; do
			for srv in $order; do
				run_one "$srv" "$c" "$size" "$round"
			done
		done
	done
done

print_table "$OUT"
log "results in $OUT"
