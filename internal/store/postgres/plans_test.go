package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
)

// TestFewUIDsReadFewRows runs, under PostgreSQL's cached generic plan
// (what a prepared statement gets from its sixth run on, when the planner
// finds it no dearer than a custom one), each statement that reads or
// writes messages by UID, asking for up to five UIDs of a 3,000-message
// mailbox in an account whose other mailboxes are small: there the planner
// estimates "a mailbox" at a few rows, and a join of the UID ranges to
// the mailbox's messages read all 3,000 (a STORE on one message read the
// whole mailbox). Each statement must read only the rows it asked for,
// and EXPUNGE's search for the \Deleted messages (one here) only those.
// The same for the thread lookup of an APPEND: one probe of thread_ids
// per id the new message names, not the user's every id.
func TestFewUIDsReadFewRows(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := openURL(t, url, nil)
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	ctx := context.Background()
	msg := func(box string, i int) store.NewMessage {
		return store.NewMessage{Body: []byte(fmt.Sprintf("From: a@example.org\r\nSubject: %s %d\r\nMessage-ID: <%s.%d@example.org>\r\n\r\nbody %d\r\n", box, i, box, i, i))}
	}
	for b := range 120 {
		name := fmt.Sprintf("small%d", b)
		if err := a.CreateMailbox(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Append(ctx, name, []store.NewMessage{msg(name, 0), msg(name, 1), msg(name, 2)}); err != nil {
			t.Fatal(err)
		}
	}
	for first := 0; first < 3000; first += 500 {
		batch := make([]store.NewMessage, 500)
		for i := range batch {
			batch[i] = msg("INBOX", first+i)
		}
		if _, err := a.Append(ctx, "INBOX", batch); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var inbox, user, before int64
	if err := conn.QueryRow(ctx, `SELECT id, user_id, highestmodseq FROM mailboxes WHERE name = 'INBOX'`).Scan(&inbox, &user, &before); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreFlags(ctx, inbox, []uint32{1501}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
		t.Fatal(err)
	}
	// Statements whose plan must not depend on the planner's estimates:
	// a join's plan does (without statistics of a table, in a new
	// installation or a benchmark's run, these read every row the user, or
	// every user, has), so with a nested loop made the dearest choice, as
	// such estimates can make it, each must still probe once per row it
	// needs. A new message's thread, by the three ids it names (the
	// user's thread_ids holds one per message: 3,360); the index's
	// catch-up with the mailbox's newest message; its catch-up with the
	// one message changed, with a sort made the dearest choice too (as a
	// guess that many messages changed makes it), so that walking the
	// primary key in UID order and filtering by modseq looks cheaper.
	for _, q := range []string{"SET enable_nestloop = off", "SET enable_sort = off"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct {
		name, sql string
		args      []any
		max       int64
	}{
		{"thread of a new message", "WITH " + threadLookupIDs + " " + nearestThreadSQL,
			[]any{user, []string{"none@example.org", "INBOX.1500@example.org", "INBOX.7@example.org"}}, 3},
		{"index catch-up: new messages", indexNew, []any{inbox, int64(2999)}, 2},
		{"index catch-up: changed messages", indexChanged, []any{inbox, before, int64(3000)}, 2},
	} {
		// Planned for its arguments and as the cached generic plan (which
		// APPEND forces for the thread lookup: insertNew).
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			name := fmt.Sprintf("probe%d_%s", i, mode)
			if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+c.sql); err != nil {
				t.Fatalf("%s: prepare: %v", c.name, err)
			}
			if read := explainRowsRead(t, conn, messageTables, "EXECUTE "+name+"("+sqlLiterals(c.args)+")"); read > c.max {
				t.Errorf("%s (%s): read %d rows, want at most %d", c.name, mode, read, c.max)
			}
		}
	}
	if _, err := conn.Exec(ctx, "RESET enable_nestloop; RESET enable_sort; RESET plan_cache_mode"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO private_seen(mailbox_id, uid, viewer, seen, modseq) SELECT mailbox_id, uid, 'v', true, modseq FROM messages`,
		`ANALYZE`,
		`SET plan_cache_mode = force_generic_plan`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	one := uidRanges{lo: []int64{1500}, hi: []int64{1500}}
	two := uidRanges{lo: []int64{1500, 1502}, hi: []int64{1500, 1502}}
	five := uidRanges{lo: []int64{1500, 1502, 1504, 1506, 1508}, hi: []int64{1500, 1502, 1504, 1506, 1508}}
	deletedSQL, deletedArgs := msgRowsSQL(inbox, uidRanges{}, true, true)
	want := store.WantEnvelope | store.WantBodyStructure
	type statement struct {
		name, sql string
		args      []any
	}
	// The reads over UID ranges, for rs.
	reads := func(rs uidRanges) []statement {
		rowsSQL, rowsArgs := msgRowsSQL(inbox, rs, false, false)
		n := len(rs.lo)
		return []statement{
			{fmt.Sprintf("messages in %d ranges", n), rowsSQL, rowsArgs},
			{fmt.Sprintf("fetch of %d ranges", n), fetchSQL(want, n), []any{inbox, rs.lo, rs.hi, user}},
			{fmt.Sprintf("private \\Seen in %d ranges", n), seenStatesSQL(false, n), []any{inbox, "v", int64(0), rs.lo, rs.hi}},
		}
	}
	cases := append(append(reads(one), reads(two)...), reads(five)...)
	cases = append(cases,
		statement{"\\Deleted messages (EXPUNGE)", deletedSQL, deletedArgs},
		statement{"update flags", updateFlagsSQL, []any{inbox, int64(1 << 40), two.lo, []int64{8, 8}, []string{"", ""}}},
		statement{"update flags of one", updateOneFlagsSQL, []any{inbox, int64(1 << 40), int64(1500), int64(8), ""}},
		statement{"expunge of 1", expungeSQL(1), []any{inbox, one.lo, one.hi, int64(1 << 40), int64(-1), int64(-100), user, one.lo, int64(1)}},
		statement{"expunge of 2", expungeSQL(2), []any{inbox, two.lo, two.hi, int64(1 << 40), int64(-2), int64(-200), user, two.lo, int64(2)}},
	)
	for i, c := range cases {
		name := fmt.Sprintf("few%d", i)
		if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+c.sql); err != nil {
			t.Fatalf("%s: prepare: %v", c.name, err)
		}
		read := explainRowsRead(t, conn, messageTables, "EXECUTE "+name+"("+sqlLiterals(c.args)+")")
		if read > 10 {
			t.Errorf("%s: read %d rows of messages, contents, private_seen and thread_ids, asking for at most 5 of a 3,000-message mailbox", c.name, read)
		}
	}
	// A read of one range (most commands) or a few is planned once:
	// PostgreSQL takes its generic plan from the sixth run on, where the
	// unnest forms it plans again at every run.
	auto, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer auto.Close(ctx)
	for _, c := range append(reads(one), reads(two)...) {
		for range 10 {
			rows, err := auto.Query(ctx, c.sql, c.args...)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			rows.Close()
		}
		var generic, custom int64
		if err := auto.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`, c.sql).Scan(&generic, &custom); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if custom > 5 || generic == 0 {
			t.Errorf("%s: %d custom plans and %d runs of the generic plan in 10 runs", c.name, custom, generic)
		}
	}
}

