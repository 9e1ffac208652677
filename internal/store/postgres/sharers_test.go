package postgres

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// sharersQueries counts the Sharers queries a Store sends.
type sharersQueries struct{ n atomic.Int64 }

func (q *sharersQueries) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(d.SQL, "SELECT DISTINCT u.name FROM acl") {
		q.n.Add(1)
	}
	return ctx
}

func (q *sharersQueries) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// share gives identifier the rights lr on owner's INBOX through s.
func share(t *testing.T, s *Store, owner, identifier string) {
	t.Helper()
	ctx := context.Background()
	a, err := s.Account(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.SetACL(ctx, "INBOX", identifier, store.FlagsReplace, "lr"); err != nil {
		t.Fatal(err)
	}
}

// sharersWithin polls node's Sharers of user until it equals want or d
// passed, and returns the last answer.
func sharersWithin(t *testing.T, node *Store, user string, want []string, d time.Duration) []string {
	t.Helper()
	var got []string
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if got, err = node.Sharers(context.Background(), user); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got, want) || time.Now().After(end) {
			return got
		}
	}
}

// TestSharersCached: a node answers Sharers from memory after the first
// query, and an ACL change clears the answers it affects: at once when
// made through the node, when its signal arrives when made through
// another node (for one user, and for anyone), and after the TTL when
// the row was written without a signal.
func TestSharersCached(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	q := &sharersQueries{}
	nodeA, err := Open(ctx, url, Options{Notifier: &storetest.Recorder{}, Logger: quietLogger(), Tracer: q})
	if err != nil {
		t.Fatal(err)
	}
	defer nodeA.Close()
	nodeB := openURL(t, url, nil)
	defer nodeB.Close()
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if err := nodeB.CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	if got := sharersWithin(t, nodeA, "bob", nil, 0); len(got) != 0 {
		t.Fatalf("Sharers(bob) = %v before any grant", got)
	}
	// A Store that does not listen (a command-line tool) hears of no
	// ACL change: it keeps no answers.
	if got := sharersWithin(t, nodeB, "bob", nil, 0); len(got) != 0 {
		t.Fatalf("Sharers(bob) through the other node = %v before any grant", got)
	}
	before := q.n.Load()
	for range 5 {
		if got := sharersWithin(t, nodeA, "bob", nil, 0); len(got) != 0 {
			t.Fatalf("Sharers(bob) = %v", got)
		}
	}
	if n := q.n.Load() - before; n != 0 {
		t.Fatalf("%d queries for answers the node has", n)
	}
	share(t, nodeA, "carol", "bob")
	if got := sharersWithin(t, nodeA, "bob", nil, 0); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("Sharers(bob) = %v right after a grant through the node", got)
	}
	if got := sharersWithin(t, nodeB, "bob", nil, 0); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("Sharers(bob) = %v through a Store that does not listen", got)
	}
	share(t, nodeB, "alice", "bob")
	if got := sharersWithin(t, nodeA, "bob", []string{"alice", "carol"}, 3*time.Second); !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("Sharers(bob) = %v after a grant through another node", got)
	}
	share(t, nodeB, "dave", store.Anyone)
	if got := sharersWithin(t, nodeA, "bob", []string{"alice", "carol", "dave"}, 3*time.Second); !slices.Equal(got, []string{"alice", "carol", "dave"}) {
		t.Fatalf("Sharers(bob) = %v after a grant to anyone through another node", got)
	}
	// A row written without a signal shows once the answer expired.
	nodeA.sharers.mu.Lock()
	nodeA.sharers.ttl = 300 * time.Millisecond
	nodeA.sharers.mu.Unlock()
	nodeA.sharers.forget("bob")
	sharersWithin(t, nodeA, "bob", nil, 0)
	if _, err := nodeB.pool.Exec(ctx, `INSERT INTO acl(mailbox_id, identifier, rights)
		SELECT m.id, 'bob', 'lr' FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE u.name = 'erin' AND m.name = 'INBOX'`); err != nil {
		t.Fatal(err)
	}
	want := []string{"alice", "carol", "dave", "erin"}
	if got := sharersWithin(t, nodeA, "bob", want, 2*time.Second); !slices.Equal(got, want) {
		t.Fatalf("Sharers(bob) = %v after the TTL", got)
	}
}

// TestSharersCacheGeneration: an answer read before a clearing is not
// kept; a clearing for one user keeps the others' answers, one for
// anyone drops them all; expired answers make room before a full cache
// starts again.
func TestSharersCacheGeneration(t *testing.T) {
	c := sharersCache{enabled: true}
	_, gen, _ := c.get("bob")
	c.forget("bob")
	c.put("bob", gen, nil)
	if _, _, ok := c.get("bob"); ok {
		t.Fatal("kept an answer read before a clearing")
	}
	_, gen, _ = c.get("bob")
	c.put("bob", gen, []string{"alice"})
	if names, _, ok := c.get("bob"); !ok || !slices.Equal(names, []string{"alice"}) {
		t.Fatalf("get = %v, %v", names, ok)
	}
	c.forget("carol")
	if _, _, ok := c.get("bob"); !ok {
		t.Fatal("a clearing for carol dropped bob's answer")
	}
	c.forget(store.Anyone)
	if _, _, ok := c.get("bob"); ok {
		t.Fatal("a clearing for anyone kept bob's answer")
	}
}
