package store

import "context"

// Private \Seen (RFC 4314 §5.2). On a mailbox shared with other users the
// owner's \Seen is the messages' own flag; every other user has their own
// \Seen, kept beside the message by PrivateSeenStore and merged into what
// that user sees by internal/store/privseen. The other flags are shared.

// SeenState is one user's own \Seen on one message of another user's
// mailbox.
type SeenState struct {
	UID  uint32
	Seen bool
	// ModSeq is the mailbox modseq at which this user's \Seen of the
	// message last changed: for that user the message's modseq is the
	// larger of it and the message's own.
	ModSeq uint64
}

// PrivateSeenStore keeps the \Seen of users other than the owner. A
// message without a state for a user is unseen by that user. States go
// with their message (expunge, mailbox deletion); COPY and MOVE do not
// carry them (privseen does, for its user).
type PrivateSeenStore interface {
	// PrivateSeen returns user's states among uids (nil: every message)
	// of the mailbox with a ModSeq above sinceModSeq, ascending by UID.
	PrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, sinceModSeq uint64) ([]SeenState, error)
	// SetPrivateSeen sets (seen) or clears user's \Seen on the existing
	// messages among uids and returns their states after the call,
	// ascending. The states that change take one new mailbox modseq:
	// HIGHESTMODSEQ moves on and the change is notified as any flag
	// change, while the messages' own flags and modseqs stay. user must
	// not be the owner (ErrNotAllowed).
	SetPrivateSeen(ctx context.Context, mailboxID int64, user string, uids []uint32, seen bool) ([]SeenState, error)
	// PrivateSeenCount returns how many of the mailbox's messages user
	// has seen and the lowest UID user has not (0: none), without reading
	// every state (STATUS, SELECT).
	PrivateSeenCount(ctx context.Context, mailboxID int64, user string) (seen, firstUnseen uint32, err error)
}
