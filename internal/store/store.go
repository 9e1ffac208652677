// Package store defines tern's storage interface and domain types. Handlers
// talk to this interface only; backends (store/sqlite, later store/postgres)
// implement it and must pass store/storetest.
//
// Mailbox names here are always UTF-8 with "/" as the hierarchy separator;
// INBOX is always spelled "INBOX". Converting from wire form (modified
// UTF-7, case of INBOX) is the caller's job.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Errors a backend returns (wrapped with context is fine; match with errors.Is).
var (
	ErrNoSuchUser    = errors.New("no such user")
	ErrUserExists    = errors.New("user already exists")
	ErrNoSuchMailbox = errors.New("no such mailbox")
	ErrMailboxExists = errors.New("mailbox already exists")
	ErrNotAllowed    = errors.New("operation not allowed on this mailbox") // e.g. DELETE INBOX, RENAME onto own child
	ErrHasChildren   = errors.New("mailbox has inferior hierarchical names")
	ErrNoSelect      = errors.New("mailbox is not selectable")
	ErrOverQuota     = errors.New("quota exceeded")
	ErrInvalidName   = errors.New("invalid mailbox name")
	ErrUIDValidity   = errors.New("uidvalidity changed") // mailbox was deleted/recreated under a session
	ErrNoSuchMessage = errors.New("no such message")     // e.g. OpenBody of a UID expunged meanwhile
	// ErrInvalidMetadataEntry: an entry name that RFC 5464 §3.2 does not allow.
	ErrInvalidMetadataEntry = errors.New("invalid metadata entry name")
	// ErrMetadataTooMany: SetMetadata would take the user over
	// MetadataMaxEntries entries or MetadataMaxTotal bytes of values.
	ErrMetadataTooMany = errors.New("too many metadata entries")
	// Sieve script storage (SieveStore).
	ErrNoSuchScript      = errors.New("no such sieve script")
	ErrScriptExists      = errors.New("sieve script already exists")
	ErrScriptActive      = errors.New("sieve script is active")
	ErrInvalidScriptName = errors.New("invalid sieve script name")
	ErrTooManyScripts    = errors.New("too many sieve scripts")
	ErrScriptTooLarge    = errors.New("sieve script too large")
)

// Separator is the hierarchy delimiter of mailbox names.
const Separator = "/"

// Store is the whole backend: users plus one Account per user.
type Store interface {
	CreateUser(ctx context.Context, name, passwordHash string) error
	DeleteUser(ctx context.Context, name string) error
	SetPasswordHash(ctx context.Context, name, passwordHash string) error
	// PasswordHash returns ErrNoSuchUser for unknown users.
	PasswordHash(ctx context.Context, name string) (string, error)
	Users(ctx context.Context) ([]string, error)
	// Sharers lists, sorted, the users other than user whose mailbox ACLs
	// may have an entry for user or for Anyone: a cheap superset (an
	// entry removed since may leave a name behind), for finding what was
	// shared with user without opening every account. A backend shared
	// by several processes may answer from a cache that the change
	// signals of ACL changes clear; a grant whose signal was lost may
	// then be missing for a bounded time (postgres: a minute).
	Sharers(ctx context.Context, user string) ([]string, error)
	// Account opens one user's mail. Returns ErrNoSuchUser. Release with Close.
	Account(ctx context.Context, user string) (Account, error)
	Close() error
}

// Pinger is implemented by stores that can tell cheaply whether they are
// reachable (readiness checks): one trivial query, no user data.
type Pinger interface {
	Ping(ctx context.Context) error
}

// MailboxInfo describes one mailbox.
type MailboxInfo struct {
	ID          int64
	Name        string
	UIDValidity uint32
	SpecialUse  string // `\Sent`, `\Trash`, ... or ""
	NoSelect    bool   // kept only as a parent of other mailboxes (\Noselect)
}

// ObjectID is the mailbox's RFC 8474 MAILBOXID: stable across RENAME,
// never reused (it includes the UIDVALIDITY).
func (m *MailboxInfo) ObjectID() string {
	return fmt.Sprintf("F%x%08x", m.ID, m.UIDValidity)
}