// messageTables are the tables whose rows the read plans are held to.
var messageTables = []string{"messages", "contents", "private_seen", "thread_ids"}

// explainRowsRead runs stmt under EXPLAIN ANALYZE in a transaction it
// rolls back, and returns how many rows its scans of the tables produced
// or filtered out, over all their loops.
func explainRowsRead(t *testing.T, conn *pgx.Conn, tables []string, stmt string, args ...any) int64 {
	t.Helper()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var out []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+stmt, args...).Scan(&out); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("%s: plan %s: %v", stmt, out, err)
	}
	return plans[0].Plan.rowsRead(tables)
}

// planNode is the part of an EXPLAIN (FORMAT JSON) node rowsRead needs.
type planNode struct {
	NodeType       string     `json:"Node Type"`
	Relation       string     `json:"Relation Name"`
	Rows           int64      `json:"Actual Rows"`
	Loops          int64      `json:"Actual Loops"`
	RemovedFilter  int64      `json:"Rows Removed by Filter"`
	RemovedRecheck int64      `json:"Rows Removed by Index Recheck"`
	Plans          []planNode `json:"Plans"`
}

// rowsRead is how many rows the node and those under it read from the
// tables (scans, not the writes of a ModifyTable node).
func (n planNode) rowsRead(tables []string) int64 {
	var read int64
	if slices.Contains(tables, n.Relation) && n.NodeType != "ModifyTable" {
		read = (n.Rows + n.RemovedFilter + n.RemovedRecheck) * max(n.Loops, 1)
	}
	for _, c := range n.Plans {
		read += c.rowsRead(tables)
	}
	return read
}

// sqlLiterals writes args as SQL literals, for EXECUTE.
func sqlLiterals(args []any) string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	out := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case int64:
			out[i] = fmt.Sprint(v)
		case string:
			out[i] = quote(v)
		case []int64:
			n := make([]string, len(v))
			for j, x := range v {
				n[j] = fmt.Sprint(x)
			}
			out[i] = quote("{" + strings.Join(n, ",") + "}")
		case []string:
			q := make([]string, len(v))
			for j, s := range v {
				q[j] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
			}
			out[i] = quote("{" + strings.Join(q, ",") + "}")
		default:
			panic(fmt.Sprintf("sqlLiterals: %T", a))
		}
	}
	return strings.Join(out, ", ")
}

