#!/usr/bin/env bash
# bench/bigbox.sh: issue 9 — everyday commands on one large INBOX, tern
# against a private Dovecot on this machine, same messages, alternating
# servers.
#
# Usage: bench/bigbox.sh [options]
#   --messages N      INBOX size (default 100000; about 6 KB per message)
#   --rounds N        measured passes per server (default 5; medians are reported)
#   --out DIR         keep results here (default: a new temp dir)
#   --keep            keep both servers' data (in the temp dir) after the run
#   --commands C      everyday (default: the list in 3.), search (the
#                     planted-word searches of issue 11 only) or all
#   --xapian          Dovecot with the fts-xapian plugin (installs
#                     dovecot-fts-xapian); its index is built by `doveadm
#                     index` before the servers start, timed
#   --tern-no-text-index  tern with index.text = false and no `tern index`:
#                     no full-text index, as Dovecot without --xapian (the
#                     disk table then compares like with like)
#
# 1. `ternbench bigbox gen` writes N deterministic messages as a Maildir with
#    a dovecot-uidlist (UIDs 1..N, flags in the file names: ~90 % \Seen,
#    15 % \Answered, 2 % \Flagged) straight into Dovecot's INBOX directory;
#    `tern import` copies the same Maildir into tern (same UIDs, flags and
#    INTERNALDATEs).
# 2. Both servers start on free 127.0.0.1 ports (plaintext, defaults except
#    what bench/compare.sh also changes); both data directories are read
#    into the page cache (again before every pass), then one untimed
#    warm-up pass each (Dovecot builds its index and cache here; printed
#    as "cold").
# 3. `ternbench bigbox run` passes, the server order flipping every round:
#    STATUS (warm), SELECT, UID FETCH 1:* (FLAGS), 20 BODY.PEEK[], UID SEARCH
#    UNSEEN, CHANGEDSINCE after 10 flag changes, UID STORE +/-FLAGS on 1,000
#    UIDs (one command each) and on 100 UIDs (one command per UID), UID SORT
#    (REVERSE DATE), UID THREAD REFERENCES; one line per
#    command (bigbox-lines.txt), then the table of medians and ratios,
#    with each server's CPU time and what it read from the disk (page
#    cache misses, /proc/PID/io read_bytes) during the command, as means.
# 4. Disk used for the mailbox (tern: blobs/, mail.db, WAL, with a dbstat
#    breakdown per table; Dovecot: message files and index files) and the
#    servers' RSS after the run (tern: VmRSS of the process, and how much
#    of it is anonymous memory and how much mapped files: the scan
#    connections read mail.db through a memory map, whose pages count in
#    VmRSS but are page cache the kernel can reclaim).
#
# Needs root (Dovecot's mail processes run as nobody; installs
# dovecot-imapd with apt-get if missing). Everything lives in a temp dir;
# both servers listen on 127.0.0.1 only and are stopped by PID on exit.
set -euo pipefail

