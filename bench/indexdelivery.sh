#!/usr/bin/env bash
# bench/indexdelivery.sh: issue 11 — what the full-text index costs LMTP
# delivery. tern built from this tree with index.text = true (the
# background indexer runs while mail arrives) and = false (new mail only
# queued for indexing), and tern built from another checkout (--baseline,
# for instance a checkout from before the full-text index), same messages,
# fsync on.
#
# Usage: bench/indexdelivery.sh [options]
#   --rounds N       rounds (default 3; medians are reported)
#   --duration D     length of each run (default 20s)
#   --clients N      concurrent LMTP connections (default 4)
#   --size N         message size in bytes (default 4096)
#   --new-words N    end each message with N random words no message had
#                    before (ids, codes: what grows the word vocabulary;
#                    default 0)
#   --users N        recipients user1..userN (default 8)
#   --baseline DIR   checkout to build the baseline tern from (default: none)
#   --out DIR        keep results here (default: a new temp dir)
#
# Each run starts the server on an empty data directory and stops it by
# PID; the order of the variants rotates per round. Everything listens on
# 127.0.0.1 only. After each "on" run the report also gives how many
# messages were still waiting in the index queue when delivery stopped.
set -euo pipefail

ROUNDS=3 DURATION=20s CLIENTS=4 SIZE=4096 NEWWORDS=0 USERS=8 BASELINE="" OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	--clients) CLIENTS=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--new-words) NEWWORDS=$2; shift 2 ;;
	--users) USERS=$2; shift 2 ;;
	--baseline) BASELINE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/{/^#/p}' "$0"; exit 0 ;;
	*) echo "indexdelivery.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d /tmp/ternidxdel.XXXXXX)
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PID=""
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
stop_pid() {
	local p=$1
	[ -n "$p" ] || return 0
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
	kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
trap 'stop_pid "$PID"; rm -rf "$WORK/data"' EXIT
trap 'exit 130' INT TERM
PORT=$(free_port 21424)

log "building"
build_bins
VARIANTS="on off"
if [ -n "$BASELINE" ]; then
	(cd "$BASELINE" && go build -o "$WORK/bin/tern-baseline" ./cmd/tern)
	VARIANTS="baseline on off"
fi

run_one() { # variant round
	local v=$1 round=$2 bin=$WORK/bin/tern text=true
	[ "$v" = baseline ] && bin=$WORK/bin/tern-baseline
	[ "$v" = off ] && text=false
	rm -rf "$WORK/data"
	mkdir -p "$WORK/data"
	{
		echo "data_dir = \"$WORK/data/d\""
		echo "[listen]"
		echo "imap = \"\""
		echo "imaps = \"\""
		echo "lmtp = \"127.0.0.1:$PORT\""
		echo "[log]"
		echo "level = \"warn\""
		if [ "$v" != baseline ]; then
			echo "[index]"
			echo "text = $text"
		fi
	} >"$WORK/data/tern.toml"
	for i in $(seq 1 "$USERS"); do
		printf 'pw\n' | "$bin" user add "user$i" --config "$WORK/data/tern.toml" >/dev/null
	done
	"$bin" serve --config "$WORK/data/tern.toml" 2>>"$WORK/data/tern.log" &
	PID=$!
	for _ in $(seq 100); do port_free "$PORT" || break; sleep 0.1; done
	local f="$OUT/del-$v-r$round.json"
	"$WORK/bin/ternbench" lmtp --port "$PORT" --label "$v" --server-pid "$PID" --concurrency "$CLIENTS" \
		--size "$SIZE" --new-words "$NEWWORDS" --users "$USERS" --duration "$DURATION" --json "$f" >"${f%.json}.txt" 2>&1 || log "$v failed"
	stop_pid "$PID"; PID=""
	# The baseline has no queue when it predates the index ("-").
	local queued
	queued=$(for db in "$WORK"/data/d/users/*/mail.db; do python3 -c "
import sqlite3, sys
try:
    print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM fts_pending WHERE state = 0').fetchone()[0])
except sqlite3.Error:
    print('-')" "$db"; done | awk '$1 == "-" {none = 1} {s += $1} END {print none ? "-" : s}')
	echo "$queued" >"$OUT/del-$v-r$round.queued"
	printf 'round %s %-8s %s (index queue at stop: %s)\n' "$round" "$v" "$(sed -n 1p "${f%.json}.txt")" "$queued"
}

read -r -a VLIST <<<"$VARIANTS"
for round in $(seq 1 "$ROUNDS"); do
	n=${#VLIST[@]}
	for k in $(seq 0 $((n - 1))); do # rotate the order per round
		run_one "${VLIST[$(( (k + round - 1) % n ))]}" "$round"
	done
done

python3 - "$OUT" "$CLIENTS" "$SIZE" "$NEWWORDS" <<'PY'
import glob, json, os, statistics, sys
out, clients, size, newwords = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
res = {}
for f in glob.glob(os.path.join(out, "del-*-r*.json")):
    v = os.path.basename(f).split("-")[1]
    r = json.load(open(f))
    if r.get("error"):
        continue
    res.setdefault(v, []).append(r)
print()
print("## LMTP delivery with the full-text index (%s clients, %s-byte messages, %s new words each; medians)" % (clients, size, newwords))
print()
print("| variant | msgs/s | vs baseline | p50 / p99 ms | server CPU ms/msg | runs |")
print("|---|---|---|---|---|---|")
base = statistics.median([r["value"] for r in res.get("baseline", [])]) if res.get("baseline") else 0
for v in ("baseline", "off", "on"):
    rs = res.get(v, [])
    if not rs:
        continue
    val = statistics.median([r["value"] for r in rs])
    lat = "%.2f / %.2f" % (statistics.median([r["extra"]["deliver_p50_ms"] for r in rs]), statistics.median([r["extra"]["deliver_p99_ms"] for r in rs]))
    cpu = statistics.median([1000 * r["server"]["cpu_seconds"] / max(1, sum(o["count"] for o in r["ops"])) for r in rs]) if all(r.get("server") for r in rs) else 0
    ratio = "%.2f" % (val / base) if base else "–"
    print("| %s | %.0f | %s | %s | %.2f | %d |" % (v, val, ratio, lat, cpu, len(rs)))
PY
log "results in $OUT"
