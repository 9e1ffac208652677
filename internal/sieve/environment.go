package sieve

import (
	"strings"
)

// environment (RFC 5183) and the IMAP events of imapsieve (RFC 6785 §4):
// the environment test compares one item of the context the script runs
// in. An item this implementation does not know makes the test false
// (RFC 5183 §4).

// IMAPEvent is set in Envelope.IMAP when a script runs for an IMAP
// event (RFC 6785, IMAPSIEVE) instead of a delivery: then the envelope
// test, reject, ereject and vacation are runtime errors, and imap4flags'
// internal variable starts with the message's flags.
type IMAPEvent struct {
	Cause        string   // "APPEND", "COPY" or "FLAG"
	Mailbox      string   // the mailbox the message is in or was added to
	User, Email  string   // the IMAP user who caused the event
	ChangedFlags []string // FLAG: the flags that changed
	Flags        []string // the message's flags now
}

// environmentItem returns the value of an environment item and whether
// it is defined.
func (r *runner) environmentItem(name string) (string, bool) {
	ev := r.env.IMAP
	switch strings.ToLower(name) {
	case "name":
		return "tern", true
	case "location":
		if ev != nil {
			return "MS", true // evaluated by the message store
		}
		return "MDA", true
	case "phase":
		if ev != nil {
			return "post", true
		}
		return "during", true
	case "imap.user", "imap.email", "imap.cause", "imap.mailbox", "imap.changedflags":
		if ev == nil {
			return "", true // RFC 6785 §4.2: empty at delivery
		}
		switch strings.ToLower(name) {
		case "imap.user":
			return ev.User, true
		case "imap.email":
			return ev.Email, true
		case "imap.cause":
			return ev.Cause, true
		case "imap.mailbox":
			return ev.Mailbox, true
		default:
			return strings.Join(ev.ChangedFlags, " "), true
		}
	}
	return "", false
}

func (r *runner) environment(n *node) (bool, error) {
	v, ok := r.environmentItem(r.arg(n, 0))
	if !ok {
		return false, nil
	}
	return r.match(n, []string{v}, r.strs(n.args[1]))
}

// notInIMAPEvent fails a command or test that only makes sense at
// delivery (RFC 6785 §3.11, §4.6).
func (r *runner) notInIMAPEvent(what string) error {
	if r.env.IMAP != nil {
		return r.fail("%s cannot be used in an IMAP event (%s)", what, r.env.IMAP.Cause)
	}
	return nil
}