// TestWritePlans runs APPENDs of messages that name a few ids each,
// STOREs on two messages and EXPUNGEs, and checks, on every connection
// of the store's pool, how PostgreSQL planned their statements. The new
// messages' insert must run its generic plan and never be planned for its
// parameters (left to itself PostgreSQL plans it again at every run: its
// generic plan looks dearer than one planned for a known count of ids).
// The update of several messages' flags and the search for \Deleted
// messages must not be held to their generic plans (genericPlans): the
// first is quadratic in the number of UIDs under it, the second can read
// the whole mailbox; PostgreSQL plans them for their values at least
// while it compares the two kinds of plan (its first five runs).
func TestWritePlans(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, pgtest.NewDatabase(t), Options{Logger: quietLogger(), MaxConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	const n = 12
	var inbox int64
	for i := range n {
		body := fmt.Sprintf("From: a@example.org\r\nSubject: re %d\r\nMessage-ID: <m%d@example.org>\r\nReferences: <m0@example.org> <r%d@example.org>\r\n\r\nbody\r\n", i, i, i)
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte(body)}})
		if err != nil {
			t.Fatal(err)
		}
		inbox = res.MailboxID
	}
	for i := range n {
		op := store.FlagsAdd
		if i%2 == 1 {
			op = store.FlagsRemove
		}
		if _, err := a.StoreFlags(ctx, inbox, []uint32{1, 2}, op, []string{`\Flagged`}, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if _, err := a.StoreFlags(ctx, inbox, []uint32{uint32(i + 1)}, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
			t.Fatal(err)
		}
		if gone, err := a.Expunge(ctx, inbox, nil, true); err != nil || len(gone) != 1 {
			t.Fatalf("expunge %d: %v, %v", i+1, gone, err)
		}
	}
	deletedSQL, _ := msgRowsSQL(inbox, uidRanges{}, true, true)
	conns := s.pool.AcquireAllIdle(ctx)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for _, st := range []struct {
		name, sql string
		generic   bool // held to its generic plan
	}{
		{"the new messages' insert", insertMessageSQL, true},
		{"the update of several messages' flags", updateFlagsSQL, false},
		{"the search for \\Deleted messages", deletedSQL, false},
	} {
		var generic, custom int64
		for _, c := range conns {
			var g, cu int64
			if err := c.QueryRow(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements WHERE statement = $1`, st.sql).Scan(&g, &cu); err != nil {
				t.Fatal(err)
			}
			generic += g
			custom += cu
		}
		if custom+generic != n {
			t.Fatalf("%s: %d custom plans and %d runs of the generic plan, want %d runs", st.name, custom, generic, n)
		}
		if st.generic && custom != 0 {
			t.Errorf("%s: %d of %d runs planned for their values, want none", st.name, custom, n)
		}
		if !st.generic && custom == 0 {
			t.Errorf("%s: all %d runs held to the generic plan", st.name, n)
		}
	}
}

// flagUpdateTracer records how many messages each flag update the store
// sends names.
type flagUpdateTracer struct {
	mu    sync.Mutex
	sizes []int
}

func (f *flagUpdateTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (f *flagUpdateTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (f *flagUpdateTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (f *flagUpdateTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (f *flagUpdateTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	if d.SQL != updateFlagsSQL && d.SQL != updateFlagsRowsSQL {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sizes = append(f.sizes, len(d.Args[2].([]int64)))
}

// TestStoreOnManyMessagesInChunks changes the flags of 200 messages in
// one STORE and checks they all changed, at one modseq that is the
// mailbox's HIGHESTMODSEQ, through updates of at most flagUpdateChunk
// messages each: the generic plan of a larger one is quadratic in its
// number of messages.
func TestStoreOnManyMessagesInChunks(t *testing.T) {
	ctx := context.Background()
	tr := &flagUpdateTracer{}
	s, err := Open(ctx, pgtest.NewDatabase(t), Options{Logger: quietLogger(), Tracer: tr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	const n = 200
	if n <= 2*flagUpdateChunk {
		t.Fatalf("%d messages make fewer than three chunks of %d", n, flagUpdateChunk)
	}
	msgs := make([]store.NewMessage, n)
	for i := range msgs {
		msgs[i] = store.NewMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))}
		if i%3 == 0 {
			msgs[i].Flags = []string{`\Seen`}
		}
	}
	app, err := a.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.StoreFlags(ctx, app.MailboxID, uidRange(1, n), store.FlagsAdd, []string{`\Flagged`}, 0, false)
	if err != nil || len(res.Updated) != n {
		t.Fatalf("store: %d updated, %v", len(res.Updated), err)
	}
	var flagged, atModSeq, highest int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE sysflags & 4 <> 0), count(*) FILTER (WHERE modseq = $2),
		(SELECT highestmodseq FROM mailboxes WHERE id = $1) FROM messages WHERE mailbox_id = $1`,
		app.MailboxID, int64(res.ModSeq)).Scan(&flagged, &atModSeq, &highest); err != nil {
		t.Fatal(err)
	}
	if flagged != n || atModSeq != n || highest != int64(res.ModSeq) {
		t.Errorf("after the STORE: %d flagged and %d at modseq %d of %d, HIGHESTMODSEQ %d", flagged, atModSeq, res.ModSeq, n, highest)
	}
	total := 0
	for _, k := range tr.sizes {
		if k > flagUpdateChunk {
			t.Errorf("an update of %d messages, want at most %d", k, flagUpdateChunk)
		}
		total += k
	}
	if total != n {
		t.Errorf("updates named %d messages (%v), want %d", total, tr.sizes, n)
	}
}
