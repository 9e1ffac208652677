package index_test

import (
	"context"
	"fmt"
	neturl "net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

// TestIndexAfterDatabaseCrash: under store.fsync = "optimized" a flag
// change commits relaxed, and a crash of the PostgreSQL server can undo
// it; the next change of the mailbox then takes the same modseq again.
// The node's mailbox index had shown the lost change, so from then on it
// must answer from the database again, not from what it had learned:
// FETCH FLAGS through the index equals the database's own answer.
func TestIndexAfterDatabaseCrash(t *testing.T) {
	c, x, a, truth := crashableNode(t)
	ctx := context.Background()
	mb, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{
			{Body: []byte("Subject: one\r\n\r\none\r\n")},
			{Body: []byte("Subject: two\r\n\r\ntwo\r\n")},
		})
		if err != nil {
			t.Fatal(err)
		}
		one, two := res.UIDs[0], res.UIDs[1]
		if _, _, err := a.Snapshot(ctx, mb.ID); err != nil { // the index holds the mailbox
			t.Fatal(err)
		}
		if _, err := a.StoreFlags(ctx, mb.ID, []uint32{one}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
			t.Fatal(err)
		}
		if got := sortedFlags(t, a, mb.ID, one); !slices.Contains(got, `\Seen`) {
			t.Fatalf("before the crash the index shows %v for UID %d, want \\Seen", got, one)
		}
		if err := c.Crash(); err != nil {
			t.Fatal(err)
		}
		ta := retryAccount(t, truth, "alice")
		lost := !slices.Contains(sortedFlags(t, ta, mb.ID, one), `\Seen`)
		ta.Close()
		if !lost {
			if attempt == 3 {
				t.Fatal("three crashes kept the relaxed commit: the scenario did not happen")
			}
			continue
		}
		// The node notices the crash by its broken listening connection;
		// give it that moment, as clients would.
		waitUnloaded(x, 10*time.Second)
		// The next change takes the lost change's modseq again.
		retry(t, func() error {
			_, err := a.StoreFlags(ctx, mb.ID, []uint32{two}, store.FlagsAdd, []string{`\Flagged`}, 0, false)
			return err
		})
		ta = retryAccount(t, truth, "alice")
		defer ta.Close()
		for _, uid := range []uint32{one, two} {
			want, got := sortedFlags(t, ta, mb.ID, uid), sortedFlags(t, a, mb.ID, uid)
			if !slices.Equal(got, want) {
				t.Errorf("after the crash the index shows %v for UID %d; the database has %v", got, uid, want)
			}
		}
		return
	}
}

