package index_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// TestBodyCache: a client's read (store.KeepBody) of a small message is
// answered from memory the next time, with the same bytes and part tree;
// reads without the mark (SEARCH, export) and large messages go to the
// store every time; an expunged message's body is gone from the cache.
func TestBodyCache(t *testing.T) {
	ctx := context.Background()
	a, _, c := spyAccountOf(t, 0, false, false)
	big := strings.Repeat("a long line of a large message body\r\n", 3000)
	res := appendMessages(t, a, 3, func(i int) []byte {
		if i == 2 {
			return fmt.Appendf(nil, "Subject: big\r\n\r\n%s", big)
		}
		return fmt.Appendf(nil, "Subject: m%d\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\npart %d\r\n--b--\r\n", i, i)
	})
	id, uids := res.MailboxID, res.UIDs
	if _, _, err := a.Snapshot(ctx, id); err != nil { // a session selects the mailbox
		t.Fatal(err)
	}
	opens := func(what string, want int64, f func()) {
		t.Helper()
		before := c.bodyOpens.Load()
		f()
		if got := c.bodyOpens.Load() - before; got != want {
			t.Errorf("%s: %d store opens, want %d", what, got, want)
		}
	}
	var first, firstParts []byte
	opens("two client reads of a small message", 1, func() {
		for range 2 {
			data, parts, err := readBody(ctx, a, id, uids[0])
			if err != nil || !bytes.Contains(data, []byte("part 0")) || len(parts) == 0 {
				t.Fatalf("read: %q, %d bytes of parts, %v", data, len(parts), err)
			}
			if first != nil && (!bytes.Equal(data, first) || !bytes.Equal(parts, firstParts)) {
				t.Fatal("the cached body differs from the store's")
			}
			first, firstParts = data, parts
		}
	})
	opens("two reads without the client mark", 2, func() {
		for range 2 {
			b, err := a.OpenBody(ctx, id, uids[1])
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
		}
	})
	opens("a cached body for a read without the mark", 0, func() {
		b, err := a.OpenBody(ctx, id, uids[0])
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	})
	opens("two client reads of a large message", 2, func() {
		for range 2 {
			if data, _, err := readBody(ctx, a, id, uids[2]); err != nil || !bytes.HasSuffix(data, []byte(big)) {
				t.Fatalf("large read: %d bytes, %v", len(data), err)
			}
		}
	})
	if _, err := a.Expunge(ctx, id, uids[:1], false); err != nil {
		t.Fatal(err)
	}
	opens("a client read of an expunged message", 1, func() {
		if _, _, err := readBody(ctx, a, id, uids[0]); !errors.Is(err, store.ErrNoSuchMessage) {
			t.Fatalf("expunged: %v, want ErrNoSuchMessage", err)
		}
	})
}

