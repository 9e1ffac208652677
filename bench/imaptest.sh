#!/usr/bin/env bash
# bench/imaptest.sh: issue 9 — Dovecot's imaptest stress against tern and a
# private Dovecot on this machine, same users, same mbox, alternating.
#
# Usage: bench/imaptest.sh [options]
#   --imaptest PATH   imaptest binary (default: imaptest in PATH; README, "Building imaptest")
#   --secs N          length of each run (default 30)
#   --clients N       concurrent imaptest clients (default 10)
#   --users N         users testuser1..testuserN on both servers (default 100)
#   --rounds N        runs per server and profile (default 1)
#   --warmup N        before the rounds, an unmeasured run of N seconds of each
#                     profile on each server (default 5; 0: none): a server's first run also
#                     creates its mailboxes and index files (Dovecot's first
#                     round ran at two thirds of its second's speed)
#   --profiles LIST   comma-separated: default, logout0 (default: both)
#   --dovecot-pass S  argon2id (default: tern's own hash, as bench/compare.sh)
#                     or plain ({PLAIN}: no hashing on Dovecot's side). tern
#                     remembers successful checks (HMAC of hash and password,
#                     15 min), so it runs argon2id about once per user; Dovecot
#                     2.3 verifies the hash on every login even with its auth
#                     cache (in the single auth process), which dominates the
#                     default profile (it logs in and out all the time).
#   --out DIR         keep results here (default: a new temp dir)
#   --dovecot-fsync M Dovecot's mail_fsync: optimized (its default: appended
#                     mail is fsynced, flag changes and expunges are not) or
#                     always (every change durable before its reply, as tern)
#   --tern-fsync M    tern's store.fsync: always (default: every change durable
#                     before its reply) or optimized (as Dovecot's optimized)
#   --tern-no-text-index  run tern with index.text = false (no full-text
#                     indexing of the appended mail, as Dovecot without FTS)
#   --tern-cpuprofile F  write a CPU profile of tern's whole life to F
#   --ternpg-cpuprofile F  the same for the tern on PostgreSQL (--postgres)
#   --pg-params S     extra parameters for tern's PostgreSQL URL, e.g.
#                     pool_max_conns=8 (pgxpool's connection string keys)
#   --pg-stat-statements  load pg_stat_statements in the private cluster
#                     (planning tracked too) and write its top statements
#                     by calls to OUT/pg-statements.txt, by execution time
#                     (with buffers per call) to OUT/pg-bytime.txt and by
#                     planning time to OUT/pg-planning.txt
#   --pg-unix-socket  tern reaches its PostgreSQL through the cluster's Unix
#                     socket instead of TCP on 127.0.0.1 (a database on the
#                     node's own machine, as a one-node installation has it)
#   --pg-sql FILE     run the SQL in FILE against tern's database once its
#                     users exist, before tern on PostgreSQL serves: a
#                     what-if measurement of a schema change
#                     (bench/whatif/*.sql), never a figure quoted as tern's
#   --only-postgres   with --postgres, run imaptest against tern on
#                     PostgreSQL only (no tern on SQLite, no Dovecot)
#   --pin             run the servers (and PostgreSQL) on the first half of the
#                     CPUs and imaptest on the other half (taskset), so that
#                     each server has cores of its own instead of sharing
#                     them with the load generator
#   --postgres        also run tern on the PostgreSQL store (label ternpg): a
#                     private cluster (Debian's postgresql, initdb in the temp
#                     dir as nobody, fsync on, loopback, free port) and a
#                     second tern on it; its CPU counts tern's and the
#                     PostgreSQL server's processes together (PostgreSQL's
#                     alone: db_cpu_ms_per_cmd, "of it PostgreSQL")
#
# Besides each server's CPU per command, every run reports imaptest's own
# CPU (imaptest_cpu_s: one process, one event loop) and how much of the
# machine stayed idle (machine_idle): a server that leaves CPU idle is
# bound by waits (fsync, locks, the client), not by its CPU per command.
#
# Each run is
#   imaptest host=127.0.0.1 port=P user=testuser%d pass=PW users=N clients=C secs=S mbox=FILE
# ("default": imaptest's default state probabilities, which log out and in
# again; "logout0": the same plus logout=0, long sessions that only FETCH,
# STORE, SEARCH, COPY, EXPUNGE, APPEND). The mbox imaptest appends from is
# generated (`ternbench bigbox gen --format mbox`, 1,000 realistic messages).
# For every run the script records imaptest's totals (commands per second =
# sum of the Totals line / secs), the number of "Error" lines imaptest
# printed, and the server's CPU seconds (utime+stime+cutime+cstime of the
# server process tree from /proc, before and after) per command.
#
# The servers are set up as in bench/compare.sh: both plaintext, Dovecot
# with tern's argon2id hash and an auth cache, tern with the login throttle
# raised (concurrent successful logins of one user count against it), both
# with fsync defaults. Needs root (Dovecot's mail processes run as nobody).
# Everything lives in a temp dir; both servers listen on 127.0.0.1 only and
# are stopped by PID on exit.
set -euo pipefail

