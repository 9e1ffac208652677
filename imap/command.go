// Package imap holds the IMAP wire format: the command parser, the typed
// commands it produces, the response writer, sequence sets, search keys and
// modified UTF-7. It knows nothing about storage or sessions.
package imap

import "time"

// Command is one parsed client command. Name is upper case and never carries
// the "UID " prefix: "UID FETCH" parses to Name "FETCH" with UID set.
// Args holds one of the *XxxArgs types below, chosen by Name, or nil for
// commands without arguments (CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK,
// CLOSE, UNSELECT, IDLE, NAMESPACE, UNAUTHENTICATE, and EXPUNGE without
// UID).
type Command struct {
	Tag  string
	Name string
	UID  bool
	Args any
}

// LoginArgs is LOGIN user password.
type LoginArgs struct {
	Username string
	Password string
}

// CompressArgs is COMPRESS mechanism (RFC 4978); Mechanism is upper case.
type CompressArgs struct {
	Mechanism string
}

// AuthenticateArgs is AUTHENTICATE mech [initial-response].
// InitialResponse is base64-decoded; HasInitialResponse distinguishes an
// absent response from "=" (empty).
type AuthenticateArgs struct {
	Mechanism          string // upper case
	InitialResponse    []byte
	HasInitialResponse bool
}

// EnableArgs is ENABLE cap...; capability names upper case.
type EnableArgs struct {
	Capabilities []string
}

// IDArgs is ID NIL or ID (key value ...). Params is nil for NIL.
type IDArgs struct {
	Params map[string]*string
}

// MailboxArgs is used by DELETE, SUBSCRIBE, UNSUBSCRIBE. Mailbox is the raw
// astring as sent (not yet decoded from modified UTF-7: the session decides).
type MailboxArgs struct {
	Mailbox string
}

// SelectArgs is SELECT/EXAMINE mailbox [(params)].
type SelectArgs struct {
	Mailbox   string
	CondStore bool
	QResync   *QResyncParams
}

// QResyncParams is the QRESYNC select parameter (RFC 7162 §3.2.5).
type QResyncParams struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   *NumSet // may be nil
	SeqMatchSeq *NumSet // known-sequence-set; nil if absent
	SeqMatchUID *NumSet // known-uid-set; nil if absent
}

// CreateArgs is CREATE mailbox [(USE (\Special ...))].
type CreateArgs struct {
	Mailbox    string
	SpecialUse []string // e.g. `\Sent`, as sent
}

// RenameArgs is RENAME old new.
type RenameArgs struct {
	Old, New string
}

// ListArgs covers LIST (with RFC 5258 LIST-EXTENDED) and LSUB.
type ListArgs struct {
	LSub          bool
	SelectOptions []string // upper case: SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE
	Reference     string
	Patterns      []string      // one or more (parenthesised list allowed)
	ReturnOptions []string      // upper case: SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS, METADATA
	StatusItems   []string      // upper case, when RETURN (STATUS (...)) given
	Metadata      *ListMetadata // RETURN (METADATA ...), RFC 9590; nil if absent
}

// StatusArgs is STATUS mailbox (items).
type StatusArgs struct {
	Mailbox string
	Items   []string // upper case: MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ ...
}

// AppendMessage is one message of APPEND (several with MULTIAPPEND).
type AppendMessage struct {
	Flags   []string
	Date    time.Time // zero if absent
	Literal []byte
	Binary  bool // sent as literal8 (~{n})
	UTF8    bool // sent as UTF8 (~{n}) per RFC 6855
	// Parts is the CATENATE list (RFC 4469); when non-nil, Literal is
	// empty and the message is built from the parts.
	Parts []CatenatePart
}

// AppendArgs is APPEND mailbox [flags] [date] literal ...
type AppendArgs struct {
	Mailbox  string
	Messages []AppendMessage
}

// ReplaceArgs is [UID] REPLACE num mailbox message (RFC 8508). Num is a
// message sequence number, or a UID under UID REPLACE; 0 stands for "*".
type ReplaceArgs struct {
	Num     uint32
	Mailbox string
	Message AppendMessage
}

// FetchArgs is [UID] FETCH set items [(modifiers)].
type FetchArgs struct {
	Set   NumSet
	Items []FetchItem
	// Modifiers (RFC 7162)
	ChangedSince    uint64 // 0 if absent
	HasChangedSince bool
	Vanished        bool
}

// FetchItemKind names a FETCH data item.
type FetchItemKind int

const (
	FetchUID FetchItemKind = iota
	FetchFlags
	FetchInternalDate
	FetchRFC822Size
	FetchEnvelope
	FetchBody          // BODY (no section): non-extensible bodystructure
	FetchBodyStructure // BODYSTRUCTURE
	FetchRFC822        // RFC822 == BODY[]
	FetchRFC822Header  // RFC822.HEADER == BODY.PEEK[HEADER]
	FetchRFC822Text    // RFC822.TEXT == BODY[TEXT]
	FetchBodySection   // BODY[...] / BODY.PEEK[...]
	FetchBinarySection // BINARY[...] / BINARY.PEEK[...]
	FetchBinarySize    // BINARY.SIZE[...]
	FetchModSeq        // MODSEQ (RFC 7162)
	FetchEmailID       // EMAILID (RFC 8474)
	FetchThreadID      // THREADID (RFC 8474)
	FetchSaveDate      // SAVEDATE (RFC 8514)
	FetchPreview       // PREVIEW (RFC 8970)
)

// FetchItem is one requested data item. Macros (ALL, FAST, FULL) are
// expanded by the parser.
type FetchItem struct {
	Kind    FetchItemKind
	Section Section  // for FetchBodySection, FetchBinarySection, FetchBinarySize
	Peek    bool     // BODY.PEEK / BINARY.PEEK
	Partial *Partial // <offset.count>, nil if absent
	Lazy    bool     // PREVIEW (LAZY): NIL is fine when no preview is at hand
}

