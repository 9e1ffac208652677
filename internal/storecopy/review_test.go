package storecopy

// Review tests (adversarial review of tern store copy): each one shows a
// way a client synchronised against the source sees something else on
// the copy, or a rerun that does not give the exact copy it promises.

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tern-imap/tern/internal/blob"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/postgres"
)

// TestReviewRerunAfterSourceChangedBetweenRuns: a copy interrupted after
// its first batch, then the source changes (the source was served again
// between two attempts: a flag on a message already copied, an expunge
// of another already copied) and the same command is run again. The
// rerun must either refuse (as ErrSourceChanged does within a run) or
// give the exact copy; it succeeds with the first run's stale rows under
// the source's new HIGHESTMODSEQ, so a client never hears of the changes.
func TestReviewRerunAfterSourceChangedBetweenRuns(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	n := 0
	_, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}, BatchMessages: 4, afterBatch: func() error {
		if n++; n == 1 {
			return errStop
		}
		return nil
	}})
	if !errors.Is(err, errStop) {
		t.Fatalf("interrupted copy: %v", err)
	}
	a, err := src.Account(ctx, "alice")
	must(t, err)
	defer a.Close()
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsAdd, []string{`\Flagged`}, 0, false)
	must(t, err)
	_, err = a.Expunge(ctx, inbox.ID, []uint32{2}, false)
	must(t, err)

	if _, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}, BatchMessages: 4}); err != nil {
		t.Logf("rerun refused: %v", err) // acceptable
		return
	}
	sa, err := src.Account(ctx, "alice")
	must(t, err)
	defer sa.Close()
	da, err := dst.Account(ctx, "alice")
	must(t, err)
	defer da.Close()
	compareAccounts(t, sa, da)
}

// TestReviewRerunAfterErrSourceChanged: the copy stops with
// ErrSourceChanged, whose message says to delete the user in the target
// first; run again without doing so (as README's "run the same command
// again" invites), it succeeds and keeps the stale message.
func TestReviewRerunAfterErrSourceChanged(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	b, err := src.Account(ctx, "bob")
	must(t, err)
	defer b.Close()
	inbox, err := b.Mailbox(ctx, "INBOX")
	must(t, err)
	changed := false
	_, err = Copy(ctx, src, dst, Options{Users: []string{"bob"}, BatchMessages: 1, afterBatch: func() error {
		if !changed {
			changed = true
			_, err := b.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsAdd, []string{`\Seen`}, 0, false)
			return err
		}
		return nil
	}})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("first run: %v", err)
	}
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"bob"}}); err != nil {
		t.Logf("rerun refused: %v", err) // acceptable
		return
	}
	da, err := dst.Account(ctx, "bob")
	must(t, err)
	defer da.Close()
	compareAccounts(t, b, da)
}

// TestReviewChangeAfterMailboxCopiedUndetected: a delivery into a
// mailbox whose copy is finished, while a later mailbox of the same user
// is copied: the copy succeeds and the target lacks the message
// (the help text says "a mailbox that changes meanwhile stops the copy").
func TestReviewChangeAfterMailboxCopiedUndetected(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	a, err := src.Account(ctx, "alice")
	must(t, err)
	defer a.Close()
	n := 0
	// INBOX is copied first (one batch), then Archive/2026.
	_, err = Copy(ctx, src, dst, Options{Users: []string{"alice"}, afterBatch: func() error {
		if n++; n == 2 {
			_, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(500, " (late)")}})
			return err
		}
		return nil
	}})
	if err != nil {
		t.Logf("copy refused: %v", err) // acceptable
		return
	}
	ss, err := a.Status(ctx, "INBOX")
	must(t, err)
	da, err := dst.Account(ctx, "alice")
	must(t, err)
	defer da.Close()
	ds, err := da.Status(ctx, "INBOX")
	must(t, err)
	if ss.Messages != ds.Messages || ss.UIDNext != ds.UIDNext || ss.HighestModSeq != ds.HighestModSeq {
		t.Errorf("copy reported success, but INBOX differs: source %d messages UIDNEXT %d HIGHESTMODSEQ %d, copy %d/%d/%d",
			ss.Messages, ss.UIDNext, ss.HighestModSeq, ds.Messages, ds.UIDNext, ds.HighestModSeq)
	}
}

// TestReviewPrivateSeen: bob's own \Seen on alice's shared INBOX
// (RFC 4314 private \Seen, both backends keep it in private_seen) is
// not copied: after the move bob sees read mail as unread, without a
// modseq change that would tell his client.
func TestReviewPrivateSeen(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	a, err := src.Account(ctx, "alice")
	must(t, err)
	defer a.Close()
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.SetACL(ctx, "INBOX", "bob", store.FlagsReplace, "lrs")
	must(t, err)
	_, err = a.SetPrivateSeen(ctx, inbox.ID, "bob", []uint32{1, 2, 3}, true)
	must(t, err)
	_, err = Copy(ctx, src, dst, Options{})
	must(t, err)
	da, err := dst.Account(ctx, "alice")
	must(t, err)
	defer da.Close()
	dinbox, err := da.Mailbox(ctx, "INBOX")
	must(t, err)
	sv, err := a.PrivateSeen(ctx, inbox.ID, "bob", nil, 0)
	must(t, err)
	dv, err := da.PrivateSeen(ctx, dinbox.ID, "bob", nil, 0)
	must(t, err)
	same(t, "bob's private \\Seen on alice's INBOX", sv, dv)
}