// MailboxStatus is what STATUS and SELECT report.
type MailboxStatus struct {
	MailboxInfo
	Messages      uint32
	Unseen        uint32 // messages without \Seen
	Deleted       uint32 // messages with \Deleted
	Recent        uint32 // UIDs above the recent mark (not yet claimed by a SELECT)
	UIDNext       uint32
	HighestModSeq uint64
	Size          int64    // sum of message sizes (STATUS SIZE)
	DeletedSize   int64    // sum of the sizes of messages with \Deleted (STATUS DELETED-STORAGE)
	FirstUnseen   uint32   // UID of the lowest message without \Seen; 0 if none
	Keywords      []string // keywords in use in this mailbox
}

// MessageMeta is the compact per-message state a session keeps in view.
type MessageMeta struct {
	UID    uint32
	ModSeq uint64
	Flags  []string // system flags in canonical case (\Seen, \Answered, \Flagged, \Deleted, \Draft), then keywords; sorted
}

// NewMessage is one message to append.
type NewMessage struct {
	Body         []byte    // raw RFC 5322 bytes, CRLF line endings
	Flags        []string  // \Recent is ignored
	InternalDate time.Time // zero: now
	// ClaimRecent (read on the first message of an Append) asks the
	// backend to claim \Recent for the caller up to the last new message,
	// in the Append's own transaction, as ClaimRecent would: the appending
	// session has the mailbox selected read-write and announces the new
	// messages itself, and then needs no write of its own to claim them.
	// AppendResult.RecentFrom reports the first UID claimed.
	ClaimRecent bool
}

// AppendResult reports where messages landed (UIDPLUS APPENDUID).
type AppendResult struct {
	MailboxID   int64
	UIDValidity uint32
	UIDs        []uint32
	// RecentFrom is the first UID whose \Recent this Append claimed
	// (NewMessage.ClaimRecent): every UID from it through the last of UIDs
	// is the caller's; 0 when nothing was claimed.
	RecentFrom uint32
}

// CopyResult reports COPY/MOVE (UIDPLUS COPYUID). SrcUIDs[i] became DestUIDs[i].
type CopyResult struct {
	DestMailboxID   int64
	DestUIDValidity uint32
	SrcUIDs         []uint32
	DestUIDs        []uint32
	// For MOVE: the source mailbox's modseq after the expunge.
	SrcModSeq uint64
}

// FlagOp is how StoreFlags changes flags.
type FlagOp int

const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
	// FlagsReplaceKeepSeen replaces every flag but \Seen, which stays as
	// it is (\Seen in the flags is ignored): a STORE FLAGS by a user
	// whose \Seen on the mailbox is their own (PrivateSeenStore).
	FlagsReplaceKeepSeen
)

// StoreResult is what a StoreFlags call did.
type StoreResult struct {
	// Updated lists every message in the request whose flags are now as
	// requested (changed or not), with its current flags and modseq. Messages
	// whose flags really changed got a new modseq.
	Updated []MessageMeta
	// Modified lists UIDs skipped because their modseq exceeded
	// UnchangedSince (RFC 7162 MODIFIED).
	Modified []uint32
	// Keywords is the mailbox's keyword list after the call if it grew; nil otherwise.
	Keywords []string
	// ModSeq is the modseq this call gave the messages it changed; 0 when
	// it changed none. Updated may hold messages at other modseqs above
	// the caller's last look: another writer's changes, read by this call.
	ModSeq uint64
}

// ChangeSet is what changed in a mailbox since a session's last look.
type ChangeSet struct {
	HighestModSeq uint64
	UIDNext       uint32
	New           []MessageMeta // UID > sinceUID, ascending
	Changed       []MessageMeta // UID <= sinceUID with ModSeq > sinceModSeq, ascending
	Expunged      []uint32      // UIDs expunged with modseq > sinceModSeq, ascending
	Keywords      []string      // the mailbox's current keyword list
}

// Want selects which Message fields Fetch fills.
type Want uint32

const (
	WantFlags Want = 1 << iota // Flags, ModSeq
	WantDates                  // InternalDate, SaveDate, SentDate
	WantSize                   // Size
	WantEnvelope
	WantBody          // non-extensible BODY
	WantBodyStructure // BODYSTRUCTURE
	WantIDs           // EmailID, ThreadID
	WantThreading     // MessageID, InReplyTo, References
	WantHeader        // Header: the raw top-level header block (for SEARCH header keys)
	// WantRepeated is a hint, not a field: the caller will ask for the
	// same fields of the whole mailbox again (SORT, THREAD), so a cache in
	// front of the store may keep Envelope and the threading fields.
	// Backends ignore it.
	WantRepeated
	WantPreview // Preview (FETCH PREVIEW, RFC 8970)
	// WantSubjectOnly is a hint, not a field: of Envelope the caller
	// needs only the subject key (THREAD), so a cache may answer
	// BaseSubject and leave Envelope nil, and answer WantThreading with
	// ThreadKeys. Backends ignore it.
	WantSubjectOnly
)

