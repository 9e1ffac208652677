#!/usr/bin/env bash
# bench/searchab.sh: issue 11 — the planted-word SEARCHes of
# `ternbench bigbox run --commands search` against two tern builds (this
# tree and --baseline REV) serving the same data, alternating, so the
# ratio of the two is measured in one run on one machine. No Dovecot (see
# bench/bigbox.sh for that comparison).
#
# Usage: bench/searchab.sh [options]
#   --messages N     INBOX size (default 100000)
#   --baseline REV   git revision to compare with (default HEAD~1)
#   --rounds N       server starts per build (default 2; the order flips)
#   --passes N       measured passes per server start (default 3)
#   --data DIR       keep/reuse the prepared data here (default: temp dir);
#                    an existing DIR/tern/tern.toml is reused as is
#   --base-data DIR  serve the baseline from this copy of the data instead
#                    (when this tree migrates the schema to a version the
#                    baseline does not know: copy DIR first, fix data_dir
#                    in the copy's tern.toml, open one copy with each build)
#   --out DIR        results (default: a new temp dir)
#   --commands SET   search (default: the planted words) or fuzzy (the same
#                    words with typos, SEARCH=FUZZY, RETURN (COUNT))
#   --postgres       serve both builds from the postgres store instead: a
#                    private cluster (Debian's postgresql, initdb in the temp
#                    dir as nobody, loopback, free port) with one database
#                    per build, each imported by its own build and indexed
#                    by `tern index` where the build can (the baseline of
#                    the postgres text index cannot: it scans); needs root
#                    for runuser. --data is not kept across runs then.
#
# 1. `ternbench bigbox gen` writes N messages (Maildir) with planted words;
#    `tern import` and `tern index` (this tree's build) load them.
# 2. For each round and build: `tern serve` on the data (127.0.0.1, a free
#    port), one untimed pass, then --passes timed passes of `ternbench
#    bigbox run --commands search --server-pid` (wall time and the server's
#    CPU time per command, 10 ms ticks), then the server is stopped by PID.
# 3. `ternbench bigbox table --first new` prints medians of the wall times,
#    means of the CPU times and the ratios.
#
# Needs no root; everything listens on 127.0.0.1 only.
set -euo pipefail

MESSAGES=100000 BASELINE=HEAD~1 ROUNDS=2 PASSES=3 DATA="" BASEDATA="" OUT="" COMMANDS=search PG=0
while [ $# -gt 0 ]; do
	case "$1" in
	--messages) MESSAGES=$2; shift 2 ;;
	--baseline) BASELINE=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--passes) PASSES=$2; shift 2 ;;
	--data) DATA=$2; shift 2 ;;
	--base-data) BASEDATA=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--commands) COMMANDS=$2; shift 2 ;;
	--postgres) PG=1; shift ;;
	-h|--help) sed -n '2,40p' "$0"; exit 0 ;;
	*) echo "searchab.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d /tmp/ternsearchab.XXXXXX)
DATA=${DATA:-$WORK/data}
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT" "$DATA" "$WORK/bin"
PID="" PGBIN="" PGDATA=""
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
stop() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	PID=""
}
trap 'stop; pg_stop; rm -rf "$WORK/bin" "$WORK/base" "$WORK/pg"' EXIT INT TERM

PORT=$(free_port 21543)

log "building this tree and $BASELINE"
(cd "$REPO" && go build -o "$WORK/bin/tern-new" ./cmd/tern && go build -o "$WORK/bin/ternbench" ./cmd/ternbench)
mkdir -p "$WORK/base"
(cd "$REPO" && git archive "$BASELINE") | tar -x -C "$WORK/base"
(cd "$WORK/base" && go build -o "$WORK/bin/tern-base" ./cmd/tern)

# start_pg: a private PostgreSQL server with databases tern_new and
# tern_base; PG_URL_new and PG_URL_base name them.
start_pg() {
	chmod 755 "$WORK"
	pg_start "$WORK" "$(free_port 25432)" "-c shared_buffers=256MB" || exit 1
	PG_URL_new=$(pg_createdb tern_new)
	PG_URL_base=$(pg_createdb tern_base)
}

