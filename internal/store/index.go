package store

import (
	"context"
	"errors"
	"time"
)

// IndexSource is implemented by the Accounts of backends that can feed the
// shared in-memory mailbox index (internal/index). The index is a cache
// validated by modseq: it loads a mailbox once with IndexDelta(id, 0, 0)
// and then catches up with IndexDelta(id, itsModSeq, itsLastUID).
type IndexSource interface {
	// AccountID identifies the account for the life of the backend: a
	// user deleted and created again under the same name gets a new one.
	AccountID() int64
	// MailboxHead is one mailbox's identity and change counters, by id,
	// or by name when id is 0 (a point lookup, cheap enough per command).
	// Returns ErrNoSuchMailbox.
	MailboxHead(ctx context.Context, id int64, name string) (MailboxHead, error)
	// IndexDelta returns, as one consistent snapshot: the mailbox head; the
	// messages with UID > sinceUID and those with UID <= sinceUID whose
	// modseq exceeds sinceModSeq (ascending by UID); the UIDs expunged with
	// a modseq above sinceModSeq (none when sinceModSeq is 0, a full load);
	// and the mailbox's keyword list.
	IndexDelta(ctx context.Context, id int64, sinceModSeq uint64, sinceUID uint32) (IndexDelta, error)
}

// DeltaNotifier is an optional extension of Notifier. A backend that
// knows exactly what one of its own commits did to a mailbox hands it
// over after the commit and before MailboxChanged, so the in-memory index
// applies it without a query. from is the mailbox's HIGHESTMODSEQ before
// the commit, d.Head its state after; d.Rows are the messages the commit
// added, d.Expunged those it removed. d.Keywords is not set: a commit
// that adds keywords to the mailbox sends no delta. A receiver whose view
// is not exactly at from must ignore the delta (MailboxChanged follows
// and it catches up through IndexDelta). acctID is the account's
// IndexSource.AccountID.
type DeltaNotifier interface {
	MailboxDelta(user string, acctID, mailboxID int64, from uint64, d *IndexDelta)
}

// MailboxHead is what a mailbox's row says, without its messages.
type MailboxHead struct {
	MailboxInfo
	UIDNext       uint32
	HighestModSeq uint64
	RecentMark    uint32 // UIDs above it are \Recent for the next session that claims them
}

// IndexRow is one message as the mailbox index keeps it.
type IndexRow struct {
	UID          uint32
	ModSeq       uint64
	Flags        []string // as MessageMeta.Flags; may be shared between rows: do not modify
	Size         int64
	InternalDate time.Time
	SaveDate     time.Time
	SentDate     time.Time // zero if the message has no usable Date header
	EmailID      string
	ThreadID     string
}

// ExpungedUID is one expunged UID and the modseq of its expunge.
type ExpungedUID struct {
	UID    uint32
	ModSeq uint64
}

// IndexDelta is what IndexSource.IndexDelta returns.
type IndexDelta struct {
	Head     MailboxHead
	Rows     []IndexRow
	Expunged []ExpungedUID // ascending by UID
	Keywords []string
}

// FlagMatcher is implemented by Accounts that can tell which messages'
// flags satisfy a predicate without building each message: the mailbox
// index evaluates match once per distinct flag list (a mailbox has few)
// and then scans its columns. SEARCH UNSEEN of 100,000 messages then
// costs a pass over an array instead of 100,000 candidates.
type FlagMatcher interface {
	// MatchFlags returns, ascending, those of uids (ascending) whose
	// message exists and whose flags (system flags and keywords, as
	// Fetch gives them) satisfy match, with their modseqs. match must not
	// keep flags. An Account that wraps another and cannot answer returns
	// ErrNoFlagMatch; the caller then fetches the messages.
	MatchFlags(ctx context.Context, mailboxID int64, uids []uint32, match func(flags []string) bool) ([]uint32, []uint64, error)
}

// ErrNoFlagMatch: this Account cannot answer MatchFlags.
var ErrNoFlagMatch = errors.New("flag matching not available")