// Message is one message as Fetch returns it. Only fields selected by Want
// are filled (UID always).
type Message struct {
	UID           uint32
	ModSeq        uint64
	Flags         []string
	InternalDate  time.Time
	SaveDate      time.Time
	SentDate      time.Time
	Size          int64
	Envelope      []byte // IMAP-encoded ENVELOPE, from message.Parse at delivery
	Body          []byte // IMAP-encoded BODY
	BodyStructure []byte // IMAP-encoded BODYSTRUCTURE
	// Header is the raw top-level header block, kept at delivery so header
	// searches need not open the message (WantHeader; nil if not stored).
	Header []byte
	// Preview is the start of the message's text, computed at delivery
	// (search.Preview); nil when the message was stored before previews
	// were kept and the indexer has not reached it yet.
	Preview  *string
	EmailID  string
	ThreadID string
	// Threading (WantThreading): message ids without angle brackets, as
	// message.Parse found them at delivery.
	MessageID  string
	InReplyTo  []string
	References []string
	// BaseSubject is the SORT/THREAD key of the subject (RFC 5256 §2.1,
	// internal/sort.Subject) when a cache already knows it (the mailbox
	// index does, for WantRepeated fetches); otherwise its Known is false
	// and SORT computes it from Envelope.
	BaseSubject SubjectKey
	// ThreadKeys are the threading ids hashed, when a cache already has
	// them (the mailbox index, for fetches with WantSubjectOnly and
	// WantThreading); then MessageID, InReplyTo and References are empty.
	ThreadKeys ThreadKeys
}

// ThreadKeys are a message's threading ids as THREAD=REFERENCES compares
// them (internal/sort.ThreadKeysOf): its Message-ID and its parent chain
// (References, or else the first In-Reply-To id), each hashed.
type ThreadKeys struct {
	Known bool
	ID    uint64 // 0: no Message-ID
	Refs  []uint64
}

// SubjectKey is a subject as SORT and THREAD compare it: the casemapped
// base subject, and whether the subject marked a reply or forward.
type SubjectKey struct {
	Key   string
	Reply bool
	Known bool
}

// Quota is one user's limits and current usage (RFC 9208 quota root ""
// covering all mailboxes). A limit of 0 means no limit.
type Quota struct {
	StorageLimit int64 // bytes
	MessageLimit int64 // messages
	StorageUsed  int64 // bytes: sum of the sizes of all messages in all mailboxes
	MessagesUsed int64 // messages in all mailboxes
}

// ErrNoTextIndex is returned by Account.SearchText when the backend keeps
// no full-text index.
var ErrNoTextIndex = errors.New("no full-text index")

// TextField selects parts of a message's searchable text (search.Doc).
type TextField uint16

const (
	TextHeader  TextField = 1 << iota // decoded top-level header lines
	TextAddress                       // normalized addresses of From/To/Cc/Bcc
	TextBody                          // decoded text parts
	TextMIME                          // MIME headers of body parts

	// TextFrom, TextTo, TextCc, TextBcc and TextSubject each ask, alone,
	// for one header field: which messages have such a field whose value
	// (as TextHeader has it) or, for the address fields, normalized
	// addresses (as TextAddress has them) contain the needle, field by
	// field (search.FieldHolds on search.Doc.Fields): exactly SEARCH
	// FROM..BCC's and SUBJECT's matches, for a needle
	// search.ExactFieldNeedle accepts.
	TextFrom
	TextTo
	TextCc
	TextBcc
	TextSubject

	// TextOneField is the one-field queries.
	TextOneField = TextFrom | TextTo | TextCc | TextBcc | TextSubject
)

// TextQuery asks which messages' text contains Needle (case-folded by
// search.Fold) in any of Fields. The backend compares the stored text
// byte for byte, so its answer for an indexed message is exact.
//
// With Fuzzy (RFC 6203), a message matches when its text in Fields holds
// enough of the needle's grams (search.FuzzyScore, the same function the
// scan applies) and the result carries each match's relevancy.
type TextQuery struct {
	Fields TextField
	Needle []byte
	Fuzzy  bool
}

