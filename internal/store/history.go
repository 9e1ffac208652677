package store

import (
	"context"
	"time"
)

// MailboxHistory is what a backend remembers of a mailbox beyond its
// current messages, and what a client synchronised earlier (CONDSTORE,
// QRESYNC) relies on: the counters, the \Recent mark, the tombstones of
// expunged UIDs with their modseqs, the first UID each modseq
// allocated and other users' private \Seen of its messages. Copying it exactly to another store (tern store copy) lets
// such a client resynchronise there without a full resync.
type MailboxHistory struct {
	UIDNext       uint32
	HighestModSeq uint64
	RecentMark    uint32
	Expunged      []ExpungedRange // ascending by Lo
	UIDLog        []UIDLogEntry   // ascending by ModSeq
	// PrivateSeen are the \Seen states of users other than the owner
	// (PrivateSeenStore), ascending by User, then UID.
	PrivateSeen []PrivateSeenEntry
}

// PrivateSeenEntry is one user's own \Seen state of one message.
type PrivateSeenEntry struct {
	User string
	SeenState
}

// ExpungedRange is one tombstone: UIDs Lo..Hi expunged at ModSeq.
type ExpungedRange struct {
	Lo, Hi uint32
	ModSeq uint64
}

// UIDLogEntry records that ModSeq allocated UIDs from FirstUID on.
type UIDLogEntry struct {
	ModSeq   uint64
	FirstUID uint32
}

// HistorySource is implemented by accounts that can hand out their
// mailboxes' history (both backends'): the source side of a store
// copy.
type HistorySource interface {
	MailboxHistory(ctx context.Context, mailboxID int64) (MailboxHistory, error)
	// LastUIDValidity is the last UIDVALIDITY the account gave a mailbox
	// (a counter: deleted mailboxes count too).
	LastUIDValidity(ctx context.Context) (uint32, error)
}

// CopiedMessage is one message as a store copy writes it: its identity
// (UID, MODSEQ, ids) and state kept exactly as the source has them.
type CopiedMessage struct {
	UID          uint32
	ModSeq       uint64
	Flags        []string
	InternalDate time.Time
	SaveDate     time.Time
	EmailID      string
	ThreadID     string
	Body         []byte
}
