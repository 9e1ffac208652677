package storecopy

import (
	"context"
	"errors"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestReview3RerunAfterDeleteToNoselect: a mailbox copied with its
// messages, then deleted in the source while it has a child (it stays as
// a \Noselect parent, its messages gone, same id and UIDVALIDITY). The
// rerun must refuse (ErrTargetDiffers) or end with an exact copy; it
// skips the mailbox in checkTarget (s.NoSelect) and LoadMailbox only
// sets noselect, so the old messages stay in the target, hidden under a
// \Noselect mailbox and counted in the quota usage.
func TestReview3RerunAfterDeleteToNoselect(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	must(t, src.CreateUser(ctx, "dave", "hash-d"))
	a, err := src.Account(ctx, "dave")
	must(t, err)
	defer a.Close()
	must(t, a.CreateMailbox(ctx, "Work", ""))
	must(t, a.CreateMailbox(ctx, "Work/Sub", ""))
	_, err = a.Append(ctx, "Work", []store.NewMessage{{Body: msg(1, "")}, {Body: msg(2, "")}})
	must(t, err)
	_, err = Copy(ctx, src, dst, Options{})
	must(t, err)

	must(t, a.DeleteMailbox(ctx, "Work")) // a \Noselect parent now, its messages gone
	_, err = Copy(ctx, src, dst, Options{})
	if errors.Is(err, ErrTargetDiffers) {
		return
	}
	must(t, err)
	da, err := dst.Account(ctx, "dave")
	must(t, err)
	defer da.Close()
	sq, err := a.Quota(ctx)
	must(t, err)
	dq, err := da.Quota(ctx)
	must(t, err)
	if sq.MessagesUsed != dq.MessagesUsed || sq.StorageUsed != dq.StorageUsed {
		t.Errorf("rerun passed, but the target's usage is %d messages, %d bytes; the source's %d, %d (the deleted mailbox's messages stay in the target under \\Noselect)",
			dq.MessagesUsed, dq.StorageUsed, sq.MessagesUsed, sq.StorageUsed)
	}
}

// TestReview3RerunAfterACLRevoked: a completed copy, then in the source
// bob's rights on alice's Archive/2026 revoked, a subscription dropped
// and the active Sieve script deactivated (none moves a modseq). The
// rerun passes checkTarget, and copyAccountState only sets what the
// source has, never removes: bob keeps "lr", the subscription and the
// active script stay in the target. The rerun must refuse or end with
// the source's state.
func TestReview3RerunAfterACLRevoked(t *testing.T) {
	ctx := context.Background()
	src, dst := openPair(t)
	fillSource(t, src)
	_, err := Copy(ctx, src, dst, Options{Users: []string{"alice"}})
	must(t, err)
	a, err := src.Account(ctx, "alice")
	must(t, err)
	defer a.Close()
	_, err = a.SetACL(ctx, "Archive/2026", "bob", store.FlagsReplace, "")
	must(t, err)
	must(t, a.SetSubscribed(ctx, "Archive/2026", false))
	must(t, a.SetActiveSieveScript(ctx, "")) // e.g. a vacation script switched off
	_, err = Copy(ctx, src, dst, Options{Users: []string{"alice"}})
	if errors.Is(err, ErrTargetDiffers) {
		return
	}
	must(t, err)
	da, err := dst.Account(ctx, "alice")
	must(t, err)
	defer da.Close()
	sacl, err := a.ACL(ctx, "Archive/2026")
	must(t, err)
	dacl, err := da.ACL(ctx, "Archive/2026")
	must(t, err)
	if len(sacl) != len(dacl) {
		t.Errorf("rerun passed; Archive/2026 ACL in the source %+v, in the target %+v (the revoked entry survives)", sacl, dacl)
	}
	ss, err := a.Subscriptions(ctx)
	must(t, err)
	ds, err := da.Subscriptions(ctx)
	must(t, err)
	if len(ss) != len(ds) {
		t.Errorf("rerun passed; subscriptions in the source %q, in the target %q", ss, ds)
	}
	_, sn, err := a.ActiveSieveScript(ctx)
	must(t, err)
	_, dn, err := da.ActiveSieveScript(ctx)
	must(t, err)
	if sn != dn {
		t.Errorf("rerun passed; active Sieve script in the source %q, in the target %q", sn, dn)
	}
}
