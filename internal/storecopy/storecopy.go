// Package storecopy copies a whole mail store into another one, keeping
// every identity a synchronised client relies on: users with their
// password hashes, mailboxes with UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
// the \Recent mark, expunge tombstones and the UID log, messages with
// their UIDs, MODSEQs, flags, INTERNALDATE, SAVEDATE, email and thread
// ids, other users' private \Seen of shared mailboxes, and the account
// state around them (subscriptions, quota limits, annotations, Sieve
// scripts, ACLs). A client synchronised with CONDSTORE or QRESYNC
// against the source resynchronises against the copy as if nothing had
// happened (tern store copy).
//
// The source (sqlite or postgres) is read through store.Account plus
// store.HistorySource; the target writes rows with the source's
// identities (Target, implemented by the postgres store). A copy is
// restartable: messages go in batches, each one transaction, in
// ascending UID order, and the target skips what an earlier run already
// committed, so a rerun after a crash continues where it stopped and
// never duplicates a message. A rerun first compares what the target
// holds of a user with the source (checkTarget) and refuses
// (ErrTargetDiffers) when it is not a state the source went through:
// rows the source changed since, or a target used since the copy. The
// source must not change while it is copied (stop tern serve first, or
// keep the users copied out of it): a mailbox found changed at the end
// of its copy, or of its user's, stops the copy (ErrSourceChanged).
package storecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// ErrSourceChanged: a mailbox of the source changed while it was copied
// (a session or a delivery on a source that is still served), found at
// the end of its copy or at the end of its user's. The target's copy of
// it is not exact and the copy stops there (at a mailbox's end, before
// recording its history). Run it again while nothing uses the source:
// if the change touched messages already copied, that run refuses
// (ErrTargetDiffers) and the user must be deleted in the target first.
var ErrSourceChanged = errors.New("the source changed during the copy; run the copy again while nothing uses the source " +
	"(if it then refuses because the target differs, delete the user in the target first)")

// Target is a store that can take copied rows with their identities.
type Target interface {
	store.Store
	// LoadUser creates the user (no mailboxes) unless it exists.
	LoadUser(ctx context.Context, name, passwordHash string) error
	// LoadMailbox creates or finds the mailbox and returns its id and
	// the highest UID already copied into it.
	LoadMailbox(ctx context.Context, user string, info store.MailboxInfo) (int64, uint32, error)
	// LoadMessages writes a batch (ascending UIDs) in one transaction,
	// skipping UIDs at or below the highest one already there.
	LoadMessages(ctx context.Context, user string, mailboxID int64, msgs []store.CopiedMessage) error
	// LoadHistory sets the mailbox's counters, tombstones, UID log,
	// other users' private \Seen and keyword list.
	LoadHistory(ctx context.Context, mailboxID int64, h store.MailboxHistory, keywords []string) error
	// FinishLoad sets the UIDVALIDITY counter and recounts quota usage.
	FinishLoad(ctx context.Context, user string, lastUIDValidity uint32) error
}

// Options tunes a copy.
type Options struct {
	// Progress receives progress lines (nil: none).
	Progress io.Writer
	// Users, when not empty, are the only users copied (each must
	// exist in the source): moving some users to another database.
	Users []string
	// BatchMessages and BatchBytes bound one transaction's messages
	// (defaults 500 and 32 MiB; a larger message goes alone).
	BatchMessages int
	BatchBytes    int64
	// afterBatch, in tests, runs after each committed batch; an error
	// stops the copy there (an interrupted copy).
	afterBatch func() error
}

// Stats is what a copy did.
type Stats struct {
	Users, Mailboxes int
	Messages         int   // copied by this run
	Skipped          int   // already in the target from an earlier run
	Bytes            int64 // of the messages copied by this run
}

// wantCopied is what Fetch reads of each message for the copy.
const wantCopied = store.WantFlags | store.WantDates | store.WantIDs

// copier is one run of Copy.
type copier struct {
	src   store.Store
	dst   Target
	opts  Options
	stats Stats
	total int // messages in the source
	start time.Time
	last  time.Time // last progress line
}

// Copy copies every user of src into dst.
func Copy(ctx context.Context, src store.Store, dst Target, opts Options) (Stats, error) {
	if opts.BatchMessages <= 0 {
		opts.BatchMessages = 500
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 32 << 20
	}
	c := &copier{src: src, dst: dst, opts: opts, start: time.Now()}
	users, err := src.Users(ctx)
	if err != nil {
		return c.stats, fmt.Errorf("store copy: list users: %w", err)
	}
	if len(opts.Users) > 0 {
		if users, err = pickUsers(users, opts.Users); err != nil {
			return c.stats, fmt.Errorf("store copy: %w", err)
		}
	}
	if c.total, err = countMessages(ctx, src, users); err != nil {
		return c.stats, fmt.Errorf("store copy: %w", err)
	}
	c.progress(true, "copying %d users, %d messages", len(users), c.total)
	for _, u := range users {
		if err := c.copyUser(ctx, u); err != nil {
			return c.stats, fmt.Errorf("store copy: user %q: %w", u, err)
		}
		c.stats.Users++
	}
	c.progress(true, "done: %d users, %d mailboxes, %d messages copied (%s), %d already there, in %s",
		c.stats.Users, c.stats.Mailboxes, c.stats.Messages, megabytes(c.stats.Bytes), c.stats.Skipped, time.Since(c.start).Round(time.Millisecond))
	return c.stats, nil
}

