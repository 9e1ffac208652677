package index_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
	if testing.Short() {
		t.Skip("starts and crashes a PostgreSQL server of its own")
	}
	// Durable commits stay durable; a relaxed one waits in the WAL
	// buffers for the WAL writer, which sleeps 10 s between rounds, so a
	// crash right after it loses it.
	c, err := pgtest.StartWith("-c synchronous_commit=on -c wal_writer_delay=10s")
	if err != nil {
		t.Skip(err)
	}
	defer c.Stop()
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
	defer st.Close()
	truth, err := postgres.Open(ctx, url, postgres.Options{}) // no index, no signals
	if err != nil {
		t.Fatal(err)
	}
	defer truth.Close()
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
func waitUnloaded(x *index.Indexes, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end) && x.Stats().Mailboxes > 0; {
		time.Sleep(20 * time.Millisecond)
	}
}