MESSAGES=100000 ROUNDS=5 OUT="" KEEP=${KEEP:-0} COMMANDS=everyday XAPIAN=0 TERN_TEXT=true
while [ $# -gt 0 ]; do
	case "$1" in
	--messages) MESSAGES=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--commands) COMMANDS=$2; shift 2 ;;
	--xapian) XAPIAN=1; shift ;;
	--tern-no-text-index) TERN_TEXT=false; shift ;;
	-h|--help) sed -n '2,47p' "$0"; exit 0 ;;
	*) echo "bigbox.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d /tmp/ternbigbox.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PASS=bench-pass-$RANDOM$RANDOM
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
	if [ "$KEEP" != 1 ]; then
		case "$OUT" in
		"$WORK"/*) rm -rf "$WORK/tern" "$WORK/dovecot" ;;
		*) rm -rf "$WORK" ;; # the results are elsewhere: remove it all, the binaries too
		esac
	fi
}
trap cleanup EXIT INT TERM

TERN_PORT=$(free_port 21343)
DOVE_PORT=$(free_port $((TERN_PORT + 1)))

if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
	log "installing dovecot-imapd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd >&2
fi
if [ "$XAPIAN" = 1 ] && [ ! -e /usr/lib/dovecot/modules/lib21_fts_xapian_plugin.so ]; then
	log "installing dovecot-fts-xapian"
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-fts-xapian >&2
fi

log "building tern and ternbench"
build_bins
HASH=$(printf '%s\n' "$PASS" | (cd "$REPO" && go run ./bench/hashpw))

# ---- the mail: one Maildir, Dovecot's INBOX, imported into tern ----
DD=$WORK/dovecot
mkdir -p "$DD/run" "$DD/state" "$DD/mail" "$DD/home"
log "generating $MESSAGES messages (Maildir)"
"$WORK/bin/ternbench" bigbox gen --messages "$MESSAGES" --out "$DD/mail/user1" | tee "$OUT/gen.txt"

mkdir -p "$WORK/tern"
TD=$WORK/tern/data
cat >"$WORK/tern/tern.toml" <<CONF
data_dir = "$TD"
[listen]
imap = "127.0.0.1:$TERN_PORT"
imaps = ""
lmtp = ""
[auth]
insecure_auth = true
[log]
level = "warn"
[index]
text = $TERN_TEXT
CONF
printf '%s\n' "$PASS" | "$WORK/bin/tern" user add user1 --config "$WORK/tern/tern.toml" >/dev/null
log "tern import"
t0=$(date +%s.%N)
"$WORK/bin/tern" import user1 "$DD/mail/user1" --config "$WORK/tern/tern.toml" | tail -1 | tee "$OUT/import.txt"
t1=$(date +%s.%N)
echo "tern import: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s" | tee -a "$OUT/import.txt"
# The full-text index for SEARCH (tern serve would build it in the
# background; here it is built, and timed, before the server starts).
if [ "$TERN_TEXT" = true ]; then
	log "tern index"
	t0=$(date +%s.%N)
	"$WORK/bin/tern" index user1 --config "$WORK/tern/tern.toml" 2>/dev/null | tee "$OUT/index.txt"
	t1=$(date +%s.%N)
	echo "tern index: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s" | tee -a "$OUT/index.txt"
fi
chown -R nobody:nogroup "$DD/mail" "$DD/home"

# ---- Dovecot (as in bench/compare.sh) ----
echo "user1:{ARGON2ID}$HASH::::::" >"$DD/passwd"
cat >"$DD/dovecot.conf" <<CONF
# Private Dovecot for bench/bigbox.sh: defaults except what a benchmark needs.
base_dir = $DD/run
state_dir = $DD/state
instance_name = ternbigbox-dovecot
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
# The default (256 MB) is too small for the index of a 1,000,000-message
# mailbox: the first SELECT dies with "Out of memory".
service imap {
  vsz_limit = 2G
}
CONF
if [ "$XAPIAN" = 1 ]; then
	cat >>"$DD/dovecot.conf" <<CONF
# Full-text search with fts-xapian (issue 11 compares it with tern's index).
mail_plugins = \$mail_plugins fts fts_xapian
plugin {
  fts = xapian
  fts_xapian = partial=3 full=20 verbose=0
  fts_autoindex = yes
  fts_enforced = yes
}
service indexer-worker {
  vsz_limit = 2G
}
CONF
fi
/usr/sbin/dovecot -F -c "$DD/dovecot.conf" 2>>"$DD/dovecot.stderr" &
DOVE_PID=$!

"$WORK/bin/tern" serve --config "$WORK/tern/tern.toml" 2>>"$WORK/tern/tern.log" &
TERN_PID=$!

for port in $TERN_PORT $DOVE_PORT; do
	for _ in $(seq 100); do
		if ! port_free "$port"; then break; fi
		sleep 0.1
	done
done
kill -0 "$TERN_PID" || { log "tern did not start"; cat "$WORK/tern/tern.log" >&2; exit 1; }
kill -0 "$DOVE_PID" || { log "dovecot did not start"; cat "$DD/dovecot.stderr" "$DD/dovecot.log" >&2; exit 1; }
if [ "$XAPIAN" = 1 ]; then
	log "doveadm index (fts-xapian)"
	t0=$(date +%s.%N)
	doveadm -c "$DD/dovecot.conf" index -u user1 INBOX
	t1=$(date +%s.%N)
	echo "dovecot fts-xapian index: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s" | tee "$OUT/xapian-index.txt"
fi

pass() { # server round
	local srv=$1 port=$TERN_PORT pid=$TERN_PID
	[ "$srv" = dovecot ] && port=$DOVE_PORT pid=$DOVE_PID
	"$WORK/bin/ternbench" bigbox run --port "$port" --password "$PASS" --user user1 \
		--label "$srv" --round "$2" --server-pid "$pid" --commands "$COMMANDS"
}

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
TERN_RSS0=$(rss "$TERN_PID")

# Both servers' files into the page cache: Dovecot's warm-up pass reads
# every message file to build its cache, tern's does not, so without this
# tern's 20 random body fetches would measure the disk and Dovecot's the
# cache. Again before every pass: the shared VM this was written on gives
# idle page cache back within seconds (100 of mail.db's 827 MB in 20 s at
# 100,000 messages, `fincore`), so by a later round the random fetches
# read whichever server's files had been reclaimed from the disk.
warm_cache() {
	find "$TD" "$DD" -type f -exec cat {} + >/dev/null 2>&1 || true
}
log "reading both data directories into the page cache"
warm_cache

log "warm-up pass on each server (Dovecot builds its index)"
for srv in tern dovecot; do
	pass "$srv" 0 | sed 's/^bigbox /cold /' | tee -a "$OUT/bigbox-cold.txt" || log "$srv: warm-up pass failed"
done

: >"$OUT/bigbox-lines.txt"
for round in $(seq 1 "$ROUNDS"); do
	order="tern dovecot"
	[ $((round % 2)) = 0 ] && order="dovecot tern"
	for srv in $order; do
		# Each pass ends with flag changes (renames in Dovecot's cur/). Dovecot
		# rescans a Maildir whose mtime is too recent to trust on every
		# sync; a pause lets each pass start from a settled directory.
		sleep 3
		warm_cache
		log "round $round: $srv"
		pass "$srv" "$round" | tee -a "$OUT/bigbox-lines.txt" || log "$srv: round $round failed"
	done
done

tree_rss() { # sum of VmRSS of pid and its descendants, KiB
	local total=0 p
	for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
		total=$((total + $(rss "$p" 2>/dev/null || echo 0)))
	done
	echo "$total"
}
{
	echo
	echo "## bigbox: $MESSAGES messages in INBOX, $ROUNDS rounds (medians; ratio > 1 means tern is faster)"
	echo
	"$WORK/bin/ternbench" bigbox table "$OUT/bigbox-lines.txt" || echo "(no table: see the errors above)"
	echo
	echo "tern VmRSS: $TERN_RSS0 KiB after start, $(rss "$TERN_PID") KiB after the run ($(awk '/^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} /^RssShmem:/ {s=$2} END {printf "anonymous %d KiB, mapped files %d KiB, shared memory %d KiB", a, f, s}' "/proc/$TERN_PID/status")); Dovecot master + children VmRSS: $(tree_rss "$DOVE_PID") KiB"
	echo
	UD=$(ls -d "$TD"/users/*/ | head -1)
	UD=${UD%/}
	# allocated bytes (du -s -B1: what the disk holds, 4 KiB blocks) and the
	# sum of the file sizes in PATH
	row() { # label path...
		local label=$1; shift
		printf '| %s | %s | %s | %s |\n' "$label" \
			"$(du -scB1 "$@" | tail -1 | cut -f1)" \
			"$(find "$@" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')" \
			"$(find "$@" -type f | wc -l)"
	}
	echo "### disk (bytes)"
	echo
	echo "| what | allocated (du -B1) | sum of file sizes | files |"
	echo "|---|---|---|---|"
	row "tern user dir (users/$(basename "$UD")) total" "$UD"
	row "tern blobs/ (message bodies)" "$UD/blobs"
	for f in mail.db mail.db-wal mail.db-shm; do
		if [ -e "$UD/$f" ]; then row "tern $f" "$UD/$f"; fi
	done
	row "tern whole data dir" "$TD"
	row "Dovecot Maildir total" "$DD/mail/user1"
	row "Dovecot cur/ (message files)" "$DD/mail/user1/cur"
	for f in "$DD"/mail/user1/dovecot*; do
		row "Dovecot $(basename "$f")" "$f"
	done
	for f in $(find "$DD/mail/user1" "$DD/home" -maxdepth 3 -name 'xapian-indexes' 2>/dev/null); do
		row "Dovecot fts-xapian index ($f)" "$f"
	done
	echo
	echo "Generated messages: $(cat "$OUT/gen.txt")"
	echo
	echo "### tern mail.db by table and index (sqlite dbstat, bytes)"
	echo
	python3 - "$UD/mail.db" <<'PY' || echo "(dbstat not available)"
import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
rows = db.execute("SELECT name, SUM(pgsize), SUM(payload), COUNT(*) FROM dbstat GROUP BY name ORDER BY SUM(pgsize) DESC").fetchall()
print("| table/index | bytes on pages | payload | pages |")
print("|---|---|---|---|")
for name, size, payload, pages in rows:
    print("| %s | %d | %d | %d |" % (name, size, payload, pages))
# Where the payload of the biggest tables goes: bytes per TEXT/BLOB column.
print()
print("| table.column | bytes (TEXT/BLOB columns) | per message |")
print("|---|---|---|")
n = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] or 1
for table in ("contents", "messages", "content_threading", "thread_ids"):
    try:
        cols = db.execute("PRAGMA table_info(%s)" % table).fetchall()
    except sqlite3.Error:
        continue
    for col in cols:
        name, ctype = col[1], (col[2] or "").upper()
        if "INT" in ctype:
            continue
        b = db.execute("SELECT COALESCE(SUM(LENGTH(CAST(%s AS BLOB))), 0) FROM %s" % (name, table)).fetchone()[0]
        print("| %s.%s | %d | %.0f |" % (table, name, b, b / n))
PY
} | tee "$OUT/bigbox-table.md"
log "results in $OUT"
