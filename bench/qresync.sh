#!/usr/bin/env bash
# bench/qresync.sh: issue 3 — is a QRESYNC resync of a big mailbox after
# 10 flag changes and 10 expunges O(changes)? tern against a private
# Dovecot on this machine, same messages, alternating servers.
#
# Usage: bench/qresync.sh [options]
#   --messages N      INBOX size (default 100000; 1-2 KiB messages)
#   --rounds R        measured rounds per pass (default 10)
#   --passes P        passes per server, alternating tern/Dovecot (default 3)
#   --seed-time D     bound on seeding each server (default 15m); if a server
#                     is not full by then, the run stops and says so
#   --out DIR         keep results here (default: a new temp dir)
#
# Each round: a client that knows UIDVALIDITY/HIGHESTMODSEQ comes back after
# another client flipped \Flagged on 10 messages and expunged 10 (spread
# over the mailbox) and sends SELECT INBOX (QRESYNC (uv modseq)) and, as a
# second variant, SELECT INBOX (QRESYNC (uv modseq 1:<uidnext-1>)); the answer
# is checked exact (VANISHED (EARLIER) = expunged UIDs, one FETCH per changed
# message). For contrast a plain client does SELECT + UID FETCH 1:* (FLAGS).
# Times are from sending the command to the tagged OK; bytes are what the
# server sent for it. The mailbox loses 10 messages per round.
#
# Needs root (Dovecot's mail processes run as nobody; installs dovecot-imapd
# with apt-get if missing). Everything lives in a temp dir; both servers
# listen on 127.0.0.1 only and are stopped by PID on exit.
set -euo pipefail

MESSAGES=100000 ROUNDS=10 PASSES=3 SEED_TIME=15m OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--messages) MESSAGES=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--passes) PASSES=$2; shift 2 ;;
	--seed-time) SEED_TIME=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h|--help) sed -n '2,25p' "$0"; exit 0 ;;
	*) echo "qresync.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d /tmp/ternqres.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PASS=bench-pass-$RANDOM$RANDOM
TERN_PORT=$(free_port 21243)
DOVE_PORT=$(free_port $((TERN_PORT + 1)))
TERN_PID="" DOVE_PID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

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
	if [ "${KEEP:-0}" != 1 ]; then
		rm -rf "$WORK/tern" "$WORK/dovecot"
	fi
}
trap cleanup EXIT INT TERM

for port in $TERN_PORT $DOVE_PORT; do
	if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		log "port $port is in use"; exit 1
	fi
done

if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
	log "installing dovecot-imapd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd >&2
fi

log "building tern and ternbench"
build_bins
HASH=$(printf '%s\n' "$PASS" | (cd "$REPO" && go run ./bench/hashpw))

# ---- tern ----
TD=$WORK/tern/data
mkdir -p "$TD"
printf '%s\n' "$PASS" | "$WORK/bin/tern" user add user1 --data "$TD" >/dev/null
"$WORK/bin/tern" serve --insecure-auth --data "$TD" --listen-imap "127.0.0.1:$TERN_PORT" \
	--listen-imaps "" --listen-lmtp "" 2>>"$WORK/tern/tern.log" &
TERN_PID=$!

# ---- Dovecot (as in bench/compare.sh; CONDSTORE/QRESYNC are built into
# Dovecot 2.3's imap and use the maildir's index, so no plugin is needed) ----
DD=$WORK/dovecot
mkdir -p "$DD/run" "$DD/state" "$DD/mail" "$DD/home"
chown nobody:nogroup "$DD/mail" "$DD/home"
echo "user1:{ARGON2ID}$HASH::::::" >"$DD/passwd"
cat >"$DD/dovecot.conf" <<CONF
# Private Dovecot for bench/qresync.sh: defaults except what a benchmark needs.
base_dir = $DD/run
state_dir = $DD/state
instance_name = ternqres-dovecot
log_path = $DD/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:$DD/mail/%u
mail_uid = nobody
mail_gid = nogroup
mail_plugins = \$mail_plugins
auth_cache_size = 10M
auth_cache_ttl = 1 hour
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
    port = 0
  }
}
CONF
/usr/sbin/dovecot -F -c "$DD/dovecot.conf" 2>>"$DD/dovecot.stderr" &
DOVE_PID=$!

for port in $TERN_PORT $DOVE_PORT; do
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then break; fi
		sleep 0.1
	done
done
kill -0 "$TERN_PID" || { log "tern did not start"; cat "$WORK/tern/tern.log" >&2; exit 1; }
kill -0 "$DOVE_PID" || { log "dovecot did not start"; cat "$DD/dovecot.stderr" "$DD/dovecot.log" >&2; exit 1; }

bench() { # server workload extra-args...
	local srv=$1 wl=$2; shift 2
	local port=$TERN_PORT pid=$TERN_PID
	[ "$srv" = dovecot ] && port=$DOVE_PORT pid=$DOVE_PID
	"$WORK/bin/ternbench" --port "$port" --users 1 --password "$PASS" --label "$srv" \
		--server-pid "$pid" "$@" "$wl"
}

jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["extra"].get(sys.argv[2], 0))' "$@"; }

log "seeding both servers with $MESSAGES messages (at most $SEED_TIME each)"
for srv in tern dovecot; do
	bench $srv qresync-seed --messages "$MESSAGES" --duration "$SEED_TIME" --json "$OUT/seed-$srv.json" >"$OUT/seed-$srv.txt"
	sed -n 1p "$OUT/seed-$srv.txt"
	got=$(jget "$OUT/seed-$srv.json" total_messages)
	if [ "${got%.*}" -lt "$MESSAGES" ]; then
		log "$srv holds only ${got%.*} of $MESSAGES messages after $SEED_TIME: rerun with --messages ${got%.*} or a longer --seed-time"
		exit 1
	fi
done

# Rounds are bounded by count and by time (each pass at most 10 minutes).
for pass in $(seq 1 "$PASSES"); do
	order="tern dovecot"
	[ $((pass % 2)) = 0 ] && order="dovecot tern"
	for srv in $order; do
		f="$OUT/qresync-$srv-p$pass.json"
		bench "$srv" qresync --count "$ROUNDS" --duration 10m --seed "$pass" --json "$f" >"${f%.json}.txt" 2>&1 ||
			{ log "$srv qresync pass $pass failed:"; cat "${f%.json}.txt" >&2; }
		sed -n 1p "${f%.json}.txt"
	done
done

echo
python3 - "$OUT" "$MESSAGES" "$ROUNDS" "$PASSES" <<'PY'
import glob, json, os, statistics, sys
out, messages, rounds, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res = {}
for srv in ("tern", "dovecot"):
    rs = []
    for f in sorted(glob.glob(os.path.join(out, "qresync-%s-p*.json" % srv))):
        r = json.load(open(f))
        if r.get("error"):
            print("%s: %s: %s" % (srv, os.path.basename(f), r["error"]))
        rs.append(r)
    res[srv] = rs
def med(srv, k):
    v = [r["extra"][k] for r in res[srv] if k in r.get("extra", {})]
    return statistics.median(v) if v else float("nan")
def top(srv, k):
    v = [r["extra"][k] for r in res[srv] if k in r.get("extra", {})]
    return max(v) if v else float("nan")
def tot(srv, k):
    return sum(r.get("extra", {}).get(k, 0) for r in res[srv])
print("## QRESYNC resync after 10 flag changes + 10 expunges, %d-message INBOX" % messages)
print("(%d passes x %d rounds per server, alternating; time and bytes: median of the pass medians; p99: worst pass p99;" % (passes, rounds))
print(" ratio = Dovecot / tern, > 1 means tern is cheaper)")
print()
print("| resync | metric | tern | Dovecot | ratio |")
print("|---|---|---:|---:|---:|")
rows = [("qresync", "SELECT (QRESYNC (uv modseq))"),
        ("qresync_known", "SELECT (QRESYNC (uv modseq 1:uidnext-1))"),
        ("full_resync", "SELECT + UID FETCH 1:* (FLAGS)"),
        ("plain_select", "plain SELECT alone (part of the above)")]
for k, name in rows:
    for metric, key, fmt, f in (("time p50 ms", k + "_p50_ms", "%.2f", med), ("time p99 ms", k + "_p99_ms", "%.2f", top),
                                ("bytes p50", k + "_bytes_p50", "%.0f", med), ("bytes p99", k + "_bytes_p99", "%.0f", top)):
        t, d = f("tern", key), f("dovecot", key)
        ratio = d / t if t else float("nan")
        print("| %s | %s | %s | %s | %.2f× |" % (name, metric, fmt % t, fmt % d, ratio))
print()
for srv in ("tern", "dovecot"):
    n = tot(srv, "rounds")
    print("%s: %d rounds; exact answers: plain %d/%d, known-uids %d/%d; extra VANISHED UIDs %d, extra FETCH %d; mailbox now %d messages" % (
        srv, n, tot(srv, "qresync_exact_rounds"), n, tot(srv, "qresync_known_exact_rounds"), n,
        tot(srv, "extra_vanished"), tot(srv, "extra_fetch"), min([r["extra"].get("messages", 0) for r in res[srv]] or [0])))
for srv in ("tern", "dovecot"):
    t = med(srv, "full_resync_p50_ms") / med(srv, "qresync_p50_ms")
    b = med(srv, "full_resync_bytes_p50") / med(srv, "qresync_bytes_p50")
    print("%s: full resync costs %.0f× the time and %.0f× the bytes of the QRESYNC resync" % (srv, t, b))
PY
printf '\nseed: '
for srv in tern dovecot; do
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], "%.0f msg/s in %.0f s" % (r["value"], r["seconds"]), end="  ")' "$OUT/seed-$srv.json" "$srv"
done
echo
du -sh "$TD" "$DD/mail" 2>/dev/null | sed 's/^/disk: /'
log "results in $OUT"
