package sieve

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Options configures Compile.
type Options struct {
	// MaxScriptBytes bounds the script source (0: 1 MiB).
	MaxScriptBytes int
	// MaxNesting bounds the depth of blocks and tests (0: 32).
	MaxNesting int
	// Include loads scripts named by "include" at execution time; nil
	// makes every include fail (or be skipped with :optional).
	Include IncludeResolver
	// Extensions are the extensions a script may require; nil means all
	// of Supported().
	Extensions []string
}

// IncludeResolver returns the source of a script named by "include"
// (RFC 6609): a personal script of the user when global is false, an
// operator-wide one when true. A missing script is reported with an
// error wrapping ErrScriptNotFound.
type IncludeResolver interface {
	Resolve(ctx context.Context, name string, global bool) ([]byte, error)
}

// ErrScriptNotFound is wrapped by IncludeResolver errors for a missing
// script; "include :optional" skips such a script.
var ErrScriptNotFound = errors.New("sieve script not found")

// CompileError is a syntax or semantic error in a script.
type CompileError struct {
	Line, Col int
	Msg       string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("line %d:%d: %s", e.Line, e.Col, e.Msg)
}

// RuntimeError stops a script at execution time (a limit, a failed
// include, conflicting actions). The caller falls back to implicit keep.
type RuntimeError struct {
	Line, Col int
	Msg       string
	wrapped   error
}

func (e *RuntimeError) Error() string {
	return fmt.Sprintf("runtime error at line %d:%d: %s", e.Line, e.Col, e.Msg)
}

func (e *RuntimeError) Unwrap() error { return e.wrapped }

// Envelope is the delivery context a script runs in: the SMTP envelope,
// the user's identity and the hooks into storage that some tests need.
type Envelope struct {
	From string // envelope sender (MAIL FROM), "" for <>
	To   string // envelope recipient (RCPT TO) this execution is for
	// OrigTo is the original recipient (ORCPT); "" means To.
	OrigTo string
	// UserAddresses are the user's own addresses (vacation: replies are
	// only sent when one of them is in To/Cc/Bcc, never to them).
	UserAddresses []string
	// Auth is the authenticated submitter, envelope part "auth"; usually "".
	Auth string
	// Now is the current time for currentdate, duplicate and vacation;
	// zero means time.Now().
	Now time.Time
	// Mailboxes lists the user's mailboxes for mailboxexists,
	// specialuse_exists and mailboxidexists; nil: no mailbox exists.
	Mailboxes MailboxLister
	// Duplicates is the state of the duplicate test (RFC 7352); nil:
	// nothing is ever a duplicate.
	Duplicates DuplicateStore
	// Include resolves "include" for this execution (the recipient's
	// personal scripts and the global ones); nil: Options.Include of the
	// compiled script. A compiled script shared by several users (the
	// same source) must get its resolver here, not from Options.
	Include IncludeResolver
	// IMAP, when set, makes this an IMAP event (RFC 6785) rather than a
	// delivery.
	IMAP *IMAPEvent
	// InitialFlags, when not nil, is the imap4flags internal variable
	// when the script starts (RFC 5232 §3: otherwise empty) — the flags a
	// message carries from the script before it in a sequence of scripts
	// (the operator's sieve.before). Keeps and fileinto without :flags
	// use them even in a script that does not require imap4flags, so a
	// script that knows nothing of flags passes them on. IMAP's message
	// flags take precedence.
	InitialFlags []string
}

// MailboxInfo describes one of the user's mailboxes.
type MailboxInfo struct {
	Name       string
	ID         string   // RFC 8474 MAILBOXID
	SpecialUse []string // e.g. `\Junk`
}

// MailboxLister lists the user's mailboxes. An execution calls it at most
// once.
type MailboxLister interface {
	Mailboxes(ctx context.Context) ([]MailboxInfo, error)
}

// DuplicateStore remembers ids for the duplicate test. Seen reports
// whether key was recorded and has not expired. The interpreter never
// writes: the caller records Result.DuplicateMarks after the message was
// delivered, as RFC 7352 §3 asks.
type DuplicateStore interface {
	Seen(ctx context.Context, key string) (bool, error)
}

// DuplicateMark is an id to remember after a successful delivery.
type DuplicateMark struct {
	Key    string
	Expiry time.Duration
}