// TestBodyCacheAfterOtherExpunge: a message another process (or node)
// expunged is not read from the cache while the index has not applied
// the expunge yet (it only heard that the mailbox changed).
func TestBodyCacheAfterOtherExpunge(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, x := openIndexed(t, dir, nil, index.Options{})
	defer st.Close()
	if err := st.CreateUser(ctx, "u", ""); err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	res := appendMessages(t, a, 2, storeMsg)
	if _, _, err := a.Snapshot(ctx, res.MailboxID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readBody(ctx, a, res.MailboxID, res.UIDs[0]); err != nil {
		t.Fatal(err)
	}
	// Another process hears of nothing but "mailbox changed" (the notify
	// socket, PostgreSQL's LISTEN): no delta to apply.
	other, err := sqlite.Open(ctx, dir, sqlite.Options{Notifier: changedOnly{x}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	oa, err := other.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer oa.Close()
	if _, err := oa.Expunge(ctx, res.MailboxID, res.UIDs[:1], false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readBody(ctx, a, res.MailboxID, res.UIDs[0]); !errors.Is(err, store.ErrNoSuchMessage) {
		t.Fatalf("a message expunged by another store: %v, want ErrNoSuchMessage", err)
	}
}

// TestBodyCacheWithinShare: the body caches of many mailboxes together
// stay within their share of the memory budget, and what they hold goes
// when the messages are expunged.
func TestBodyCacheWithinShare(t *testing.T) {
	ctx := context.Background()
	const budget = 1 << 20
	a, x, _ := spyAccountOf(t, budget, false, false)
	body := strings.Repeat("x", 60<<10)
	var boxes []int64
	for i := range 20 {
		name := fmt.Sprintf("box%d", i)
		if err := a.CreateMailbox(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		msgs := make([]store.NewMessage, 4)
		for j := range msgs {
			msgs[j].Body = fmt.Appendf(nil, "Subject: %d.%d\r\n\r\n%s\r\n", i, j, body)
		}
		res, err := a.Append(ctx, name, msgs)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Snapshot(ctx, res.MailboxID); err != nil {
			t.Fatal(err)
		}
		for _, u := range res.UIDs {
			if _, _, err := readBody(ctx, a, res.MailboxID, u); err != nil {
				t.Fatal(err)
			}
		}
		boxes = append(boxes, res.MailboxID)
	}
	held, err := index.CheckBodies(x)
	if err != nil {
		t.Fatal(err)
	}
	if held == 0 {
		t.Fatal("nothing cached")
	}
	for _, id := range boxes {
		if _, err := a.Expunge(ctx, id, []uint32{1, 2, 3, 4}, false); err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Snapshot(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if held, err := index.CheckBodies(x); err != nil || held != 0 {
		t.Fatalf("after the expunges: %d bytes held, %v", held, err)
	}
}

// changedOnly passes on MailboxChanged only, as a notification from
// another process does.
type changedOnly struct{ x *index.Indexes }

func (n changedOnly) MailboxChanged(user string, id int64, modSeq uint64) {
	n.x.MailboxChanged(user, id, modSeq)
}

// TestBodyCacheTakesNewMail: only a mailbox's newest messages are kept;
// reads of old mail go to the store each time and copy nothing.
func TestBodyCacheTakesNewMail(t *testing.T) {
	ctx := context.Background()
	a, _, c := spyAccountOf(t, 0, false, false)
	res := appendMessages(t, a, index.BodyRecent+10, storeMsg)
	id, uids := res.MailboxID, res.UIDs
	if _, _, err := a.Snapshot(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what  string
		uid   uint32
		opens int64
	}{{"the oldest message", uids[0], 2}, {"the newest", uids[len(uids)-1], 1}, {"the oldest still kept", uids[10], 1}, {"just before it", uids[9], 2}} {
		before := c.bodyOpens.Load()
		for range 2 {
			if _, _, err := readBody(ctx, a, id, tc.uid); err != nil {
				t.Fatal(err)
			}
		}
		if got := c.bodyOpens.Load() - before; got != tc.opens {
			t.Errorf("two reads of %s: %d store opens, want %d", tc.what, got, tc.opens)
		}
	}
}

// TestBodyCacheDropped: the body caches of mailboxes whose indexes go
// without an eviction (the user deleted; every index dropped by
// StoreReset) leave the total that the budget is checked against.
func TestBodyCacheDropped(t *testing.T) {
	for _, how := range []string{"delete user", "store reset"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			x := index.New(nil, index.Options{})
			backend, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Notifier: x})
			if err != nil {
				t.Fatal(err)
			}
			st := x.Wrap(backend)
			defer st.Close()
			if err := st.CreateUser(ctx, "u", ""); err != nil {
				t.Fatal(err)
			}
			a, err := st.Account(ctx, "u")
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: []byte("Subject: a\r\n\r\na\r\n")}, {Body: []byte("Subject: b\r\n\r\nb\r\n")}})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := a.Snapshot(ctx, res.MailboxID); err != nil {
				t.Fatal(err)
			}
			for _, u := range res.UIDs {
				if _, _, err := readBody(ctx, a, res.MailboxID, u); err != nil {
					t.Fatal(err)
				}
			}
			if held, err := index.CheckBodies(x); err != nil || held == 0 {
				t.Fatalf("before: %d bytes held, %v", held, err)
			}
			a.Close()
			if how == "delete user" {
				if err := st.DeleteUser(ctx, "u"); err != nil {
					t.Fatal(err)
				}
			} else {
				x.StoreReset()
			}
			if held, err := index.CheckBodies(x); err != nil || held != 0 {
				t.Fatalf("after: %d bytes held, %v", held, err)
			}
		})
	}
}