// TextResult answers a SearchText call. Hits[i] lists, ascending, the
// UIDs of the indexed messages of the mailbox whose text contains
// qs[i].Needle in one of its fields; Pending lists, ascending, the UIDs
// whose content is not (or cannot be) indexed: the caller must read
// those messages. Every other message of the mailbox matches no query.
//
// Scores[i], for a fuzzy query, holds the relevancy (1..100) of each of
// Hits[i], in the same order; nil for exact queries.
//
// Covered, when not nil, lists ascending the mailbox's UIDs as the answer
// saw them: a UID of the caller's view outside it (expunged meanwhile by
// another session, not yet reported to the caller's) is neither a hit
// nor a non-match, and the caller reads it as it reads Pending ones.
type TextResult struct {
	Hits    [][]uint32
	Scores  [][]uint8
	Pending []uint32
	Covered []uint32
}

// FileBody is a Body kept in an ordinary file, whose bytes the server may
// let the kernel copy to a socket (sendfile) instead of reading them.
type FileBody interface {
	Body
	OSFile() *os.File
}

// Body is an open message body.
type Body interface {
	io.ReaderAt
	io.Closer
	Size() int64
	// Parts is the message's encoded part tree (message.Parts), read
	// together with the body's location, so that FETCH of a body section
	// needs no second lookup; nil if the message was stored without one.
	Parts() []byte
}