// TestIndexAfterTwoCrashes: the server crashes again while the node's
// listening connection is still waiting to reconnect after the first
// crash, right after a relaxed flag change on the restarted server. No
// connection breaks at the second crash; the node must notice it anyway
// (a new connection finds a new server start time, and the listener
// resets once it listens again).
func TestIndexAfterTwoCrashes(t *testing.T) {
	c, _, a, truth := crashableNode(t)
	ctx := context.Background()
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: one\r\n\r\none\r\n")}})
	if err != nil {
		t.Fatal(err)
	}
	mb, uid := res.MailboxID, res.UIDs[0]
	// A first outage long enough for the listener's pause between tries
	// to grow to seconds.
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	// At once, before the listener's next try: load the index and change
	// a flag on the restarted server, then crash it again.
	retry(t, func() error {
		_, _, err := a.Snapshot(ctx, mb)
		return err
	})
	if _, err := a.StoreFlags(ctx, mb, []uint32{uid}, store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := c.Crash(); err != nil {
		t.Fatal(err)
	}
	ta := retryAccount(t, truth, "alice")
	defer ta.Close()
	if want := sortedFlags(t, ta, mb, uid); slices.Contains(want, `\Seen`) {
		t.Fatal("the second crash kept the relaxed commit: the scenario did not happen")
	}
	// The next change takes the lost modseq again; the node's answer
	// must be the database's once it had time to notice.
	retry(t, func() error {
		_, err := a.StoreFlags(ctx, mb, []uint32{uid}, store.FlagsAdd, []string{`\Flagged`}, 0, false)
		return err
	})
	time.Sleep(6 * time.Second) // the listener's longest pause between tries is 5 s
	if want, got := sortedFlags(t, ta, mb, uid), sortedFlags(t, a, mb, uid); !slices.Equal(got, want) {
		t.Errorf("after two crashes the index shows %v; the database has %v", got, want)
	}
}

// crashableNode starts a private PostgreSQL server to crash (durable
// commits stay durable; a relaxed one waits in the WAL buffers for the
// WAL writer, which sleeps 10 s between rounds, so a crash right after it
// loses it) and a node on it under store.fsync = "optimized": its index
// registry, user alice's account through the index, and a second Store
// without index or signals that reads what the database has. All are
// closed and stopped at the test's end.
func crashableNode(t *testing.T) (*pgtest.Cluster, *index.Indexes, store.Account, store.Store) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts and crashes a PostgreSQL server of its own")
	}
	c, err := pgtest.StartWith("-c synchronous_commit=on -c wal_writer_delay=10s")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { c.Stop() })
	ctx := context.Background()
	url, err := c.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x := index.New(nil, index.Options{})
	backend, err := postgres.Open(ctx, url, postgres.Options{Notifier: x, RelaxedCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	st := x.Wrap(backend)
	t.Cleanup(func() { st.Close() })
	truth, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { truth.Close() })
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return c, x, a, truth
}

