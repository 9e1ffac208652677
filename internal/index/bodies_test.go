package index_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
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
