package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestIndexerSchedule: a user's indexing waits until the mail is left
// alone for indexQuiet (each kick starts the wait again, the start-up
// backfill does not cut it short), and starts at once when indexBacklog
// messages wait.
func TestIndexerSchedule(t *testing.T) {
	x := &textIndexer{todo: map[int64]*indexWork{}, wake: make(chan struct{}, 1)}
	waiting := func(what string) {
		t.Helper()
		if id, _, _, wait, ok := x.next(); ok || wait <= indexQuiet/2 || wait > indexQuiet {
			t.Fatalf("%s: user %d taken (%v), wait %v; want a wait of about %v", what, id, ok, wait, indexQuiet)
		}
	}
	x.kick(1, "u", 1)
	waiting("after a new message")
	x.schedule(1, "u", 0, 0)
	waiting("after the backfill")
	x.kick(2, "v", indexBacklog)
	if id, name, full, _, ok := x.next(); !ok || id != 2 || name != "v" || !full {
		t.Fatalf("a full backlog: next = %d %q %v (full %v); want user 2 at once, full", id, name, ok, full)
	}
	waiting("user 1 still")
	x.kick(1, "u", indexBacklog-1)
	if id, _, full, _, ok := x.next(); !ok || id != 1 || !full {
		t.Fatalf("a backlog reached over several kicks: next = %d %v (full %v); want user 1 at once, full", id, ok, full)
	}
	if id, _, _, wait, ok := x.next(); ok || wait >= 0 {
		t.Fatalf("nothing queued: next = %d %v, wait %v", id, ok, wait)
	}
	x.kick(1, "u", 0)
	waiting("a kick after a drain")
	x.schedule(3, "w", 0, 0)
	if id, _, full, _, ok := x.next(); !ok || id != 3 || full {
		t.Fatalf("the backfill: next = %d %v (full %v); want user 3, not full", id, ok, full)
	}
}

// TestIndexerCountsTheQueue: when as many messages as indexBacklog
// arrived but most were expunged again (a client deleting what just came,
// a test tool's churn), the indexer does not index the few left but waits
// again, counting them; once that many wait, it indexes.
func TestIndexerCountsTheQueue(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	id, err := s.userID(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	appendN := func(n int) []uint32 {
		t.Helper()
		msgs := make([]store.NewMessage, n)
		for i := range msgs {
			msgs[i] = store.NewMessage{Body: storetest.Msg(i)}
		}
		res, err := a.Append(ctx, "INBOX", msgs)
		if err != nil {
			t.Fatal(err)
		}
		return res.UIDs
	}
	uids := appendN(indexBacklog)
	box, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	const kept = 10
	if _, err := a.Expunge(ctx, box.ID, uids[kept:], false); err != nil {
		t.Fatal(err)
	}
	x := &textIndexer{s: s, todo: map[int64]*indexWork{}, wake: make(chan struct{}, 1)}
	x.kick(id, "u", indexBacklog)
	if _, _, full, _, ok := x.next(); !ok || !full {
		t.Fatalf("after %d new messages: ok %v full %v; want the user due, full", indexBacklog, ok, full)
	}
	if x.fullQueue(ctx, id, "u") {
		t.Fatalf("%d queued of %d that arrived: taken as a full queue", kept, indexBacklog)
	}
	w := x.todo[id]
	if w == nil || w.added != kept || w.full || time.Until(w.due) < indexQuiet/2 {
		t.Fatalf("put back as %+v; want %d waiting, a quiet wait, not full", w, kept)
	}
	appendN(indexBacklog - kept)
	x.kick(id, "u", indexBacklog-kept)
	if _, _, full, _, ok := x.next(); !ok || !full {
		t.Fatalf("after %d more: ok %v full %v; want the user due, full", indexBacklog-kept, ok, full)
	}
	if !x.fullQueue(ctx, id, "u") {
		t.Fatalf("%d queued: not taken as a full queue", indexBacklog)
	}
}
