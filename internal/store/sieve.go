package store

import (
	"context"
	"fmt"
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
