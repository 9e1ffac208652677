package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestReplica runs a private primary and a streaming standby of it
// (pg_basebackup -R) and reads through a Store whose ReadURL is the
// standby: the reads it may answer go there, what it has not replayed
// yet comes from the primary, and the conformance suite passes
// unchanged through a replicated Store. The suite reads each message
// right after changing its mailbox, before the standby has replayed the
// change, so there nearly every read is sent on to the primary by the
// modseq floor: it checks that the fallback keeps the store's contract
// (an expunged message is gone at once), and "reads" checks the answers.
func TestReplica(t *testing.T) {
	primary, err := pgtest.Start()
	if errors.Is(err, pgtest.ErrNotInstalled) {
		t.Skip("skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := primary.Stop(); err != nil {
			t.Error(err)
		}
	})
	standby, err := primary.StartStandby()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before the primary's (cleanups run last first)
		if err := standby.Stop(); err != nil {
			t.Error(err)
		}
	})
	newDB := func(t *testing.T) (primaryURL, standbyURL string) {
		t.Helper()
		u, err := primary.CreateDatabase(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		su, err := standby.URLOf(u)
		if err != nil {
			t.Fatal(err)
		}
		return u, su
	}
	t.Run("reads", func(t *testing.T) { testReplicaReads(t, primary, standby, newDB) })
	t.Run("unreachable", testReplicaUnreachable)
	t.Run("conformance", func(t *testing.T) {
		var mu sync.Mutex
		dbs := map[string][2]string{}
		storetest.Run(t, func(t *testing.T, dir string, n store.Notifier) store.Store {
			mu.Lock()
			urls, ok := dbs[dir]
			if !ok {
				p, s := newDB(t)
				urls = [2]string{p, s}
				dbs[dir] = urls
			}
			mu.Unlock()
			return openReplicated(t, urls[0], urls[1], n)
		})
	})
}