// pickUsers returns the users of all named in want, in all's order,
// or an error naming one that all lacks.
func pickUsers(all, want []string) ([]string, error) {
	named := make(map[string]bool, len(want))
	for _, u := range want {
		if !slices.Contains(all, u) {
			return nil, fmt.Errorf("user %q: %w", u, store.ErrNoSuchUser)
		}
		named[u] = true
	}
	return slices.DeleteFunc(slices.Clone(all), func(u string) bool { return !named[u] }), nil
}

// countMessages sums the messages of every selectable mailbox.
func countMessages(ctx context.Context, src store.Store, users []string) (int, error) {
	n := 0
	for _, u := range users {
		err := withAccount(ctx, src, u, func(a store.Account) error {
			boxes, err := a.Mailboxes(ctx)
			if err != nil {
				return err
			}
			for _, b := range boxes {
				if b.NoSelect {
					continue
				}
				st, err := a.Status(ctx, b.Name)
				if err != nil {
					return err
				}
				n += int(st.Messages)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("count messages of %q: %w", u, err)
		}
	}
	return n, nil
}

// withAccount runs fn on user's account of st and closes it.
func withAccount(ctx context.Context, st store.Store, user string, fn func(store.Account) error) error {
	a, err := st.Account(ctx, user)
	if err != nil {
		return err
	}
	defer a.Close()
	return fn(a)
}

func (c *copier) copyUser(ctx context.Context, user string) error {
	hash, err := c.src.PasswordHash(ctx, user)
	if err != nil {
		return err
	}
	if err := c.dst.LoadUser(ctx, user, hash); err != nil {
		return err
	}
	return withAccount(ctx, c.src, user, func(sa store.Account) error {
		hs, ok := sa.(store.HistorySource)
		if !ok {
			return errors.New("the source store cannot hand out mailbox histories (UIDs and modseqs would not be kept)")
		}
		boxes, err := sa.Mailboxes(ctx)
		if err != nil {
			return err
		}
		if err := withAccount(ctx, c.dst, user, func(da store.Account) error {
			return checkTarget(ctx, sa, da, boxes)
		}); err != nil {
			return err
		}
		copied := make(map[string]store.MailboxHistory, len(boxes))
		for _, b := range boxes {
			h, err := c.copyMailbox(ctx, sa, hs, b)
			if err != nil {
				return fmt.Errorf("mailbox %q: %w", b.Name, err)
			}
			copied[b.Name] = h
			c.stats.Mailboxes++
		}
		if err := withAccount(ctx, c.dst, user, func(da store.Account) error {
			return copyAccountState(ctx, sa, da, boxes)
		}); err != nil {
			return err
		}
		if err := checkUnchanged(ctx, sa, boxes, copied); err != nil {
			return err
		}
		last, err := hs.LastUIDValidity(ctx)
		if err != nil {
			return err
		}
		return c.dst.FinishLoad(ctx, user, last)
	})
}

// checkUnchanged reads the user's mailbox list and every mailbox's
// UIDNEXT and HIGHESTMODSEQ in the source again once all of them are
// copied: a change to a mailbox after its own copy finished (a delivery
// into INBOX while another mailbox was copied, a mailbox created,
// deleted or renamed) is ErrSourceChanged, which each mailbox's own
// check at its end cannot see.
func checkUnchanged(ctx context.Context, sa store.Account, boxes []store.MailboxInfo, copied map[string]store.MailboxHistory) error {
	now, err := sa.Mailboxes(ctx)
	if err != nil {
		return err
	}
	if !slices.Equal(now, boxes) {
		return fmt.Errorf("%w (the mailbox list changed)", ErrSourceChanged)
	}
	for _, b := range boxes {
		if b.NoSelect {
			continue
		}
		st, err := sa.Status(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("mailbox %q: %w", b.Name, err)
		}
		h := copied[b.Name]
		if st.UIDNext != h.UIDNext || st.HighestModSeq != h.HighestModSeq {
			return fmt.Errorf("mailbox %q: %w (UIDNEXT %d, HIGHESTMODSEQ %d copied; %d, %d now)",
				b.Name, ErrSourceChanged, h.UIDNext, h.HighestModSeq, st.UIDNext, st.HighestModSeq)
		}
	}
	return nil
}

// copyMailbox creates the mailbox in the target, copies the messages it
// lacks and then the mailbox's history, which it returns.
func (c *copier) copyMailbox(ctx context.Context, sa store.Account, hs store.HistorySource, b store.MailboxInfo) (store.MailboxHistory, error) {
	dstID, lastUID, err := c.dst.LoadMailbox(ctx, sa.User(), b)
	if err != nil {
		return store.MailboxHistory{}, err
	}
	var keywords []string
	var seen store.MailboxStatus
	if !b.NoSelect {
		st, uids, err := sa.Snapshot(ctx, b.ID)
		if err != nil {
			return store.MailboxHistory{}, err
		}
		seen = st
		skip := 0
		for skip < len(uids) && uids[skip] <= lastUID {
			skip++
		}
		c.stats.Skipped += skip
		if err := c.copyMessages(ctx, sa, b, dstID, uids[skip:]); err != nil {
			return store.MailboxHistory{}, err
		}
		now, err := sa.Status(ctx, b.Name)
		if err != nil {
			return store.MailboxHistory{}, err
		}
		keywords = now.Keywords
	}
	h, err := hs.MailboxHistory(ctx, b.ID)
	if err != nil {
		return store.MailboxHistory{}, err
	}
	if !b.NoSelect && h.HighestModSeq != seen.HighestModSeq {
		return store.MailboxHistory{}, fmt.Errorf("%w (HIGHESTMODSEQ %d when the copy began, %d now)", ErrSourceChanged, seen.HighestModSeq, h.HighestModSeq)
	}
	return h, c.dst.LoadHistory(ctx, dstID, h, keywords)
}

// copyMessages copies uids (ascending) of mailbox b in batches.
func (c *copier) copyMessages(ctx context.Context, sa store.Account, b store.MailboxInfo, dstID int64, uids []uint32) error {
	for len(uids) > 0 {
		n := min(len(uids), c.opts.BatchMessages)
		batch, err := readMessages(ctx, sa, b.ID, uids[:n], c.opts.BatchBytes)
		if err != nil {
			return err
		}
		if len(batch) == 0 { // all of them gone meanwhile
			uids = uids[n:]
			continue
		}
		if err := c.dst.LoadMessages(ctx, sa.User(), dstID, batch); err != nil {
			return err
		}
		// Continue after the last UID copied (readMessages may have
		// stopped early at the byte bound).
		lastUID := batch[len(batch)-1].UID
		for len(uids) > 0 && uids[0] <= lastUID {
			uids = uids[1:]
		}
		c.stats.Messages += len(batch)
		for _, m := range batch {
			c.stats.Bytes += int64(len(m.Body))
		}
		c.progress(false, "%s %s: %d/%d messages", sa.User(), b.Name, c.stats.Messages+c.stats.Skipped, c.total)
		if c.opts.afterBatch != nil {
			if err := c.opts.afterBatch(); err != nil {
				return err
			}
		}
	}
	return nil
}

// readMessages reads the messages among uids with their bodies, stopping
// once maxBytes are read (but always taking at least one).
func readMessages(ctx context.Context, sa store.Account, mailboxID int64, uids []uint32, maxBytes int64) ([]store.CopiedMessage, error) {
	var metas []store.Message
	if err := sa.Fetch(ctx, mailboxID, uids, wantCopied, func(m *store.Message) error {
		metas = append(metas, *m)
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]store.CopiedMessage, 0, len(metas))
	var size int64
	for _, m := range metas {
		if len(out) > 0 && size >= maxBytes {
			break
		}
		body, err := readBody(ctx, sa, mailboxID, m.UID)
		if errors.Is(err, store.ErrNoSuchMessage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		size += int64(len(body))
		out = append(out, store.CopiedMessage{UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags, InternalDate: m.InternalDate,
			SaveDate: m.SaveDate, EmailID: m.EmailID, ThreadID: m.ThreadID, Body: body})
	}
	return out, nil
}

// readBody reads a message's raw bytes.
func readBody(ctx context.Context, sa store.Account, mailboxID int64, uid uint32) ([]byte, error) {
	b, err := sa.OpenBody(ctx, mailboxID, uid)
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", uid, err)
	}
	defer b.Close()
	data := make([]byte, b.Size())
	if _, err := b.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("message %d: read body: %w", uid, err)
	}
	return data, nil
}

// progress writes a line; unless force, at most one a second.
func (c *copier) progress(force bool, format string, args ...any) {
	if c.opts.Progress == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(c.last) < time.Second {
		return
	}
	c.last = now
	fmt.Fprintf(c.opts.Progress, "store copy: "+format+"\n", args...)
}

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