IMAPTEST="" SECS=30 CLIENTS=10 USERS=100 ROUNDS=1 WARMUP=5 PROFILES="default,logout0" OUT="" DOVE_PASS=argon2id DOVECOT_FSYNC=optimized TERN_FSYNC=always TERN_TEXT=true TERN_PROF=() TPG_PROF=() PG_STAT=0 PG_PARAMS="" PG_SQL="" PG_UNIX=0 PG=0 PG_ONLY=0 PIN=0
while [ $# -gt 0 ]; do
	case "$1" in
	--imaptest) IMAPTEST=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	--clients) CLIENTS=$2; shift 2 ;;
	--users) USERS=$2; shift 2 ;;
	--rounds) ROUNDS=$2; shift 2 ;;
	--warmup) WARMUP=$2; shift 2 ;;
	--profiles) PROFILES=$2; shift 2 ;;
	--dovecot-pass) DOVE_PASS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--dovecot-fsync) DOVECOT_FSYNC=$2; shift 2 ;;
	--tern-fsync) TERN_FSYNC=$2; shift 2 ;;
	--tern-no-text-index) TERN_TEXT=false; shift ;;
	--tern-cpuprofile) TERN_PROF=(--cpuprofile "$2"); shift 2 ;;
	--ternpg-cpuprofile) TPG_PROF=(--cpuprofile "$2"); shift 2 ;;
	--pg-stat-statements) PG_STAT=1; shift ;;
	--pg-params) PG_PARAMS=$2; shift 2 ;;
	--pg-unix-socket) PG_UNIX=1; shift ;;
	--pg-sql) PG_SQL=$2; shift 2 ;;
	--postgres) PG=1; shift ;;
	--only-postgres) PG=1; PG_ONLY=1; shift ;;
	--pin) PIN=1; shift ;;
	-h|--help) sed -n '2,81p' "$0"; exit 0 ;;
	*) echo "imaptest.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
if [ -z "$IMAPTEST" ]; then
	IMAPTEST=$(command -v imaptest || true)
