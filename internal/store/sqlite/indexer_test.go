package sqlite

import "testing"

// TestIndexerSchedule: a user's indexing waits until the mail is left
// alone for indexQuiet (each kick starts the wait again, the start-up
// backfill does not cut it short), and starts at once when indexBacklog
// messages wait.
func TestIndexerSchedule(t *testing.T) {
	x := &textIndexer{todo: map[int64]*indexWork{}, wake: make(chan struct{}, 1)}
	waiting := func(what string) {
		t.Helper()
		if id, _, wait, ok := x.next(); ok || wait <= indexQuiet/2 || wait > indexQuiet {
			t.Fatalf("%s: user %d taken (%v), wait %v; want a wait of about %v", what, id, ok, wait, indexQuiet)
		}
	}
	x.kick(1, "u", 1)
	waiting("after a new message")
	x.schedule(1, "u", 0, 0)
	waiting("after the backfill")
	x.kick(2, "v", indexBacklog)
	if id, name, _, ok := x.next(); !ok || id != 2 || name != "v" {
		t.Fatalf("a full backlog: next = %d %q %v; want user 2 at once", id, name, ok)
	}
	waiting("user 1 still")
	x.kick(1, "u", indexBacklog-1)
	if id, _, _, ok := x.next(); !ok || id != 1 {
		t.Fatalf("a backlog reached over several kicks: next = %d %v; want user 1 at once", id, ok)
	}
	if id, _, wait, ok := x.next(); ok || wait >= 0 {
		t.Fatalf("nothing queued: next = %d %v, wait %v", id, ok, wait)
	}
	x.kick(1, "u", 0)
	waiting("a kick after a drain")
}
