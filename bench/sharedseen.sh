#!/usr/bin/env bash
# bench/sharedseen.sh: issue 14 — what a user pays on another user's
# mailbox (Other Users/alice/Projects, rights lrswite) against the same
# commands on their own mailbox of the same size: the rights read before
# each command (recheckRights) and the per-user \Seen overlay
# (internal/store/privseen). Both mailboxes hold N small messages, all
# \Seen by the measuring user (the worst case for the overlay: one state
# row per message).
#
# Usage: bench/sharedseen.sh [--messages N]   (default 10000)
#
# A private tern serve (SQLite, temp dir, 127.0.0.1, a free port) is
# started and stopped by PID; the client is a small Python script over
# plain TCP that times each command from send to tagged OK (mean of many).
set -euo pipefail
N=10000
while [ $# -gt 0 ]; do
	case "$1" in
	--messages) N=$2; shift 2 ;;
	-h|--help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "sharedseen.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/ternshared.XXXXXX)
PID=""
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
(cd "$REPO" && go build -o "$WORK/tern" ./cmd/tern)
for u in alice bob; do printf 'pw\n' | "$WORK/tern" user add "$u" --data "$WORK/data" >/dev/null 2>&1; done
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$WORK/tern" serve --data "$WORK/data" --insecure-auth --listen-imap "127.0.0.1:$PORT" --listen-imaps "" \
	--listen-lmtp "" --listen-managesieve "" --listen-admin "" >"$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
python3 - "$PORT" "$N" <<'PY'
import socket, sys, time
port, N = int(sys.argv[1]), int(sys.argv[2])

def conn(user):
    s = socket.create_connection(("127.0.0.1", port))
    c = {"s": s, "f": s.makefile("rb"), "n": 0}
    c["f"].readline()
    cmd(c, "LOGIN %s pw" % user)
    return c

def cmd(c, line):
    c["n"] += 1
    tag = b"t%d" % c["n"]
    c["s"].sendall(tag + b" " + line.encode() + b"\r\n")
    while True:
        l = c["f"].readline()
        if not l:
            sys.exit("connection closed")
        if l.startswith(tag + b" "):
            if not l[len(tag) + 1:].startswith(b"OK"):
                sys.exit("%s: %r" % (line, l))
            return

def fill(c, box, n):  # MULTIAPPEND, 100 messages a command
    for b in range(0, n, 100):
        c["n"] += 1
        tag = b"t%d" % c["n"]
        data = tag + b" APPEND " + box.encode()
        for i in range(b, min(n, b + 100)):
            m = b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i)
            data += b" {%d+}\r\n" % len(m) + m
        c["s"].sendall(data + b"\r\n")
        while not (l := c["f"].readline()).startswith(tag + b" "):
            pass
        assert b" OK" in l, l

alice, bob = conn("alice"), conn("bob")
cmd(alice, "CREATE Projects"); fill(alice, "Projects", N)
cmd(alice, "SETACL Projects bob lrswite")
cmd(bob, "CREATE Own"); fill(bob, "Own", N)
SHARED = '"Other Users/alice/Projects"'
for box in ("Own", SHARED):
    cmd(bob, "SELECT " + box); cmd(bob, "STORE 1:* +FLAGS.SILENT (\\Seen)"); cmd(bob, "UNSELECT")

def mean_us(selected, line, n):
    if selected:
        cmd(bob, "SELECT " + selected)
    t = time.perf_counter()
    for _ in range(n):
        cmd(bob, line)
    us = (time.perf_counter() - t) / n * 1e6
    if selected:
        cmd(bob, "UNSELECT")
    return us

print("N=%d messages, all \\Seen by bob; mean per command" % N)
for name, sel, line, n in [("NOOP (selected)", True, "NOOP", 2000), ("FETCH 1 FLAGS", True, "FETCH 1 FLAGS", 2000),
                           ("FETCH 1:* FLAGS", True, "FETCH 1:* FLAGS", 20), ("SEARCH UNSEEN", True, "SEARCH UNSEEN", 50),
                           ("STORE 1 +FLAGS \\Seen", True, "STORE 1 +FLAGS.SILENT (\\Seen)", 500),
                           ("STATUS (UNSEEN)", False, "STATUS %s (MESSAGES UNSEEN)", 200), ("SELECT", False, "SELECT %s", 100)]:
    r = [mean_us(box if sel else None, line % box if "%s" in line else line, n) for box in ("Own", SHARED)]
    print("%-22s own mailbox %10.1f us   shared (Other Users) %10.1f us" % (name, r[0], r[1]))
PY