// Account is one user's mail. All names are UTF-8 with Separator.
// Every mutating call is durable before it returns nil.
type Account interface {
	User() string

	// Mailboxes lists all mailboxes, sorted by name (INBOX first).
	Mailboxes(ctx context.Context) ([]MailboxInfo, error)
	Mailbox(ctx context.Context, name string) (MailboxInfo, error)
	// CreateMailbox creates name and any missing parents. specialUse may be "".
	CreateMailbox(ctx context.Context, name, specialUse string) error
	// DeleteMailbox deletes name and its messages. A mailbox with children
	// becomes NoSelect instead; deleting a NoSelect mailbox with children
	// returns ErrHasChildren. INBOX returns ErrNotAllowed.
	DeleteMailbox(ctx context.Context, name string) error
	// RenameMailbox renames old and all its children. Renaming INBOX moves
	// its messages into a new mailbox and leaves INBOX empty.
	RenameMailbox(ctx context.Context, oldName, newName string) error
	Subscriptions(ctx context.Context) ([]string, error)
	SetSubscribed(ctx context.Context, name string, subscribed bool) error
	Status(ctx context.Context, name string) (MailboxStatus, error)

	// Snapshot returns the mailbox status and the UIDs of all its messages,
	// ascending, taken atomically (SELECT).
	Snapshot(ctx context.Context, mailboxID int64) (MailboxStatus, []uint32, error)
	// ClaimRecent marks all UIDs up to upTo as no longer recent for future
	// sessions and returns the lowest UID that this caller may treat as
	// \Recent (UIDs >= it and <= upTo).
	ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error)
	// Changes reports what changed since the caller's modseq/UID marks.
	Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64, sinceUID uint32) (ChangeSet, error)
	// Vanished returns, ascending, the UIDs expunged with a modseq above
	// sinceModSeq that already existed at sinceModSeq — the ones a client
	// synchronised up to sinceModSeq may know (QRESYNC VANISHED (EARLIER)).
	Vanished(ctx context.Context, mailboxID int64, sinceModSeq uint64) ([]uint32, error)
	// Fetch calls fn for each existing message among uids (ascending), in
	// UID order, with the fields selected by want. Missing UIDs are skipped.
	Fetch(ctx context.Context, mailboxID int64, uids []uint32, want Want, fn func(*Message) error) error
	// OpenBody opens a message's raw bytes. A ctx from KeepBody marks a
	// read by a client (FETCH), which a cache in front of the store may
	// keep for the next; scans (SEARCH, export, copies) read without it.
	OpenBody(ctx context.Context, mailboxID int64, uid uint32) (Body, error)
	// SearchText answers text SEARCH keys from the user's full-text index
	// (see TextQuery). A backend without one returns ErrNoTextIndex; the
	// caller then scans.
	SearchText(ctx context.Context, mailboxID int64, qs []TextQuery) (TextResult, error)
	// SavePreviews keeps FETCH PREVIEW texts (RFC 8970) the caller
	// computed for messages of the mailbox whose Preview was nil (stored
	// before previews were kept), by UID; a message that has one by now,
	// or is gone, is left alone.
	SavePreviews(ctx context.Context, mailboxID int64, previews map[uint32]string) error

	Append(ctx context.Context, mailbox string, msgs []NewMessage) (AppendResult, error)
	StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op FlagOp, flags []string, unchangedSince uint64, hasUnchangedSince bool) (StoreResult, error)
	// Expunge removes uids (or, if onlyDeleted, those of them carrying
	// \Deleted; uids nil means every message) and returns what it removed.
	Expunge(ctx context.Context, mailboxID int64, uids []uint32, onlyDeleted bool) ([]uint32, error)
	Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (CopyResult, error)
	Move(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (CopyResult, error)

	// Quota returns the user's limits and exact current usage. Append and
	// Copy (and Move, should it ever grow usage) fail with ErrOverQuota,
	// checked atomically with the write, when they would exceed a limit.
	Quota(ctx context.Context) (Quota, error)
	// SetQuota sets the user's limits (0: no limit; negative is invalid).
	SetQuota(ctx context.Context, storageLimit, messageLimit int64) error

	// GetMetadata returns the annotations (RFC 5464) of mailbox, or of
	// the server when mailbox is "", named by entries (see
	// NormMetadataEntry) and, with depth, their descendants: each entry
	// once, sorted by name, names in lower case. Entries without a value
	// are left out. Returns ErrNoSuchMailbox and ErrInvalidMetadataEntry.
	GetMetadata(ctx context.Context, mailbox string, entries []string, depth MetadataDepth) ([]MetadataEntry, error)
	// SetMetadata sets (non-nil Value, which may be empty) and removes
	// (nil Value) entries of mailbox ("" for the server) all at once, or
	// none of them. A value over MetadataMaxValueSize returns a
	// *MetadataTooLargeError; exceeding MetadataMaxEntries or
	// MetadataMaxTotal for the user returns ErrMetadataTooMany; both are
	// checked in the write transaction. An entry name that is only a
	// namespace ("/private", "/shared") is invalid here. A mailbox's
	// entries are removed with it by DeleteMailbox and follow it through
	// RenameMailbox (except INBOX's, which stay with INBOX).
	SetMetadata(ctx context.Context, mailbox string, entries []MetadataEntry) error

	SieveStore
	SieveStateStore
	PrivateSeenStore
	// ACL returns mailbox's access control list (RFC 4314), sorted by
	// identifier; the owner's implicit rights are not in it. Returns
	// ErrNoSuchMailbox.
	ACL(ctx context.Context, mailbox string) ([]ACLEntry, error)
	// SetACL changes identifier's entry on mailbox: op (FlagsReplace,
	// FlagsAdd, FlagsRemove) with rights, which must be canonical
	// (NormRights), and returns the rights the entry has now. An entry
	// left without rights is removed. The identifier is checked with
	// ValidIdentifier. A mailbox's ACL goes with it (DeleteMailbox),
	// follows it through RenameMailbox, and a new mailbox starts with a
	// copy of its nearest existing parent's ACL (CreateMailbox).
	SetACL(ctx context.Context, mailbox, identifier string, op FlagOp, rights string) (string, error)
	// SharedMailboxes lists the mailboxes whose ACL has an entry for one
	// of identifiers, sorted by name, each with those entries.
	SharedMailboxes(ctx context.Context, identifiers []string) ([]SharedMailbox, error)

	Close() error
}

// Notifier is told after every committed change to a mailbox. Backends call
// it; the notify hub implements it.
type Notifier interface {
	MailboxChanged(user string, mailboxID int64, modSeq uint64)
}

// WatchedMailbox is a mailbox that sessions of this process wait on for
// change notifications (selected, IDLE, NOTIFY on that mailbox), with the
// highest modseq the process has seen for it (0: not known).
type WatchedMailbox struct {
	User      string
	MailboxID int64
	ModSeq    uint64
}

// WatchLister is implemented by notifiers that can list the mailboxes
// their sessions wait on. A backend whose change signals can be lost
// (several processes on one database: a signal in flight when a process
// dies, or sent while a listener reconnects) compares those mailboxes'
// heads with the database now and then, and calls MailboxChanged where
// the database is ahead.
type WatchLister interface {
	WatchedMailboxes() []WatchedMailbox
}

// UserWatchLister is implemented by notifiers that can list the users
// whose sessions wait on every one of their mailboxes and on their
// mailbox list (IMAP NOTIFY's personal mailboxes), and the owners whose
// mailbox lists sessions watch for what they share. A backend that
// checks the watched mailboxes (WatchLister) checks those users'
// mailboxes and mailbox lists too.
type UserWatchLister interface {
	WatchedUsers() []string
}