# prepare_pg LABEL: a config for build LABEL on its database, the
# generated mail imported by that build, indexed where it can be.
prepare_pg() {
	local label=$1 url conf
	url=PG_URL_$label
	conf=$DATA/tern-$label/tern.toml
	mkdir -p "$DATA/tern-$label"
	sed -e "s#^data_dir = .*#data_dir = \"$DATA/tern-$label/data\"#" "$DATA/tern/tern.toml" >"$conf"
	printf '[store]\nurl = "%s"\n' "${!url}" >>"$conf"
	printf 'benchpass\n' | "$WORK/bin/tern-$label" user add user1 --config "$conf" >/dev/null
	log "tern import ($label, PostgreSQL)"
	"$WORK/bin/tern-$label" import user1 "$WORK/maildir" --config "$conf" | tail -1 | tee "$OUT/import-$label.txt"
	log "tern index ($label)"
	"$WORK/bin/tern-$label" index user1 --config "$conf" 2>/dev/null | tail -1 | tee "$OUT/index-$label.txt" || true
}

CONF=$DATA/tern/tern.toml
if [ "$PG" = 1 ]; then
	rm -rf "$DATA/tern" "$DATA/tern-new" "$DATA/tern-base"
fi
if [ ! -e "$CONF" ]; then
	mkdir -p "$DATA/tern"
	cat >"$CONF" <<CONF
data_dir = "$DATA/tern/data"
[listen]
imap = "127.0.0.1:$PORT"
imaps = ""
lmtp = ""
admin = ""
managesieve = ""
[auth]
insecure_auth = true
[log]
level = "warn"
CONF
	log "generating $MESSAGES messages"
	"$WORK/bin/ternbench" bigbox gen --messages "$MESSAGES" --out "$WORK/maildir" | tee "$OUT/gen.txt"
	if [ "$PG" = 1 ]; then
		start_pg
		prepare_pg new
		prepare_pg base
	else
		printf 'benchpass\n' | "$WORK/bin/tern-new" user add user1 --config "$CONF" >/dev/null
		log "tern import"
		"$WORK/bin/tern-new" import user1 "$WORK/maildir" --config "$CONF" | tail -1 | tee "$OUT/import.txt"
		log "tern index"
		"$WORK/bin/tern-new" index user1 --config "$CONF" 2>/dev/null | tail -1 | tee "$OUT/index.txt"
	fi
	rm -rf "$WORK/maildir"
fi
PORT=$(sed -n 's/^imap = "127.0.0.1:\([0-9]*\)"/\1/p' "$CONF")
CONF_new=$CONF CONF_base=$CONF
if [ "$PG" = 1 ]; then
	CONF_new=$DATA/tern-new/tern.toml CONF_base=$DATA/tern-base/tern.toml
fi
if [ -n "$BASEDATA" ]; then
	CONF_base=$BASEDATA/tern/tern.toml
	[ "$(sed -n 's/^imap = "127.0.0.1:\([0-9]*\)"/\1/p' "$CONF_base")" = "$PORT" ] || { echo "searchab.sh: $CONF_base must listen on port $PORT" >&2; exit 2; }
fi

: >"$OUT/lines.txt"
for round in $(seq 1 "$ROUNDS"); do
	order="new base"
	[ $((round % 2)) = 0 ] && order="base new"
	for label in $order; do
		port_free "$PORT" || { echo "searchab.sh: port $PORT busy" >&2; exit 1; }
		conf=CONF_$label
		"$WORK/bin/tern-$label" serve --config "${!conf}" >/dev/null 2>>"$OUT/serve-$label.log" &
		PID=$!
		for _ in $(seq 100); do port_free "$PORT" || break; sleep 0.2; done
		log "round $round: $label"
		run() { "$WORK/bin/ternbench" bigbox run --port "$PORT" --password benchpass --user user1 \
			--label "$label" --round "$1" --server-pid "$PID" --commands "$COMMANDS"; }
		run 0 >/dev/null
		for _ in $(seq "$PASSES"); do run "$round" | tee -a "$OUT/lines.txt"; done
		stop
	done
done
echo
"$WORK/bin/ternbench" bigbox table --first new "$OUT/lines.txt" | tee "$OUT/table.md"
log "results in $OUT"