// sortedFlags fetches one message's flags, sorted, waiting for a server that is
// still starting.
func sortedFlags(t *testing.T, a store.Account, mailboxID int64, uid uint32) []string {
	t.Helper()
	var flags []string
	var err error
	for range 50 {
		err = a.Fetch(context.Background(), mailboxID, []uint32{uid}, store.WantFlags, func(m *store.Message) error {
			flags = slices.Sorted(slices.Values(m.Flags))
			return nil
		})
		if err == nil {
			return flags
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("fetch flags of UID %d: %v", uid, err)
	return nil
}

// retryAccount opens user's account, waiting for the server to be back.
func retryAccount(t *testing.T, st store.Store, user string) store.Account {
	t.Helper()
	var a store.Account
	retry(t, func() (err error) {
		a, err = st.Account(context.Background(), user)
		return err
	})
	return a
}

// retry runs f until it succeeds, for at most 5 s.
func retry(t *testing.T, f func() error) {
	t.Helper()
	var err error
	for range 50 {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(fmt.Errorf("the server did not come back: %w", err))
}

// waitUnloaded waits (at most d) until x holds no loaded mailbox.
// waitListeners waits until n sessions of the database at url listen
// for change signals (their last statement a LISTEN).
func waitListeners(t *testing.T, url string, n int, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(d)
	for {
		var got int
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND query ILIKE 'LISTEN %'`).Scan(&got)
			conn.Close(ctx)
		}
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes listen again (err %v)", got, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitUnloaded(x *index.Indexes, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end) && x.Stats().Mailboxes > 0; {
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIndexAfterFailover: two nodes reach the database through one URL
// that names a primary and its synchronous standby (target_session_attrs
// = read-write, as an operator's failover setup would). The primary dies
// and the standby is promoted: each node's listening connection breaks,
// its indexes are dropped, it finds the new primary by itself, no
// acknowledged APPEND is missing, the node's answers equal the new
// primary's, and change signals cross between the nodes again. A relaxed
// flag change (its WAL left to a WAL writer that sleeps 10 s) does not
// reach the standby: the node must not keep showing it.
func TestIndexAfterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL primary and standby of its own")
	}
	primary, err := pgtest.StartWith("-c synchronous_commit=on -c wal_writer_delay=10s")
	if err != nil {
		t.Skip(err)
	}
	defer primary.Stop() // after Kill it only removes the directory
	ctx := context.Background()
	url, err := primary.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	standby, err := primary.StartStandby()
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Stop()
	// Every durable commit waits for the standby from now on.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = '*'`, `SELECT pg_reload_conf()`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	both := strings.Replace(url, fmt.Sprintf("127.0.0.1:%d", primary.Port()),
		fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", primary.Port(), standby.Port()), 1) + "&target_session_attrs=read-write"

	x := index.New(nil, index.Options{})
	backend, err := postgres.Open(ctx, both, postgres.Options{Notifier: x, RelaxedCommits: true})
	if err != nil {
		t.Fatal(err)
	}
	st := x.Wrap(backend)
	defer st.Close()
	heard := make(chan uint64, 1000)
	other, err := postgres.Open(ctx, both, postgres.Options{Notifier: modseqs(heard)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := st.CreateUser(ctx, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mb, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var acked []uint32
	for i := range 20 {
		res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\n%d\r\n", i, i)}})
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, res.UIDs...)
	}
	if _, _, err := a.Snapshot(ctx, mb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreFlags(ctx, mb.ID, acked[:5], store.FlagsAdd, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}

	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(); err != nil {
		t.Fatal(err)
	}
	waitUnloaded(x, 10*time.Second)
	// What the other node heard before is no proof of what follows.
	for len(heard) > 0 {
		<-heard
	}
	// A signal sent before a node listens again is not replayed to it
	// (LISTEN/NOTIFY; the lost-signal safety net catches up later), so
	// the writes wait until both nodes listen on the new primary.
	waitListeners(t, standby.URL(strings.TrimPrefix(mustPath(t, url), "/")), 2, 20*time.Second)
	// Two APPENDs: the first may take the lost flag change's modseq,
	// the second's is above every modseq the old primary gave.
	for i := range 2 {
		var res store.AppendResult
		retry(t, func() (err error) {
			res, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: fmt.Appendf(nil, "Subject: after %d\r\n\r\nafter\r\n", i)}})
			return err
		})
		if last := acked[len(acked)-1]; res.UIDs[0] <= last {
			t.Fatalf("APPEND %d on the new primary got UID %d, not above %d", i, res.UIDs[0], last)
		}
		acked = append(acked, res.UIDs...)
	}
	now, err := a.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	// The other node hears of it through the new primary.
	deadline := time.After(10 * time.Second)
	for heardIt := false; !heardIt; {
		select {
		case m := <-heard:
			heardIt = m >= now.HighestModSeq
		case <-deadline:
			t.Fatal("the other node heard no change signal from the new primary")
		}
	}

	truth, err := postgres.Open(ctx, standby.URL(strings.TrimPrefix(mustPath(t, url), "/")), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer truth.Close()
	ta := retryAccount(t, truth, "alice")
	defer ta.Close()
	_, uids, err := ta.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids, acked) {
		t.Fatalf("the new primary holds UIDs %v, acknowledged were %v", uids, acked)
	}
	_, mine, err := a.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mine, acked) {
		t.Errorf("the node's index holds UIDs %v, the new primary %v", mine, acked)
	}
	for _, uid := range acked {
		if want, got := sortedFlags(t, ta, mb.ID, uid), sortedFlags(t, a, mb.ID, uid); !slices.Equal(got, want) {
			t.Errorf("UID %d: the node shows %v, the new primary has %v", uid, got, want)
		}
	}
}

// modseqs is a Notifier that passes on the modseqs it is told of.
type modseqs chan uint64

func (c modseqs) MailboxChanged(user string, mailboxID int64, modSeq uint64) {
	select {
	case c <- modSeq:
	default:
	}
}

// mustPath is the path of a URL (the database's name, with a slash).
func mustPath(t *testing.T, raw string) string {
	t.Helper()
	u, err := neturl.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}