// MailboxListNotifier is implemented by notifiers that also want to hear
// about changes to a user's mailbox list: a mailbox created, deleted or
// renamed, or a subscription changed (IMAP NOTIFY MailboxName and
// SubscriptionChange). Backends call it, when their Notifier implements
// it, after such a change commits.
type MailboxListNotifier interface {
	MailboxListChanged(user string)
}

// ACLNotifier is implemented by notifiers that also want to hear that an
// ACL entry changed: owner's entry for identifier (a user name or Anyone)
// on one of owner's mailboxes was set, changed or removed, so the
// grantee's view of other users' mailboxes (IMAP NOTIFY) may have
// changed. Backends call it, when their Notifier implements it, after
// SetACL commits.
type ACLNotifier interface {
	ACLChanged(owner, identifier string)
}

// ResetNotifier is implemented by notifiers that keep what they learned
// from the store's answers and change signals (the mailbox index). A
// backend whose database may have undone committed changes calls
// StoreReset when it may have: a PostgreSQL server that crashed or
// restarted loses the relaxed commits (store.fsync = "optimized") its
// WAL had not written yet, a failover to an asynchronous standby loses
// its lag (durable commits too, UIDs included), and the next change of
// such a mailbox takes a lost modseq again, so nothing learned before may
// be trusted. The postgres store calls it when its listening connection
// breaks, when it listens again, and when a new connection finds the
// server started anew (postgres/restart.go). It repairs the node's own
// view only: clients that were told of a lost change keep it.
type ResetNotifier interface {
	StoreReset()
}

// MetadataEntry is one annotation (RFC 5464): an entry name such as
// "/private/comment" and its value, any bytes. A nil Value passed to
// SetMetadata removes the entry.
type MetadataEntry struct {
	Name  string
	Value []byte
}

// MetadataDepth is GETMETADATA's DEPTH option (RFC 5464 §4.2.2).
type MetadataDepth int

const (
	MetadataDepth0        MetadataDepth = iota // the entry only
	MetadataDepth1                             // the entry and its children
	MetadataDepthInfinity                      // the entry and all its descendants
)

// Limits on annotations that every backend enforces (RFC 5464 §4.3
// leaves them to the server).
const (
	MetadataMaxValueSize = 64 << 10 // bytes of one value
	MetadataMaxEntries   = 1000     // entries of one user (server and all mailboxes)
	MetadataMaxTotal     = 1 << 20  // bytes of all values of one user
)

// MetadataTooLargeError is SetMetadata's answer to a value larger than
// Max bytes (IMAP: NO [METADATA MAXSIZE Max]).
type MetadataTooLargeError struct {
	Entry string
	Size  int
	Max   int
}

func (e *MetadataTooLargeError) Error() string {
	return fmt.Sprintf("metadata entry %q: value of %d bytes is over the limit of %d", e.Entry, e.Size, e.Max)
}

// NormMetadataEntry checks an entry name against RFC 5464 §3.2 and
// returns it in lower case (entry names are case-insensitive). A valid
// name starts with "/private" or "/shared", followed by zero or more
// "/"-separated non-empty components of ASCII other than "*", "%",
// 0x00-0x19 and 0x7f; it does not end with "/".
func NormMetadataEntry(name string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("entry %q: %s: %w", name, why, ErrInvalidMetadataEntry)
	}
	if len(name) > 1024 {
		return bad("too long")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= 0x19 || c >= 0x7f || c == '*' || c == '%' {
			return bad("character not allowed")
		}
	}
	if strings.Contains(name, "//") || strings.HasSuffix(name, "/") {
		return bad("empty component")
	}
	low := strings.ToLower(name)
	if low != "/private" && low != "/shared" && !strings.HasPrefix(low, "/private/") && !strings.HasPrefix(low, "/shared/") {
		return bad("not under /private or /shared")
	}
	return low, nil
}

// keepBodyKey is the context key of KeepBody.
type keepBodyKey struct{}

// KeepBody returns ctx marked as a client's read of a message, whose
// bytes a cache in front of the store (the mailbox index) may keep.
func KeepBody(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepBodyKey{}, true)
}

// KeepsBody reports whether ctx came from KeepBody.
func KeepsBody(ctx context.Context) bool {
	keep, _ := ctx.Value(keepBodyKey{}).(bool)
	return keep
}