// Limits bound one execution. Zero fields take the defaults shown.
type Limits struct {
	MaxSteps         int // commands, tests and comparisons evaluated (100000)
	MaxActions       int // actions in the result (64)
	MaxRedirects     int // redirect actions (4)
	MaxIncludeDepth  int // nested includes (8)
	MaxIncludes      int // scripts included in one execution (32)
	MaxVariableBytes int // length of one variable's value (4096)
	MaxVariables     int // variables in one scope (256)
	MaxHeaderEdits   int // addheader/deleteheader actions (32)
}

// DefaultLimits returns the limits a zero Limits stands for (e.g.
// MaxRedirects for ManageSieve's MAXREDIRECTS capability).
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxSteps, 100000)
	def(&l.MaxActions, 64)
	def(&l.MaxRedirects, 4)
	def(&l.MaxIncludeDepth, 8)
	def(&l.MaxIncludes, 32)
	def(&l.MaxVariableBytes, 4096)
	def(&l.MaxVariables, 256)
	def(&l.MaxHeaderEdits, 32)
	return l
}

// ActionKind names an action.
type ActionKind string

const (
	ActionKeep         ActionKind = "keep"
	ActionFileinto     ActionKind = "fileinto"
	ActionDiscard      ActionKind = "discard"
	ActionReject       ActionKind = "reject"
	ActionEreject      ActionKind = "ereject"
	ActionRedirect     ActionKind = "redirect"
	ActionVacation     ActionKind = "vacation"
	ActionAddHeader    ActionKind = "addheader"
	ActionDeleteHeader ActionKind = "deleteheader"
)

// Action is one action of a Result. Which fields are set depends on Kind.
type Action struct {
	Kind ActionKind
	Line int // where in the (top-level or included) script it was taken

	// keep, fileinto
	Mailbox    string   // fileinto; keep: "" (the default mailbox, INBOX)
	Flags      []string // imap4flags in effect; nil when the extension is unused
	Copy       bool     // :copy (fileinto, redirect)
	Create     bool     // :create
	SpecialUse string   // :specialuse, e.g. `\Junk`
	MailboxID  string   // :mailboxid
	// Header is the message header (incl. the blank line) as edited by
	// editheader when this action was taken; nil: the original header.
	Header []byte

	// reject, ereject
	Reason string

	// redirect
	Address string

	// vacation
	Vacation *Vacation

	// addheader, deleteheader: the field name, the value added (addheader)
	// and how many fields were removed (deleteheader).
	Field   string
	Value   string
	Removed int
}

// Vacation is an auto-reply to send (RFC 5230), already built: Message
// holds the complete reply per RFC 5230 §5, to be sent with envelope
// sender <> to To. The sender decides about repetition: no reply to To
// for Key again within Period.
type Vacation struct {
	To      string        // the original sender, the reply's recipient
	From    string        // the reply's From address
	Subject string        // the reply's subject
	Reason  string        // the reply text (or MIME entity with :mime)
	MIME    bool          // Reason is a MIME entity
	Handle  string        // :handle, or derived from the arguments
	Period  time.Duration // :days / :seconds (default 7 days)
	Key     string        // sender + handle: the repetition key
	Message []byte        // the reply, CRLF line endings
}

// Result is what an execution decided.
type Result struct {
	// Actions in the order the script took them.
	Actions []Action
	// ImplicitKeep is true when no action cancelled the implicit keep
	// (RFC 5228 §2.10.2): the message goes to INBOX with
	// ImplicitKeepFlags (imap4flags' internal variable at the end) and
	// FinalHeader (the header after all edits; nil: unchanged).
	ImplicitKeep      bool
	ImplicitKeepFlags []string
	FinalHeader       []byte
	// DuplicateMarks are ids the duplicate test asked to remember once the
	// message is delivered.
	DuplicateMarks []DuplicateMark
	// Steps is the number of evaluation steps used.
	Steps int
}

// Supported returns the extensions this package implements, for the
// SIEVE capability of ManageSieve and as the default of
// Options.Extensions.
func Supported() []string {
	out := make([]string, len(supportedExtensions))
	copy(out, supportedExtensions)
	return out
}

var supportedExtensions = []string{
	"body", "comparator-i;ascii-numeric", "copy", "date", "duplicate",
	"editheader", "encoded-character", "envelope", "environment", "ereject", "fileinto",
	"imap4flags", "imapsieve", "include", "index", "mailbox", "mailboxid", "regex",
	"reject", "relational", "special-use", "subaddress", "vacation",
	"vacation-seconds", "variables",
}