// Section is a body section spec: [part.part.SPECIFIER (fields)].
type Section struct {
	Part      []int    // empty for the whole message
	Specifier string   // "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME" (upper case)
	Fields    []string // for HEADER.FIELDS[.NOT], as sent
}

// Partial is <offset.count>.
type Partial struct {
	Offset uint32
	Count  uint32
}

// StoreOp is the STORE action.
type StoreOp int

const (
	StoreReplace StoreOp = iota // FLAGS
	StoreAdd                    // +FLAGS
	StoreRemove                 // -FLAGS
)

// StoreArgs is [UID] STORE set [(UNCHANGEDSINCE n)] op[.SILENT] flags.
type StoreArgs struct {
	Set               NumSet
	Op                StoreOp
	Silent            bool
	Flags             []string
	UnchangedSince    uint64
	HasUnchangedSince bool
}

// CopyArgs is [UID] COPY|MOVE set mailbox.
type CopyArgs struct {
	Set     NumSet
	Mailbox string
}

// ExpungeArgs is UID EXPUNGE set.
type ExpungeArgs struct {
	Set NumSet
}

// SearchArgs is [UID] SEARCH [RETURN (opts)] [CHARSET x] keys.
type SearchArgs struct {
	Return    []string      // upper case: MIN MAX COUNT ALL SAVE RELEVANCY ...; nil when no RETURN
	HasReturn bool          // RETURN given (ESEARCH form), possibly with empty list
	Partial   *PartialRange // RETURN (PARTIAL range), RFC 5267 §4.4
	Charset   string        // "" if absent
	Key       *SearchKey
}

// SearchKeyOp names a search key.
type SearchKeyOp string

// Search key operators. Flag keys (ANSWERED, DELETED, ...) use their names.
const (
	SearchAll               SearchKeyOp = "ALL"
	SearchAnd               SearchKeyOp = "AND"    // Children: all must match (implicit list / parenthesised list)
	SearchOr                SearchKeyOp = "OR"     // Children: exactly two
	SearchNot               SearchKeyOp = "NOT"    // Children: exactly one
	SearchFuzzy             SearchKeyOp = "FUZZY"  // Children: exactly one, matched fuzzily (RFC 6203)
	SearchSeqSet            SearchKeyOp = "SEQSET" // Set: message sequence numbers
	SearchUID               SearchKeyOp = "UID"    // Set: UIDs
	SearchAnswered          SearchKeyOp = "ANSWERED"
	SearchDeleted           SearchKeyOp = "DELETED"
	SearchDraft             SearchKeyOp = "DRAFT"
	SearchFlagged           SearchKeyOp = "FLAGGED"
	SearchSeen              SearchKeyOp = "SEEN"
	SearchRecent            SearchKeyOp = "RECENT"
	SearchNew               SearchKeyOp = "NEW"
	SearchOld               SearchKeyOp = "OLD"
	SearchUnanswered        SearchKeyOp = "UNANSWERED"
	SearchUndeleted         SearchKeyOp = "UNDELETED"
	SearchUndraft           SearchKeyOp = "UNDRAFT"
	SearchUnflagged         SearchKeyOp = "UNFLAGGED"
	SearchUnseen            SearchKeyOp = "UNSEEN"
	SearchKeyword           SearchKeyOp = "KEYWORD"   // Str
	SearchUnkeyword         SearchKeyOp = "UNKEYWORD" // Str
	SearchBcc               SearchKeyOp = "BCC"       // Str
	SearchCc                SearchKeyOp = "CC"
	SearchFrom              SearchKeyOp = "FROM"
	SearchTo                SearchKeyOp = "TO"
	SearchSubject           SearchKeyOp = "SUBJECT"
	SearchBody              SearchKeyOp = "BODY"
	SearchText              SearchKeyOp = "TEXT"
	SearchHeader            SearchKeyOp = "HEADER" // Field, Str
	SearchBefore            SearchKeyOp = "BEFORE" // Date (internal date, day granularity)
	SearchOn                SearchKeyOp = "ON"
	SearchSince             SearchKeyOp = "SINCE"
	SearchSentBefore        SearchKeyOp = "SENTBEFORE"
	SearchSentOn            SearchKeyOp = "SENTON"
	SearchSentSince         SearchKeyOp = "SENTSINCE"
	SearchLarger            SearchKeyOp = "LARGER"  // Num
	SearchSmaller           SearchKeyOp = "SMALLER" // Num
	SearchModSeq            SearchKeyOp = "MODSEQ"  // Num (entry name/type ignored)
	SearchOlder             SearchKeyOp = "OLDER"   // Num seconds (RFC 5032 WITHIN)
	SearchYounger           SearchKeyOp = "YOUNGER"
	SearchEmailID           SearchKeyOp = "EMAILID"  // Str
	SearchThreadID          SearchKeyOp = "THREADID" // Str
	SearchSaveDateBefore    SearchKeyOp = "SAVEDBEFORE"
	SearchSaveDateOn        SearchKeyOp = "SAVEDON"
	SearchSaveDateSince     SearchKeyOp = "SAVEDSINCE"
	SearchSaveDateSupported SearchKeyOp = "SAVEDATESUPPORTED"
)

// SearchKey is a node of the search expression tree.
type SearchKey struct {
	Op       SearchKeyOp
	Children []*SearchKey
	Str      string    // string argument (already decoded from the given charset to UTF-8)
	Field    string    // HEADER field name
	Date     time.Time // date argument (midnight UTC of the given day)
	Num      uint64
	Set      NumSet // SEQSET/UID; may be the "$" saved result
}
