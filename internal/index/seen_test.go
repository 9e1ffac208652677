package index_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/privseen"
)

// A reader's private \Seen is read from the store once, then answered
// from the mailbox index while its modseq stands; after the reader's own
// change, another session's, or an expunge, the next read takes only
// the delta and the answers stay the store's.
func TestPrivateSeenFromIndex(t *testing.T) {
	ctx := context.Background()
	st, x := openIndexed(t, t.TempDir(), nil, index.Options{})
	defer st.Close()
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateUser(ctx, u, ""); err != nil {
			t.Fatal(err)
		}
	}
	alice, err := st.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.CreateMailbox(ctx, "Team", ""); err != nil {
		t.Fatal(err)
	}
	var msgs []store.NewMessage
	for i := range 10 {
		msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i)})
	}
	res, err := alice.Append(ctx, "Team", msgs)
	if err != nil {
		t.Fatal(err)
	}
	id, uids := res.MailboxID, res.UIDs
	bob := privseen.Wrap(alice, "bob") // a session of bob
	// count checks PrivateSeenCount and whether it needed a query.
	count := func(want, wantFirst uint32, fromMemory bool) {
		t.Helper()
		before := x.Stats()
		n, first, err := alice.PrivateSeenCount(ctx, id, "bob")
		if err != nil || n != want || first != wantFirst {
			t.Fatalf("PrivateSeenCount = %d, %d, %v; want %d, %d", n, first, err, want, wantFirst)
		}
		after := x.Stats()
		if hit := after.Hits > before.Hits && after.Misses == before.Misses; hit != fromMemory {
			t.Fatalf("PrivateSeenCount from memory = %v, want %v (stats %+v -> %+v)", hit, fromMemory, before, after)
		}
	}
	setSeen := func(u []uint32) {
		t.Helper()
		if _, err := alice.SetPrivateSeen(ctx, id, "bob", u, true); err != nil {
			t.Fatal(err)
		}
	}
	setSeen(uids[:4])
	count(4, uids[4], false) // read once
	count(4, uids[4], true)  // then from memory
	setSeen(uids[4:6])
	count(6, uids[6], false) // the delta since the copy
	count(6, uids[6], true)
	if _, err := alice.Expunge(ctx, id, uids[:2], false); err != nil {
		t.Fatal(err)
	}
	count(4, uids[6], false)
	// bob's session clears one; its STORE reads the states again, so
	// the count that follows needs no query.
	if _, err := bob.StoreFlags(ctx, id, uids[2:3], store.FlagsRemove, []string{`\Seen`}, 0, false); err != nil {
		t.Fatal(err)
	}
	count(3, uids[2], true)
	rows, err := alice.PrivateSeen(ctx, id, "bob", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint32
	for _, r := range rows {
		if r.Seen {
			seen = append(seen, r.UID)
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(uids[3:6]) {
		t.Fatalf("bob's seen UIDs = %v, want %v", seen, uids[3:6])
	}
}
