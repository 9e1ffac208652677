package index_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// aheadSetup opens an indexed store and a second, plain one on the same
// directory (another writer whose commits reach the index only when told:
// a process of its own, or a writer between its commit and its
// notification), with three messages in the INBOX and its index loaded.
func aheadSetup(t *testing.T) (ctx context.Context, x *index.Indexes, indexed, other store.Account, inbox int64) {
	t.Helper()
	ctx = context.Background()
	dir := t.TempDir()
	st, x := openIndexed(t, dir, nil, index.Options{})
	t.Cleanup(func() { st.Close() })
	if err := st.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	indexed, err := st.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { indexed.Close() })
	for i := range 3 {
		if _, err := indexed.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	info, err := indexed.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := indexed.Snapshot(ctx, info.ID); err != nil { // loads the index
		t.Fatal(err)
	}
	st2, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	other, err = st2.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return ctx, x, indexed, other, info.ID
}

// flagsOf fetches uid's flags and modseq through a.
func flagsOf(t *testing.T, ctx context.Context, a store.Account, mailbox int64, uid uint32, want store.Want) ([]string, uint64) {
	t.Helper()
	var flags []string
	var modseq uint64
	if err := a.Fetch(ctx, mailbox, []uint32{uid}, want, func(m *store.Message) error {
		flags, modseq = m.Flags, m.ModSeq
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return flags, modseq
}

// TestStoreSeesAnotherCommit: a STORE through the index that changes
// nothing itself but reads a message another writer just changed (its
// notification still on the way) must not leave the index believing it
// holds that writer's whole commit: the other message of that commit
// keeps its new flags when the notification arrives.
func TestStoreSeesAnotherCommit(t *testing.T) {
	ctx, x, indexed, other, inbox := aheadSetup(t)
	res, err := other.StoreFlags(ctx, inbox, []uint32{1, 2}, store.FlagsAdd, []string{`\Flagged`}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	changed := res.Updated[0].ModSeq
	// Through the index: UID 1 already has \Flagged, so nothing changes.
	if _, err := indexed.StoreFlags(ctx, inbox, []uint32{1}, store.FlagsAdd, []string{`\Flagged`}, 0, false); err != nil {
		t.Fatal(err)
	}
	x.MailboxChanged("u", inbox, changed) // the other writer's notification
	flags, modseq := flagsOf(t, ctx, indexed, inbox, 2, store.WantFlags)
	if !slices.Contains(flags, `\Flagged`) || modseq != changed {
		t.Fatalf("UID 2 through the index: flags %v modseq %d; want \\Flagged at %d", flags, modseq, changed)
	}
}

// TestFetchAfterStoreRead: once a FETCH answered from the store itself
// (items the index does not keep) showed a message at a modseq, a FETCH
// answered from the index does not show it older, even before the
// writer's notification arrives.
func TestFetchAfterStoreRead(t *testing.T) {
	ctx, _, indexed, other, inbox := aheadSetup(t)
	res, err := other.StoreFlags(ctx, inbox, []uint32{2}, store.FlagsAdd, []string{`\Seen`}, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	changed := res.Updated[0].ModSeq
	_, seen := flagsOf(t, ctx, indexed, inbox, 2, store.WantFlags|store.WantPreview)
	if seen != changed {
		t.Fatalf("FETCH with PREVIEW: modseq %d; want %d (read from the store)", seen, changed)
	}
	flags, modseq := flagsOf(t, ctx, indexed, inbox, 2, store.WantFlags)
	if modseq < seen || !slices.Contains(flags, `\Seen`) {
		t.Fatalf("FETCH FLAGS after it: %v at modseq %d; the store had shown %d", flags, modseq, seen)
	}
}

// TestExpungeSeesAnotherWritersDeleted: an EXPUNGE with nothing to
// remove is answered by the index (no write transaction), and one through
// the index removes a message another writer flagged \Deleted just
// before, though that writer's notification has not arrived (the index
// answers "nothing to expunge" only from the store's current head).
func TestExpungeSeesAnotherWritersDeleted(t *testing.T) {
	ctx, x, indexed, other, inbox := aheadSetup(t)
	before := x.Stats()
	if gone, err := indexed.Expunge(ctx, inbox, nil, true); err != nil || len(gone) != 0 {
		t.Fatalf("EXPUNGE with nothing deleted: %v, %v", gone, err)
	}
	if after := x.Stats(); after.Hits != before.Hits+1 || after.Misses != before.Misses {
		t.Fatalf("EXPUNGE with nothing deleted went to the store (index hits %d -> %d, misses %d -> %d)", before.Hits, after.Hits, before.Misses, after.Misses)
	}
	for _, step := range []struct{ flag, uids, want []uint32 }{
		{flag: []uint32{2, 3}, uids: []uint32{2}, want: []uint32{2}}, // UID EXPUNGE 2
		{flag: []uint32{1}, uids: nil, want: []uint32{1, 3}},         // EXPUNGE
	} {
		if _, err := other.StoreFlags(ctx, inbox, step.flag, store.FlagsAdd, []string{`\Deleted`}, 0, false); err != nil {
			t.Fatal(err)
		}
		if gone, err := indexed.Expunge(ctx, inbox, step.uids, true); err != nil || !slices.Equal(gone, step.want) {
			t.Fatalf("EXPUNGE %v after another writer's \\Deleted on %v: %v, %v; want %v", step.uids, step.flag, gone, err, step.want)
		}
	}
}