// TestReviewKeywordOnlyInMailboxList: a keyword that stays in the
// mailbox's keyword list (FLAGS/PERMANENTFLAGS) but no copied message
// carries (removed again, or its message expunged) is written into
// mailbox_keywords only; keywordsSQL joins keywords, which has no row
// for it, so the copy's list lacks it.
func TestReviewKeywordOnlyInMailboxList(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	must(t, src.CreateUser(ctx, "carol", "hash-c"))
	a, err := src.Account(ctx, "carol")
	must(t, err)
	defer a.Close()
	_, err = a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(1, "")}, {Body: msg(2, ""), Flags: []string{"$Junk"}}})
	must(t, err)
	inbox, err := a.Mailbox(ctx, "INBOX")
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsAdd, []string{"Work"}, 0, false)
	must(t, err)
	_, err = a.StoreFlags(ctx, inbox.ID, []uint32{1}, store.FlagsRemove, []string{"Work"}, 0, false)
	must(t, err)
	_, err = a.Expunge(ctx, inbox.ID, []uint32{2}, false)
	must(t, err)
	ss, err := a.Status(ctx, "INBOX")
	must(t, err)
	if !slices.Contains(ss.Keywords, "Work") || !slices.Contains(ss.Keywords, "$Junk") {
		t.Fatalf("source keyword list %v (test premise)", ss.Keywords)
	}
	_, err = Copy(ctx, src, dst, Options{})
	must(t, err)
	da, err := dst.Account(ctx, "carol")
	must(t, err)
	defer da.Close()
	ds, err := da.Status(ctx, "INBOX")
	must(t, err)
	same(t, "INBOX keyword list", ss.Keywords, ds.Keywords)
}

// TestReviewRerunAfterCutover: the same command run again once the
// target is in use (a user moved earlier named again in a later --user
// run, or a rerun after the switch): LoadHistory writes the source's
// UIDNEXT and HIGHESTMODSEQ over the target's higher ones, so both go
// backwards and the next APPEND reuses a UID.
func TestReviewRerunAfterCutover(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	_, err := Copy(ctx, src, dst, Options{Users: []string{"bob"}})
	must(t, err)
	da, err := dst.Account(ctx, "bob")
	must(t, err)
	defer da.Close()
	_, err = da.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(600, " (after the move)")}})
	must(t, err)
	before, err := da.Status(ctx, "INBOX")
	must(t, err)
	if _, err := Copy(ctx, src, dst, Options{Users: []string{"bob"}}); err != nil {
		t.Logf("rerun refused: %v", err) // acceptable
		return
	}
	after, err := da.Status(ctx, "INBOX")
	must(t, err)
	if after.UIDNext < before.UIDNext || after.HighestModSeq < before.HighestModSeq {
		t.Errorf("rerun moved the live target back: UIDNEXT %d -> %d, HIGHESTMODSEQ %d -> %d",
			before.UIDNext, after.UIDNext, before.HighestModSeq, after.HighestModSeq)
	}
	if _, err := da.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(601, " (next)")}}); err != nil {
		t.Errorf("append after the rerun: %v", err)
	}
}

// TestReviewInterruptedCheckClean: an interrupted copy into a blob
// store, run again, leaves usage, body reference counts and the text
// queue exact (the target's Check finds nothing). Passes: a control.
func TestReviewInterruptedCheckClean(t *testing.T) {
	ctx := context.Background()
	blobs, err := blob.OpenFile(t.TempDir())
	must(t, err)
	src, dst := openPairWith(t, postgres.Options{Blobs: blobs})
	fillSource(t, src)
	// bob gets alice's bodies too: bodies shared between users.
	b, err := src.Account(ctx, "bob")
	must(t, err)
	_, err = b.Append(ctx, "INBOX", []store.NewMessage{{Body: msg(1, "")}, {Body: msg(2, "")}})
	must(t, err)
	b.Close()
	for _, stopAfter := range []int{2, 5} {
		n := 0
		_, err := Copy(ctx, src, dst, Options{BatchMessages: 3, afterBatch: func() error {
			if n++; n == stopAfter {
				return errStop
			}
			return nil
		}})
		if !errors.Is(err, errStop) {
			t.Fatalf("interrupted copy: %v", err)
		}
	}
	_, err = Copy(ctx, src, dst, Options{BatchMessages: 3})
	must(t, err)
	compareStores(t, src, dst)
	problems, err := dst.Check(ctx, false)
	must(t, err)
	if len(problems) > 0 {
		t.Errorf("check after an interrupted copy: %q", problems)
	}
}
