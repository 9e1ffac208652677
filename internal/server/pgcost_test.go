package server_test

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

// pgCounter counts what a postgres Store sends: round trips (a statement
// outside a batch, a batch, a COPY, a prepare), statements, and rows
// returned or changed (the command tags' counts).
type pgCounter struct {
	roundTrips, statements, rows atomic.Int64
	// separateSignals counts a change signal sent on its own (a
	// statement outside a batch naming pg_notify, and its prepare) in
	// signals instead: under store.fsync = "optimized" the node sends
	// the signals of relaxed writes after their commits, batched, so
	// they land in whichever command's window they happen to.
	separateSignals bool
	signals         atomic.Int64
}

// isSignal reports whether sql is a change signal sent on its own.
func (p *pgCounter) isSignal(sql string) bool {
	return p.separateSignals && strings.Contains(sql, "pg_notify")
}

var (
	_ pgx.QueryTracer    = (*pgCounter)(nil)
	_ pgx.BatchTracer    = (*pgCounter)(nil)
	_ pgx.CopyFromTracer = (*pgCounter)(nil)
	_ pgx.PrepareTracer  = (*pgCounter)(nil)
)

func (p *pgCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if p.isSignal(d.SQL) {
		p.signals.Add(1)
		return context.WithValue(ctx, signalQuery{}, true)
	}
	p.roundTrips.Add(1)
	p.statements.Add(1)
	return ctx
}

// signalQuery marks the context of a change signal sent on its own.
type signalQuery struct{}

func (p *pgCounter) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	if ctx.Value(signalQuery{}) == nil {
		p.rows.Add(d.CommandTag.RowsAffected())
	}
}

func (p *pgCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	p.roundTrips.Add(1)
	return ctx
}

func (p *pgCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	p.statements.Add(1)
	p.rows.Add(d.CommandTag.RowsAffected())
}