func openReplicated(t *testing.T, url, readURL string, n store.Notifier) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Notifier: n, Logger: quietLogger(), ReadURL: readURL})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// testReplicaReads pauses the standby's replay to make it lag for sure.
func testReplicaReads(t *testing.T, primary, standby *pgtest.Cluster, newDB func(*testing.T) (string, string)) {
	ctx := context.Background()
	pu, su := newDB(t)
	waitReplayed(t, primary.URL("postgres"), standby.URL("postgres"))
	s := openReplicated(t, pu, su, nil)
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	m1, m2, m3 := storetest.Msg(1), storetest.Msg(2), storetest.Msg(3)
	r1, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: m1}})
	if err != nil {
		t.Fatal(err)
	}
	box, uid1 := r1.MailboxID, r1.UIDs[0]
	if err := a.CreateMailbox(ctx, "Other", ""); err != nil {
		t.Fatal(err)
	}
	r3, err := a.Append(ctx, "Other", []store.NewMessage{{Body: m3}})
	if err != nil {
		t.Fatal(err)
	}
	waitReplayed(t, primary.URL("postgres"), standby.URL("postgres"))
	// A second node, listening: it learns of this Store's changes only
	// through NOTIFY.
	rec := &storetest.Recorder{}
	nodeB := openReplicated(t, pu, su, rec)
	t.Cleanup(func() { nodeB.Close() })
	accountB, err := nodeB.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accountB.Close() })

	counts := func() (answered, passed int64) { return s.replica.answered.Load(), s.replica.passed.Load() }
	expect := func(what string, answered0, passed0, dAnswered, dPassed int64) {
		t.Helper()
		if a, p := counts(); a-answered0 != dAnswered || p-passed0 != dPassed {
			t.Errorf("%s: replica answered %d, passed on %d; want %d, %d", what, a-answered0, p-passed0, dAnswered, dPassed)
		}
	}
	body := func(box int64, uid uint32, want []byte) {
		t.Helper()
		if got := readBody(t, a, box, uid); !bytes.Equal(got, want) {
			t.Errorf("OpenBody(%d) read %d bytes, not the message appended (%d bytes)", uid, len(got), len(want))
		}
	}
	headers := func(want store.Want, uids ...uint32) map[uint32]string {
		t.Helper()
		out := map[uint32]string{}
		if err := a.Fetch(ctx, box, uids, want, func(m *store.Message) error {
			out[m.UID] = string(m.Header)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}

	a0, p0 := counts()
	body(box, uid1, m1)
	expect("OpenBody of a replayed message", a0, p0, 1, 0)

	// The standby stops replaying: INBOX changes on the primary only.
	pauseReplay(t, standby.URL("postgres"))
	r2, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: m2}})
	if err != nil {
		t.Fatal(err)
	}
	uid2 := r2.UIDs[0]
	a0, p0 = counts()
	body(box, uid2, m2)
	expect("OpenBody of a message the replica has not replayed", a0, p0, 0, 1)
	a0, p0 = counts()
	body(box, uid1, m1)
	expect("OpenBody in a mailbox the replica is behind on", a0, p0, 0, 1)
	a0, p0 = counts()
	body(r3.MailboxID, r3.UIDs[0], m3)
	expect("OpenBody in a mailbox that has not changed since", a0, p0, 1, 0)

	// The primary's answer, flags wanted: the replica is not asked.
	a0, p0 = counts()
	fromPrimary := headers(store.WantHeader|store.WantFlags, uid1, uid2)
	expect("Fetch with flags", a0, p0, 0, 0)
	if len(fromPrimary) != 2 || fromPrimary[uid1] == "" || fromPrimary[uid2] == "" {
		t.Fatalf("Fetch from the primary: %d messages", len(fromPrimary))
	}
	a0, p0 = counts()
	if got := headers(store.WantHeader, uid1, uid2); got[uid1] != fromPrimary[uid1] || got[uid2] != fromPrimary[uid2] {
		t.Errorf("Fetch of headers while the replica is behind: got %d messages, different from the primary's", len(got))
	}
	expect("Fetch of headers while the replica is behind", a0, p0, 0, 1)

	resumeReplay(t, standby.URL("postgres"))
	waitReplayed(t, primary.URL("postgres"), standby.URL("postgres"))
	a0, p0 = counts()
	body(box, uid2, m2)
	if got := headers(store.WantHeader, uid1, uid2); got[uid1] != fromPrimary[uid1] || got[uid2] != fromPrimary[uid2] {
		t.Errorf("Fetch of headers once replayed: got %d messages, different from the primary's", len(got))
	}
	expect("OpenBody and Fetch once replayed", a0, p0, 2, 0)
	if _, err := accountB.OpenBody(ctx, box, uid1); err != nil || nodeB.replica.answered.Load() != 1 {
		t.Fatalf("node B, replica caught up: OpenBody %v, replica answered %d, want 1", err, nodeB.replica.answered.Load())
	}

	// An expunge through this Store is not undone by the replica, which
	// still has the message.
	pauseReplay(t, standby.URL("postgres"))
	if _, err := a.Expunge(ctx, box, []uint32{uid1}, false); err != nil {
		t.Fatal(err)
	}
	a0, p0 = counts()
	if _, err := a.OpenBody(ctx, box, uid1); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Errorf("OpenBody of a message expunged while the replica lags: %v, want ErrNoSuchMessage", err)
	}
	if got := headers(store.WantHeader, uid1); len(got) != 0 {
		t.Errorf("Fetch of a message expunged while the replica lags: %d messages", len(got))
	}
	expect("reads of an expunged message", a0, p0, 0, 2)
	// Node B hears of the expunge and no longer believes the replica.
	var expunged uint64
	if err := s.pool.QueryRow(ctx, `SELECT highestmodseq FROM mailboxes WHERE id = $1`, box).Scan(&expunged); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !heard(rec, box, expunged); {
		if time.Now().After(deadline) {
			t.Fatal("node B heard nothing of the expunge in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := accountB.OpenBody(ctx, box, uid1); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Errorf("node B, after the NOTIFY of an expunge the replica has not replayed: OpenBody %v, want ErrNoSuchMessage", err)
	}

	// A Store opened now (a restart) knows nothing of that expunge: it
	// leaves the replica alone until the replica has replayed what the
	// primary had at its Open.
	s2 := openReplicated(t, pu, su, nil)
	t.Cleanup(func() { s2.Close() })
	a2, err := s2.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a2.Close() })
	if _, err := a2.OpenBody(ctx, box, uid1); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Errorf("OpenBody through a Store opened after the expunge: %v, want ErrNoSuchMessage", err)
	}
	if n := s2.replica.answered.Load(); n != 0 {
		t.Errorf("a Store opened while the replica lags: replica answered %d reads", n)
	}

	// Deleting the user: its open account finds nothing, though the
	// paused replica still has every row.
	if err := s.DeleteUser(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	a0, p0 = counts()
	if _, err := a.OpenBody(ctx, r3.MailboxID, r3.UIDs[0]); err == nil {
		t.Error("OpenBody of a deleted user's message succeeded")
	}
	expect("OpenBody of a deleted user's message", a0, p0, 0, 1)
}