fi
[ -n "$IMAPTEST" ] && [ -x "$IMAPTEST" ] || { echo "imaptest.sh: no imaptest binary in PATH (--imaptest PATH; README, \"Building imaptest\")" >&2; exit 1; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ternimaptest.XXXXXX")
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results}
mkdir -p "$OUT"
PASS=bench-pass-$RANDOM$RANDOM
TERN_PID="" DOVE_PID="" TPG_PID="" PG_PID="" PGBIN="" PGDATA=""
# --pin: servers on the first half of the allowed CPUs, imaptest on the rest.
pin_cpus imaptest.sh

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
	pg_stop
	for p in $TERN_PID $DOVE_PID $TPG_PID; do
		if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
		fi
	done
	for p in $TERN_PID $DOVE_PID $TPG_PID; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" != 1 ]; then
		case "$OUT" in
		"$WORK"/*) rm -rf "$WORK/tern" "$WORK/dovecot" "$WORK/ternpg" "$WORK/pg" ;;
		*) rm -rf "$WORK" ;; # the results are elsewhere: nothing here to keep
		esac
	fi
}
trap cleanup EXIT INT TERM

TERN_PORT=$(free_port 21443)
DOVE_PORT=$(free_port $((TERN_PORT + 1)))
TPG_PORT=$(free_port $((DOVE_PORT + 1)))
PG_PORT=$(free_port $((TPG_PORT + 1)))

if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/imap ]; then
	log "installing dovecot-imapd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-imapd >&2
fi

log "building tern and ternbench"
build_bins
HASH=$(printf '%s\n' "$PASS" | (cd "$REPO" && go run ./bench/hashpw))
MBOX=$WORK/imaptest.mbox
"$WORK/bin/ternbench" bigbox gen --format mbox --messages 1000 --seed 9 --out "$MBOX" >"$OUT/mbox.txt"

# ---- tern ----
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
# imaptest logs the same users in on several connections at once.
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
[index]
text = $TERN_TEXT
CONF
log "creating $USERS users in tern"
for i in $(seq 1 "$USERS"); do
	printf '%s\n' "$PASS" | "$WORK/bin/tern" user add "testuser$i" --config "$WORK/tern/tern.toml" >/dev/null
done
"${SERVER_CPUS[@]}" "$WORK/bin/tern" serve --config "$WORK/tern/tern.toml" "${TERN_PROF[@]}" 2>>"$WORK/tern/tern.log" &
TERN_PID=$!

# ---- tern on PostgreSQL (--postgres) ----
if [ "$PG" = 1 ]; then
	mkdir -p "$WORK/ternpg"
	PG_OPTS="-c max_connections=200 -c shared_buffers=256MB"
	[ "$PG_STAT" = 1 ] && PG_OPTS="$PG_OPTS -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on"
	pg_start "$WORK" "$PG_PORT" "$PG_OPTS" || exit 1
	PG_PID=$(head -1 "$PGDATA/postmaster.pid")
	pg_createdb tern >/dev/null
	if [ "$PG_STAT" = 1 ]; then
		runuser -u nobody -- "$PGBIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U tern -d tern -c 'CREATE EXTENSION pg_stat_statements'
	fi
	sed -e "s#^data_dir = .*#data_dir = \"$WORK/ternpg/data\"#" -e "s#^imap = .*#imap = \"127.0.0.1:$TPG_PORT\"#" \
		"$WORK/tern/tern.toml" >"$WORK/ternpg/tern.toml"
	# tern.toml has a [store] section (fsync): the URL goes into it.
	[ "$PG_UNIX" = 1 ] && PG_PARAMS="host=$WORK/pg${PG_PARAMS:+&$PG_PARAMS}"
	sed -i "/^\[store\]/a url = \"postgres://tern@127.0.0.1:$PG_PORT/tern?sslmode=disable${PG_PARAMS:+&$PG_PARAMS}\"" "$WORK/ternpg/tern.toml"
	log "creating $USERS users in tern on PostgreSQL"
	for i in $(seq 1 "$USERS"); do
		printf '%s\n' "$PASS" | "$WORK/bin/tern" user add "testuser$i" --config "$WORK/ternpg/tern.toml" >/dev/null
	done
	if [ -n "$PG_SQL" ]; then
		log "what-if: running $PG_SQL in tern's database"
		runuser -u nobody -- "$PGBIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U tern -d tern <"$PG_SQL" || exit 1
	fi
	"${SERVER_CPUS[@]}" "$WORK/bin/tern" serve --config "$WORK/ternpg/tern.toml" "${TPG_PROF[@]}" 2>>"$WORK/ternpg/tern.log" &
	TPG_PID=$!
fi

# ---- Dovecot (as in bench/compare.sh) ----
DD=$WORK/dovecot
mkdir -p "$DD/run" "$DD/state" "$DD/mail" "$DD/home"
chown nobody:nogroup "$DD/mail" "$DD/home"
: >"$DD/passwd"
case "$DOVE_PASS" in
argon2id) DOVE_HASH="{ARGON2ID}$HASH" ;;
plain) DOVE_HASH="{PLAIN}$PASS" ;;
*) log "unknown --dovecot-pass $DOVE_PASS"; exit 2 ;;
esac
for i in $(seq 1 "$USERS"); do
	echo "testuser$i:$DOVE_HASH::::::" >>"$DD/passwd"
done
cat >"$DD/dovecot.conf" <<CONF
# Private Dovecot for bench/imaptest.sh: defaults except what a benchmark needs.
base_dir = $DD/run
state_dir = $DD/state
instance_name = ternimaptest-dovecot
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
mail_fsync = $DOVECOT_FSYNC
mail_uid = nobody
mail_gid = nogroup
auth_cache_size = 10M
auth_cache_ttl = 1 hour
default_client_limit = 40000
default_process_limit = 30000
protocol imap {
  mail_max_userip_connections = 30000
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
    port = 0
  }
}
CONF
"${SERVER_CPUS[@]}" /usr/sbin/dovecot -F -c "$DD/dovecot.conf" 2>>"$DD/dovecot.stderr" &
DOVE_PID=$!

PORTS="$TERN_PORT $DOVE_PORT"
[ "$PG" = 1 ] && PORTS="$PORTS $TPG_PORT"
for port in $PORTS; do
	for _ in $(seq 100); do
		if ! port_free "$port"; then break; fi
		sleep 0.1
	done
done
kill -0 "$TERN_PID" || { log "tern did not start"; cat "$WORK/tern/tern.log" >&2; exit 1; }
kill -0 "$DOVE_PID" || { log "dovecot did not start"; cat "$DD/dovecot.stderr" "$DD/dovecot.log" >&2; exit 1; }

# tree_ticks PID: utime+stime+cutime+cstime of PID and all its descendants.
tree_ticks() {
	local total=0 p stack=("$1")
	while [ ${#stack[@]} -gt 0 ]; do
		p=${stack[-1]}
		unset 'stack[-1]'
		if [ -r "/proc/$p/stat" ]; then
			total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13+$14+$15}' || echo 0)))
		fi
		for c in $(pgrep -P "$p" 2>/dev/null || true); do stack+=("$c"); done
	done
	echo "$total"
}
CLK=$(getconf CLK_TCK)
# idle_ticks: the machine's idle and iowait time so far, in clock ticks.
idle_ticks() { awk '/^cpu / {print $5 + $6; exit}' /proc/stat; }

run_imaptest() { # server profile round
	local srv=$1 prof=$2 round=$3 port=$TERN_PORT pid=$TERN_PID
	[ "$srv" = dovecot ] && port=$DOVE_PORT pid=$DOVE_PID
	[ "$srv" = ternpg ] && port=$TPG_PORT pid=$TPG_PID
	local extra=()
	[ "$prof" = logout0 ] && extra=(logout=0)
	local f="$OUT/imaptest-$prof-$srv-r$round.txt"
	local t0 t1 d0=0 d1=0
	local i0 i1 c0
	t0=$(tree_ticks "$pid")
	[ "$srv" = ternpg ] && d0=$(tree_ticks "$PG_PID")
	i0=$(idle_ticks)
	# imaptest exits non-zero when it saw errors; the count is reported.
	# Its own CPU (it is one process with one event loop: when it nears
	# one core, it and not the server bounds the rate) comes from time(1).
	/usr/bin/time -f '%U %S' -o "$f.cpu" "${CLIENT_CPUS[@]}" "$IMAPTEST" host=127.0.0.1 port="$port" user='testuser%d' pass="$PASS" users="$USERS" \
		clients="$CLIENTS" secs="$SECS" mbox="$MBOX" "${extra[@]}" >"$f" 2>&1 </dev/null || true
	i1=$(idle_ticks)
	t1=$(tree_ticks "$pid")
	[ "$srv" = ternpg ] && d1=$(tree_ticks "$PG_PID")
	c0=$(awk 'END {print ($1 + $2) + 0}' "$f.cpu" 2>/dev/null || echo 0)
	local total errors
	# The numbers line after "Totals:" (the lines between are headers and
	# percentages).
	total=$(awk '/^Totals:/ {t = 1; next} t && /^[ 0-9]+$/ {s = 0; for (i = 1; i <= NF; i++) s += $i; print s; exit}' "$f")
	errors=$(grep -c 'Error' "$f" || true)
	awk -v srv="$srv" -v prof="$prof" -v round="$round" -v total="${total:-0}" -v secs="$SECS" \
		-v errors="$errors" -v ticks=$((t1 - t0 + d1 - d0)) -v dbticks=$((d1 - d0)) -v clk="$CLK" \
		-v client="$c0" -v idle=$((i1 - i0)) -v ncpu="$(nproc)" 'BEGIN {
		cps = total / secs; cpu = ticks / clk; db = dbticks / clk
		printf "imaptest label=%s profile=%s round=%d commands=%d cmds_per_s=%.1f errors=%d cpu_s=%.2f cpu_ms_per_cmd=%.3f db_cpu_ms_per_cmd=%.3f imaptest_cpu_s=%.2f machine_idle=%.0f%%\n",
			srv, prof, round, total, cps, errors, cpu, (total > 0 ? cpu * 1000 / total : 0), (total > 0 ? db * 1000 / total : 0),
			client, 100 * idle / clk / secs / ncpu }' | tee -a "$OUT/imaptest-lines.txt"
}

: >"$OUT/imaptest-lines.txt"
pg_sql() { runuser -u nobody -- "$PGBIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U tern -d tern "$@"; }
if [ "$WARMUP" -gt 0 ]; then
	warm="tern dovecot"
	[ "$PG" = 1 ] && warm="$warm ternpg"
	[ "$PG_ONLY" = 1 ] && warm="ternpg"
	for srv in $warm; do
		port=$TERN_PORT
		[ "$srv" = dovecot ] && port=$DOVE_PORT
		[ "$srv" = ternpg ] && port=$TPG_PORT
		for prof in ${PROFILES//,/ }; do
			extra=()
			[ "$prof" = logout0 ] && extra=(logout=0)
			log "warm-up: $prof on $srv ($WARMUP s, not measured)"
			"${CLIENT_CPUS[@]}" "$IMAPTEST" host=127.0.0.1 port="$port" user='testuser%d' pass="$PASS" users="$USERS" \
				clients="$CLIENTS" secs="$WARMUP" mbox="$MBOX" "${extra[@]}" >"$OUT/imaptest-warmup-$prof-$srv.txt" 2>&1 </dev/null || true
		done
	done
fi
[ "$PG_STAT" = 1 ] && pg_sql -c 'SELECT pg_stat_statements_reset()' >/dev/null
for round in $(seq 1 "$ROUNDS"); do
	for prof in ${PROFILES//,/ }; do
		order="tern dovecot"
		[ $((round % 2)) = 0 ] && order="dovecot tern"
		[ "$PG" = 1 ] && order="$order ternpg"
		[ "$PG_ONLY" = 1 ] && order="ternpg"
		for srv in $order; do
			log "round $round: $prof on $srv ($SECS s)"
			run_imaptest "$srv" "$prof" "$round"
		done
	done
done

echo
pinned="unpinned"
[ "$PIN" = 1 ] && pinned="servers pinned to CPUs ${SERVER_CPUS[2]}, imaptest to ${CLIENT_CPUS[2]}"
echo "## imaptest: users=$USERS clients=$CLIENTS secs=$SECS, Dovecot passwords $DOVE_PASS, fsync tern=$TERN_FSYNC Dovecot=$DOVECOT_FSYNC, tern index.text=$TERN_TEXT, $pinned${PG_SQL:+, what-if on PostgreSQL: $PG_SQL} (median over $ROUNDS rounds; ratio > 1 means tern is faster)"
echo
awk '
{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  k = v["profile"] SUBSEP v["label"]
  n[k]++; cps[k, n[k]] = v["cmds_per_s"]; err[k] += v["errors"]; cpu[k, n[k]] = v["cpu_ms_per_cmd"]; db[k, n[k]] = v["db_cpu_ms_per_cmd"]
  cli[k, n[k]] = (v["commands"] > 0 ? v["imaptest_cpu_s"] * 1000 / v["commands"] : 0); idle[k, n[k]] = v["machine_idle"] + 0
  if (!(v["profile"] in seen)) { seen[v["profile"]] = 1; profs[++np] = v["profile"] } }
function med(k, arr,   m, i, j, t, a) {
  m = n[k]; for (i = 1; i <= m; i++) a[i] = arr[k, i] + 0
  for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
END {
  print "| profile | tern cmds/s | Dovecot cmds/s | tern/Dovecot | error lines tern / Dovecot | tern CPU ms/cmd | Dovecot CPU ms/cmd | imaptest CPU ms/cmd against tern / Dovecot | machine idle tern / Dovecot run |"
  print "|---|---|---|---|---|---|---|---|---|"
  for (p = 1; p <= np; p++) {
    t = profs[p] SUBSEP "tern"; d = profs[p] SUBSEP "dovecot"
    tc = med(t, cps); dc = med(d, cps)
    printf "| %s | %.0f | %.0f | **%.2f×** | %d / %d | %.3f | %.3f | %.3f / %.3f | %.0f%% / %.0f%% |\n", profs[p], tc, dc, (dc > 0 ? tc / dc : 0), err[t], err[d], med(t, cpu), med(d, cpu),
      med(t, cli), med(d, cli), med(t, idle), med(d, idle)
  }
  g = 0; for (p = 1; p <= np; p++) if ((profs[p] SUBSEP "ternpg") in n) g = 1
  if (g) {
    print ""
    print "| profile | tern on PostgreSQL cmds/s | /tern on SQLite | /Dovecot | error lines | CPU ms/cmd (tern + PostgreSQL) | of it PostgreSQL |"
    print "|---|---|---|---|---|---|---|"
    for (p = 1; p <= np; p++) {
      q = profs[p] SUBSEP "ternpg"; t = profs[p] SUBSEP "tern"; d = profs[p] SUBSEP "dovecot"
      qc = med(q, cps); tc = med(t, cps); dc = med(d, cps)
      printf "| %s | %.0f | **%.2f×** | **%.2f×** | %d | %.3f | %.3f |\n", profs[p], qc, (tc > 0 ? qc / tc : 0), (dc > 0 ? qc / dc : 0), err[q], med(q, cpu), med(q, db)
    } } }' "$OUT/imaptest-lines.txt" | tee "$OUT/imaptest-table.md"
if [ "$PG_STAT" = 1 ]; then
	pg_sql -c "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
		FROM pg_stat_statements ORDER BY calls DESC LIMIT 40" >"$OUT/pg-statements.txt"
	pg_sql -c "SELECT sum(calls) AS statements, round(sum(total_exec_time)::numeric, 1) AS exec_ms,
		sum(plans) AS plans, round(sum(total_plan_time)::numeric, 1) AS plan_ms FROM pg_stat_statements" >>"$OUT/pg-statements.txt"
	pg_sql -c "SELECT calls, round(total_exec_time::numeric, 1) AS exec_ms, round(shared_blks_hit::numeric / NULLIF(calls, 0), 1) AS blks_per_call,
		rows, left(regexp_replace(query, '\s+', ' ', 'g'), 400) AS query
		FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25" >"$OUT/pg-bytime.txt"
	pg_sql -c "SELECT calls, plans, round(total_plan_time::numeric, 1) AS plan_ms, round(total_exec_time::numeric, 1) AS exec_ms,
		left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query
		FROM pg_stat_statements ORDER BY total_plan_time DESC LIMIT 12" >"$OUT/pg-planning.txt"
fi
log "results in $OUT"