func (p *pgCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (p *pgCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	p.roundTrips.Add(1)
	p.statements.Add(1)
	return ctx
}

func (p *pgCounter) TraceCopyFromEnd(_ context.Context, _ *pgx.Conn, d pgx.TraceCopyFromEndData) {
	p.rows.Add(d.CommandTag.RowsAffected())
}

func (p *pgCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, d pgx.TracePrepareStartData) context.Context {
	if p.isSignal(d.SQL) {
		p.signals.Add(1)
		return ctx
	}
	p.roundTrips.Add(1)
	return ctx
}

func (p *pgCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// costCase is one IMAP command whose database cost is measured: setup
// (not counted) prepares iteration i, run sends the command. maxRT and
// maxStmt bound the round trips and statements per command (a
// regression check). A relaxed write (a flag change or expunge, which
// under store.fsync = "optimized" commits relaxed and leaves its change
// signal to the node's batched sends) has relaxed set: there it sends
// one statement fewer, and up to one signal per command.
type costCase struct {
	name           string
	n              int
	setup          func(i int)
	run            func(i int)
	maxRT, maxStmt float64
	relaxed        bool
}

var appendUIDRe = regexp.MustCompile(`APPENDUID \d+ (\d+)`)

// TestPostgresCommandCost measures, per IMAP command on the postgres
// store (with the mailbox index in front, as tern serve runs it), the
// database round trips, statements and rows per command and
// PostgreSQL's CPU per 1,000 commands, logs a table (docs/SCALING.md
// quotes it), and fails when a command needs more round trips or
// statements than its bound: under store.fsync = "always" (the
// default) and "optimized" (relaxed flag changes and expunges, as the
// benchmarks run). Run it alone for the CPU figures:
//
//	go test -count=1 -v -run TestPostgresCommandCost ./internal/server/
func TestPostgresCommandCost(t *testing.T) {
	t.Run("fsync=always", func(t *testing.T) { measureCommandCost(t, false) })
	t.Run("fsync=optimized", func(t *testing.T) { measureCommandCost(t, true) })
}

// measureCommandCost is TestPostgresCommandCost with relaxed commits or
// without.
func measureCommandCost(t *testing.T, relaxed bool) {
	url := pgtest.NewDatabase(t)
	ctr := &pgCounter{separateSignals: relaxed}
	ts := newTestServer(t, serverOpts{insecureAuth: true, openStore: func(t *testing.T, n store.Notifier) store.Store {
		st, err := postgres.Open(context.Background(), url, postgres.Options{Notifier: n, Tracer: ctr, RelaxedCommits: relaxed})
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		return st
	}})
	ts.addUser("alice", "pw")
	const size = 500
	ctx := context.Background()
	acct, err := ts.store.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	msg := func(i int) string {
		return fmt.Sprintf("From: s%d@example.org\r\nTo: alice@example.org\r\nSubject: message %d about topic%d\r\n"+
			"Message-ID: <c%d@example.org>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\r\n%s\r\n", i%17, i, i%10, i, strings.Repeat("text of the body ", 60))
	}
	var batch []store.NewMessage
	for i := range size {
		flags := []string{}
		if i%3 == 0 {
			flags = []string{`\Seen`}
		}
		batch = append(batch, store.NewMessage{Body: []byte(msg(i)), Flags: flags})
	}
	if _, err := acct.Append(ctx, "INBOX", batch); err != nil {
		t.Fatal(err)
	}
	acct.Close()

	c := ts.dial()
	c.ok("LOGIN alice pw")
	c.ok("SELECT INBOX")
	junk := ts.dial() // a second session, on Junk, for MOVE and EXPUNGE
	junk.ok("LOGIN alice pw")
	junk.ok("SELECT Junk")
	var junkUID string
	appendJunk := func(flags string) {
		m := appendUIDRe.FindStringSubmatch(c.appendMsg("Junk", flags, msg(9999)))
		if m == nil {
			t.Fatal("no APPENDUID")
		}
		junkUID = m[1]
		junk.ok("NOOP")
	}
	cases := []costCase{
		{name: "NOOP", n: 300, run: func(int) { c.ok("NOOP") }, maxRT: 0, maxStmt: 0},
		{name: "SELECT INBOX", n: 200, run: func(int) { c.ok("SELECT INBOX") }, maxRT: 2, maxStmt: 2},
		{name: "STATUS (5 items)", n: 300, run: func(int) { c.ok("STATUS Archive (MESSAGES UIDNEXT UNSEEN HIGHESTMODSEQ SIZE)") }, maxRT: 1, maxStmt: 1},
		// Who shares mailboxes with the user is kept by the node (the
		// postgres store's sharers cache, since session 35).
		{name: `LIST "" "*"`, n: 300, run: func(int) { c.ok(`LIST "" "*"`) }, maxRT: 1, maxStmt: 1},
		{name: "UID FETCH 1:* (FLAGS), 500 msgs", n: 200, run: func(int) { c.ok("UID FETCH 1:* (FLAGS)") }, maxRT: 0, maxStmt: 0},
		{name: "UID FETCH n (ENVELOPE BODYSTRUCTURE)", n: 300, run: func(i int) { c.ok(fmt.Sprintf("UID FETCH %d (ENVELOPE BODYSTRUCTURE)", 1+i%size)) }, maxRT: 1, maxStmt: 1},
		{name: "UID FETCH n BODY.PEEK[]", n: 300, run: func(i int) { c.ok(fmt.Sprintf("UID FETCH %d BODY.PEEK[]", 1+i%size)) }, maxRT: 1, maxStmt: 1},
		// New mail read again (another device): the mailbox index's body
		// cache answers after the first read of each.
		{name: "UID FETCH n BODY.PEEK[], the 10 newest, again", n: 300, run: func(i int) { c.ok(fmt.Sprintf("UID FETCH %d BODY.PEEK[]", size-i%10)) }, maxRT: 0, maxStmt: 0},
		{name: "UID STORE n +/-FLAGS", n: 300, run: func(i int) {
			op := "+"
			if i%2 == 1 {
				op = "-"
			}
			c.ok(fmt.Sprintf(`UID STORE %d %sFLAGS (\Flagged)`, 1+(i/2)%size, op))
		}, maxRT: 2, maxStmt: 7, relaxed: true},
		// The message's insert runs its generic plan, planned once
		// (lockUserGenericSQL sets plan_cache_mode with the lock: no
		// statement of its own since session 33, two before).
		{name: "APPEND (1 KiB)", n: 200, run: func(i int) { c.appendMsg("Archive", "", msg(1000+i)) }, maxRT: 2, maxStmt: 8},
		{name: "UID SEARCH UNSEEN", n: 300, run: func(int) { c.ok("UID SEARCH UNSEEN") }, maxRT: 0, maxStmt: 0},
		// The mailbox index answers from its field lines after the first.
		{name: "UID SEARCH SUBJECT (field lines)", n: 50, run: func(int) { c.ok("UID SEARCH SUBJECT topic3") }, maxRT: 0, maxStmt: 0},
		{name: "UID COPY n Trash", n: 200, run: func(i int) { c.ok(fmt.Sprintf("UID COPY %d Trash", 1+i%size)) }, maxRT: 5, maxStmt: 11},
		{name: "UID MOVE n Trash", n: 100, setup: func(int) { appendJunk("") }, run: func(int) { junk.ok("UID MOVE " + junkUID + " Trash") }, maxRT: 4, maxStmt: 11},
		// The removal (one statement) goes with COMMIT since session 35.
		{name: "UID EXPUNGE n", n: 100, setup: func(int) { appendJunk(`\Deleted`) }, run: func(int) { junk.ok("UID EXPUNGE " + junkUID) }, maxRT: 2, maxStmt: 8, relaxed: true},
		{name: "LOGIN + LOGOUT", n: 100, run: func(int) {
			l := ts.dial()
			l.ok("LOGIN alice pw")
			l.ok("LOGOUT")
			l.conn.Close()
		}, maxRT: 2, maxStmt: 2},
		// Into the mailbox the session has selected, then NOOP: the
		// commit hands the mailbox index its own delta (no catch-up
		// query), and the Append claims \Recent for the new message in
		// its own transaction, in the update of the mailbox row it makes
		// anyway (a claim of its own was one round trip of three
		// statements).
		{name: "APPEND (1 KiB) to the selected INBOX", n: 100, run: func(i int) { c.appendMsg("INBOX", "", msg(5000+i)); c.ok("NOOP") }, maxRT: 2, maxStmt: 8},
		// The same with a keyword the mailbox's list holds (since the
		// warm-up): the delta still serves the index.
		{name: "APPEND (1 KiB) with a keyword to the selected INBOX", n: 100, run: func(i int) {
			c.appendMsg("INBOX", "$Work", msg(6000+i))
			c.ok("NOOP")
		}, maxRT: 2, maxStmt: 8},
	}
	// Warm up: statements prepared, index loaded.
	for _, cc := range cases {
		for i := range 3 {
			if cc.setup != nil {
				cc.setup(i)
			}
			cc.run(i)
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| command | round trips | statements | rows | PostgreSQL CPU ms / 1,000 | signals sent apart |\n|---|---|---|---|---|---|\n")
	for _, cc := range cases {
		var rt, st, rows, sig int64
		var cpu time.Duration
		for i := range cc.n {
			if cc.setup != nil {
				cc.setup(i)
			}
			cpu0, err := pgtest.ServerCPU()
			if err != nil {
				t.Fatal(err)
			}
			rt0, st0, rows0, sig0 := ctr.roundTrips.Load(), ctr.statements.Load(), ctr.rows.Load(), ctr.signals.Load()
			cc.run(i)
			rt += ctr.roundTrips.Load() - rt0
			st += ctr.statements.Load() - st0
			rows += ctr.rows.Load() - rows0
			sig += ctr.signals.Load() - sig0
			cpu1, err := pgtest.ServerCPU()
			if err != nil {
				t.Fatal(err)
			}
			cpu += cpu1 - cpu0
		}
		n := float64(cc.n)
		perRT, perSig := float64(rt)/n, float64(sig)/n
		fmt.Fprintf(&table, "| %s | %.2f | %.2f | %.1f | %.0f | %.2f |\n", cc.name, perRT, float64(st)/n, float64(rows)/n,
			float64(cpu.Milliseconds())*1000/n, perSig)
		maxStmt, maxSig := cc.maxStmt, 0.0
		if relaxed && cc.relaxed {
			maxStmt, maxSig = maxStmt-1, 1
		}
		// A few extra round trips per hundred commands (a retried
		// transaction, a background catch-up, the batched signal of the
		// case before) are noise, not a regression.
		if perRT > cc.maxRT+0.25 || math.IsNaN(perRT) {
			t.Errorf("%s: %.2f database round trips per command, bound %.0f", cc.name, perRT, cc.maxRT)
		}
		if perStmt := float64(st) / n; perStmt > maxStmt+0.25 || math.IsNaN(perStmt) {
			t.Errorf("%s: %.2f statements per command, bound %.0f", cc.name, perStmt, maxStmt)
		}
		if perSig > maxSig+0.25 {
			t.Errorf("%s: %.2f change signals sent apart per command, bound %.0f", cc.name, perSig, maxSig)
		}
	}
	mode := "always"
	if relaxed {
		mode = "optimized"
	}
	t.Logf("database cost per IMAP command (postgres store, store.fsync %q, mailbox index on, %d messages in INBOX):\n%s", mode, size, table.String())
}