// heard reports whether rec was told of mailbox box at modseq ms or
// later.
func heard(rec *storetest.Recorder, box int64, ms uint64) bool {
	for _, n := range rec.Take() {
		if n.MailboxID == box && n.ModSeq >= ms {
			return true
		}
	}
	return false
}

// testReplicaUnreachable: a replica nobody listens for leaves every read
// to the primary.
func testReplicaUnreachable(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := openReplicated(t, pgtest.NewDatabase(t), "postgres://tern@127.0.0.1:"+strconv.Itoa(port)+"/none?sslmode=disable&connect_timeout=2", nil)
	t.Cleanup(func() { s.Close() })
	a := newUser(t, s)
	m := storetest.Msg(1)
	r, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: m}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.OpenBody(ctx, r.MailboxID, r.UIDs[0])
	if err != nil {
		t.Fatalf("OpenBody with the replica down: %v", err)
	}
	got, _ := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	b.Close()
	n := 0
	if err := a.Fetch(ctx, r.MailboxID, r.UIDs, store.WantEnvelope, func(*store.Message) error { n++; return nil }); err != nil {
		t.Fatalf("Fetch with the replica down: %v", err)
	}
	if !bytes.Equal(got, m) || n != 1 {
		t.Errorf("with the replica down: body of %d bytes (want %d), %d messages fetched", len(got), len(m), n)
	}
	if a, p := s.replica.answered.Load(), s.replica.passed.Load(); a != 0 || p != 2 {
		t.Errorf("replica answered %d, passed on %d; want 0, 2", a, p)
	}
}

