package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on stored Sieve scripts that every backend enforces (RFC 5804
// leaves them to the server; ManageSieve reports them through HAVESPACE
// and QUOTA/MAXSCRIPTS, QUOTA/MAXSIZE).
const (
	SieveMaxScripts    = 64      // scripts of one user
	SieveMaxScriptSize = 1 << 20 // bytes of one script
	SieveMaxNameLen    = 255     // bytes of a script name
)

// SieveScriptInfo describes one stored script.
type SieveScriptInfo struct {
	Name   string
	Active bool
	Size   int64
}

// SieveStore is a user's store of Sieve scripts (RFC 5804 semantics):
// any number of named scripts, at most one of them active. Names are
// compared octet by octet. Every mutating call is durable before it
// returns nil. The store does not compile scripts: callers check a script
// before they store or activate it.
type SieveStore interface {
	// SieveScripts lists the user's scripts sorted by name.
	SieveScripts(ctx context.Context) ([]SieveScriptInfo, error)
	// SieveScript returns a script's content; ErrNoSuchScript.
	SieveScript(ctx context.Context, name string) ([]byte, error)
	// PutSieveScript creates or replaces a script (an active script stays
	// active). ErrInvalidScriptName, ErrScriptTooLarge (over
	// SieveMaxScriptSize), ErrTooManyScripts (a new name over
	// SieveMaxScripts; checked in the write transaction).
	PutSieveScript(ctx context.Context, name string, content []byte) error
	// DeleteSieveScript removes a script. ErrNoSuchScript; ErrScriptActive
	// for the active one (deactivate it first).
	DeleteSieveScript(ctx context.Context, name string) error
	// RenameSieveScript renames a script; an active one stays active.
	// ErrNoSuchScript, ErrScriptExists, ErrInvalidScriptName.
	RenameSieveScript(ctx context.Context, oldName, newName string) error
	// SetActiveSieveScript makes name the active script and deactivates
	// any other; "" deactivates all. ErrNoSuchScript.
	SetActiveSieveScript(ctx context.Context, name string) error
	// ActiveSieveScript returns the active script's content and name, or
	// nil and "" when no script is active (what delivery runs).
	ActiveSieveScript(ctx context.Context) (content []byte, name string, err error)
}

// CheckSieveScriptName checks a script name against RFC 5804 §1.6:
// non-empty UTF-8 in Unicode normalization form C (Net-Unicode), without
// control characters (U+0000-U+001F, U+007F-U+009F) or the line and
// paragraph separators U+2028, U+2029, at most SieveMaxNameLen bytes.
func CheckSieveScriptName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("script name %q: %s: %w", name, why, ErrInvalidScriptName)
	}
	switch {
	case name == "":
		return bad("empty")
	case len(name) > SieveMaxNameLen:
		return bad("too long")
	case !utf8.ValidString(name):
		return bad("not UTF-8")
	case !norm.NFC.IsNormalString(name):
		return bad("not in Unicode normalization form C")
	}
	for _, r := range name {
		if r <= 0x1f || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 {
			return bad("control character")
		}
	}
	return nil
}

// SieveStateKind names what a SieveStateStore entry remembers.
type SieveStateKind string

const (
	// SieveVacation: a vacation reply was sent for this key (RFC 5230
	// §4.2: sender + handle) and is not sent again before the expiry.
	SieveVacation SieveStateKind = "vacation"
	// SieveDuplicate: the duplicate test saw this id (RFC 7352).
	SieveDuplicate SieveStateKind = "duplicate"
)

// SieveStateMaxKey bounds the length of a SieveStateStore key in bytes.
const SieveStateMaxKey = 512

// ErrInvalidSieveState: an unknown kind, or a key that is empty, too
// long, not UTF-8 or holds a NUL byte.
var ErrInvalidSieveState = errors.New("invalid sieve state entry")

// SieveStateStore is the durable state of a user's Sieve actions: which
// vacation replies were sent and which duplicate ids were seen, each
// until an expiry. Entries past their expiry count as absent; the backend
// removes them as it goes (at least on every MarkSieveState).
type SieveStateStore interface {
	// SieveStateSeen reports whether key of kind was marked and has not
	// expired.
	SieveStateSeen(ctx context.Context, kind SieveStateKind, key string) (bool, error)
	// MarkSieveState records key of kind until expires (replacing an
	// earlier mark of the same key); durable before it returns nil.
	MarkSieveState(ctx context.Context, kind SieveStateKind, key string, expires time.Time) error
	// ClaimSieveState records key of kind until expires unless it is
	// marked and not expired, and reports whether this call recorded it.
	// Of concurrent claims of one key, from any process or node, exactly
	// one succeeds: a vacation reply goes out once per period even when
	// two deliveries of the same sender arrive at two nodes at once.
	// Durable before it returns.
	ClaimSieveState(ctx context.Context, kind SieveStateKind, key string, expires time.Time) (bool, error)
}

// CheckSieveState validates a SieveStateStore kind and key.
func CheckSieveState(kind SieveStateKind, key string) error {
	if kind != SieveVacation && kind != SieveDuplicate {
		return fmt.Errorf("kind %q: %w", kind, ErrInvalidSieveState)
	}
	if key == "" || len(key) > SieveStateMaxKey {
		return fmt.Errorf("key of %d bytes (limit %d): %w", len(key), SieveStateMaxKey, ErrInvalidSieveState)
	}
	if !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 {
		return fmt.Errorf("key not UTF-8 text: %w", ErrInvalidSieveState)
	}
	return nil
}
