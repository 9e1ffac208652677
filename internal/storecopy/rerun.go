package storecopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-imap/tern/internal/store"
)

// ErrTargetDiffers: a run found the user in the target (from an earlier
// run) but what is there is not a part of the source's current state,
// so continuing would leave stale rows under the source's counters, or
// wind a target in use back. Either the source changed after an earlier
// run copied the rows (a session or delivery between two runs, or the
// change that stopped one with ErrSourceChanged), or the target has been
// used since (rerun after the switch to it). Nothing of the user is
// written.
var ErrTargetDiffers = errors.New("the user's copy in the target does not match the source: " +
	"if the source changed since an earlier run, delete the user in the target (tern user del NAME --store URL) " +
	"and copy again while nothing uses the source; if the target has been in use since, do not copy over it")

// checkTarget compares what earlier runs left of the user in the target
// (da) with the source (sa, whose mailboxes are boxes) before anything
// of the user is written: every mailbox of the target must be in the
// source (a mailbox renamed or deleted in the source since, or created
// in the target, is not) with the same UIDVALIDITY (not re-created in
// the source since), not \Noselect in the source with messages in the
// target (checkNoSelect), its UIDNEXT and HIGHESTMODSEQ must not be above the source's, and the
// messages already copied (every UID up to the target's highest) must
// be the source's, with the same MODSEQs and flags. What passes is a
// state the source went through, which the run completes; a user not
// in the target yet has no mailboxes there and passes.
func checkTarget(ctx context.Context, sa, da store.Account, boxes []store.MailboxInfo) error {
	have, err := da.Mailboxes(ctx)
	if err != nil {
		return fmt.Errorf("list the target's mailboxes: %w", err)
	}
	byName := make(map[string]store.MailboxInfo, len(boxes))
	for _, b := range boxes {
		byName[b.Name] = b
	}
	for _, d := range have {
		s, ok := byName[d.Name]
		if !ok {
			return fmt.Errorf("%w (mailbox %q is in the target, not in the source)", ErrTargetDiffers, d.Name)
		}
		if s.UIDValidity != d.UIDValidity {
			return fmt.Errorf("%w (mailbox %q has UIDVALIDITY %d in the target, %d in the source: re-created in the source since, or not copied from it)",
				ErrTargetDiffers, d.Name, d.UIDValidity, s.UIDValidity)
		}
		if err := checkNoSelect(ctx, da, s, d); err != nil {
			return err
		}
		if s.NoSelect || d.NoSelect {
			continue
		}
		if err := checkMailbox(ctx, sa, da, s.ID, d.ID); err != nil {
			return fmt.Errorf("mailbox %q: %w", d.Name, err)
		}
	}
	return nil
}

// checkNoSelect refuses a mailbox the source has deleted down to a
// \Noselect parent (its messages gone, its id and UIDVALIDITY kept)
// while the target's copy still holds messages: the run would only mark
// it \Noselect and keep them, hidden, in the quota's count.
func checkNoSelect(ctx context.Context, da store.Account, s, d store.MailboxInfo) error {
	if !s.NoSelect || d.NoSelect {
		return nil
	}
	st, err := da.Status(ctx, d.Name)
	if err != nil {
		return fmt.Errorf("read the target's %q: %w", d.Name, err)
	}
	if st.Messages > 0 {
		return fmt.Errorf("%w (mailbox %q was deleted in the source, leaving a \\Noselect parent; the target's copy holds %d messages)",
			ErrTargetDiffers, d.Name, st.Messages)
	}
	return nil
}

// checkMailbox compares one mailbox of the target with the source's
// (checkTarget).
func checkMailbox(ctx context.Context, sa, da store.Account, srcID, dstID int64) error {
	dc, err := da.Changes(ctx, dstID, 0, 0)
	if err != nil {
		return fmt.Errorf("read the target: %w", err)
	}
	sc, err := sa.Changes(ctx, srcID, 0, 0)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	if dc.UIDNext > sc.UIDNext || dc.HighestModSeq > sc.HighestModSeq {
		return fmt.Errorf("%w (the target's UIDNEXT %d and HIGHESTMODSEQ %d are ahead of the source's %d and %d)",
			ErrTargetDiffers, dc.UIDNext, dc.HighestModSeq, sc.UIDNext, sc.HighestModSeq)
	}
	var last uint32
	if n := len(dc.New); n > 0 {
		last = dc.New[n-1].UID
	}
	src := sc.New
	n := 0
	for n < len(src) && src[n].UID <= last {
		n++
	}
	if diff := firstDifference(src[:n], dc.New); diff != "" {
		return fmt.Errorf("%w (%s)", ErrTargetDiffers, diff)
	}
	return nil
}

// firstDifference describes the first message where the source's (src)
// and the target's (dst) lists, both ascending by UID, differ; "" when
// they do not.
func firstDifference(src, dst []store.MessageMeta) string {
	for i := 0; i < len(src) || i < len(dst); i++ {
		switch {
		case i >= len(dst) || (i < len(src) && src[i].UID < dst[i].UID):
			return fmt.Sprintf("UID %d is in the source, not in the target", src[i].UID)
		case i >= len(src) || dst[i].UID < src[i].UID:
			return fmt.Sprintf("UID %d is in the target, not in the source", dst[i].UID)
		case src[i].ModSeq != dst[i].ModSeq || !sameFlags(src[i].Flags, dst[i].Flags):
			return fmt.Sprintf("UID %d has MODSEQ %d and flags %v in the target, MODSEQ %d and flags %v in the source",
				src[i].UID, dst[i].ModSeq, dst[i].Flags, src[i].ModSeq, src[i].Flags)
		}
	}
	return ""
}

// sameFlags reports whether a and b hold the same flags, in any order
// and spelling (flags and keywords are case-insensitive, RFC 9051
// section 2.3.2, and the stores need not list them in one order).
func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	fold := func(fs []string) []string {
		out := make([]string, len(fs))
		for i, f := range fs {
			out[i] = strings.ToLower(f)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(fold(a), fold(b))
}