func standbyExec(t *testing.T, url, sql string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pauseReplay(t *testing.T, standby string) {
	t.Helper()
	standbyExec(t, standby, `SELECT pg_wal_replay_pause()`)
	t.Cleanup(func() { standbyExec(t, standby, `SELECT pg_wal_replay_resume()`) })
}

func resumeReplay(t *testing.T, standby string) {
	t.Helper()
	standbyExec(t, standby, `SELECT pg_wal_replay_resume()`)
}

// waitReplayed waits until the standby has replayed everything the
// primary had logged when it was called: up to the insert position, as
// the test cluster commits with synchronous_commit off (a commit's
// record may not be written out yet).
func waitReplayed(t *testing.T, primary, standby string) {
	t.Helper()
	ctx := context.Background()
	pc, err := pgx.Connect(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	var lsn string
	if err := pc.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	sc, err := pgx.Connect(ctx, standby)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var done bool
		if err := sc.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), $1::pg_lsn) >= 0`, lsn).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby did not replay up to %s in 30 s", lsn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReplicaAfterFailover: the primary fails over to a standby that had
// not received its last APPEND, while the read replica had. The new
// primary gives that APPEND's UID to the next message; the replica, left
// on the old primary's timeline, still holds the lost message under it
// and must not be asked for it: what the Store returns for the UID is the
// new message. Before, the replica gate (the primary's WAL position at
// Open, and the modseq floor) stayed open across the failover, and the
// replica answered with the lost message's body. A reset without a
// failover leaves the replica in use once it shows the new mark.
func TestReplicaAfterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL primary and two standbys of its own")
	}
	primary, err := pgtest.StartWith("-c synchronous_commit=on")
	if errors.Is(err, pgtest.ErrNotInstalled) {
		t.Skip("skipped: " + err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Stop()
	ctx := context.Background()
	url, err := primary.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := primary.StartStandby()
	if err != nil {
		t.Fatal(err)
	}
	defer promoted.Stop()
	reader, err := primary.StartStandby()
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Stop()
	readURL, err := reader.URLOf(url)
	if err != nil {
		t.Fatal(err)
	}
	both := strings.Replace(url, "127.0.0.1:"+strconv.Itoa(primary.Port()),
		"127.0.0.1:"+strconv.Itoa(primary.Port())+",127.0.0.1:"+strconv.Itoa(promoted.Port()), 1) + "&target_session_attrs=read-write"
	s, err := Open(ctx, both, Options{Logger: quietLogger(), ReadURL: readURL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := newUser(t, s)
	first := []byte("Subject: first\r\n\r\nreplicated everywhere\r\n")
	r, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: first}})
	if err != nil {
		t.Fatal(err)
	}
	box := r.MailboxID
	waitReplayed(t, primary.URL("postgres"), reader.URL("postgres"))
	waitReplayed(t, primary.URL("postgres"), promoted.URL("postgres"))
	readsReplica(t, s, a, box, r.UIDs[0], first)
	s.reset() // no failover: the replica shows the new mark and is asked again
	readsReplica(t, s, a, box, r.UIDs[0], first)

	// The standby to be promoted stops receiving; the replica does not.
	standbyExec(t, promoted.URL("postgres"), `ALTER SYSTEM SET primary_conninfo = ''`)
	standbyExec(t, promoted.URL("postgres"), `SELECT pg_reload_conf()`)
	waitNoReceiver(t, promoted.URL("postgres"))
	lost := []byte("Subject: lost\r\n\r\nonly the old primary and the replica have me\r\n")
	r, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: lost}})
	if err != nil {
		t.Fatal(err)
	}
	lostUID := r.UIDs[0]
	waitReplayed(t, primary.URL("postgres"), reader.URL("postgres"))
	readsReplica(t, s, a, box, lostUID, lost)

	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := promoted.Promote(); err != nil {
		t.Fatal(err)
	}
	after := []byte("Subject: after\r\n\r\nwritten on the new primary\r\n")
	for i := 0; ; i++ {
		if r, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: after}}); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("APPEND after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.UIDs[0] != lostUID {
		t.Fatalf("the new primary gave UID %d, not the lost message's %d: the failover did not lose it", r.UIDs[0], lostUID)
	}
	for range 3 { // past the replica check's once a second
		if got := readBody(t, a, box, lostUID); !bytes.Equal(got, after) {
			t.Fatalf("UID %d after the failover reads %q, want the new message %q", lostUID, got, after)
		}
		time.Sleep(600 * time.Millisecond)
	}
}

// readsReplica waits until the replica answers a read of uid, and checks
// the body it gives.
func readsReplica(t *testing.T, s *Store, a store.Account, box int64, uid uint32, want []byte) {
	t.Helper()
	for i := 0; ; i++ {
		before := s.replica.answered.Load()
		got := readBody(t, a, box, uid)
		if !bytes.Equal(got, want) {
			t.Fatalf("UID %d reads %q, want %q", uid, got, want)
		}
		if s.replica.answered.Load() > before {
			return
		}
		if i == 100 {
			t.Fatal("the replica answered no read in 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readBody(t *testing.T, a store.Account, box int64, uid uint32) []byte {
	t.Helper()
	b, err := a.OpenBody(context.Background(), box, uid)
	if err != nil {
		t.Fatalf("OpenBody(%d): %v", uid, err)
	}
	defer b.Close()
	got, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitNoReceiver waits until a standby's WAL receiver has stopped.
func waitNoReceiver(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for i := 0; ; i++ {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_wal_receiver`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if i == 300 {
			t.Fatal("the standby's WAL receiver still runs after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
