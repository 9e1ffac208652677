package imap

import "strings"

// NotifyArgs is NOTIFY NONE or NOTIFY SET [STATUS] event-groups
// (RFC 5465 §8).
type NotifyArgs struct {
	None   bool // NOTIFY NONE
	Status bool // the STATUS indicator of NOTIFY SET
	Groups []NotifyGroup
}

// NotifyGroup is one event-group: a mailbox filter and its events.
type NotifyGroup struct {
	// Filter is upper case: SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL,
	// SUBSCRIBED, SUBTREE or MAILBOXES.
	Filter string
	// Mailboxes are the raw astrings (not decoded from modified UTF-7) of
	// SUBTREE and MAILBOXES.
	Mailboxes []string
	// Events is empty for NONE.
	Events []NotifyEvent
}

// NotifyEvent is one event name, with the FETCH attributes of MessageNew.
type NotifyEvent struct {
	// Name is the canonical spelling for the events RFC 5465 defines
	// (NotifyEventNames); any other event-ext atom is kept as sent.
	Name  string
	Fetch []FetchItem // MessageNew only; nil when absent
}

// NotifyEventNames lists the events of RFC 5465 in canonical spelling.
var NotifyEventNames = []string{
	"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange",
	"MailboxName", "SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange",
}

func (r *Reader) notifyArgs() *NotifyArgs {
	r.sp()
	a := &NotifyArgs{}
	switch string(r.word(cAtom, "SET or NONE")) {
	case "NONE":
		a.None = true
		return a
	case "SET":
	default:
		r.fail("expected SET or NONE")
	}
	r.sp()
	if r.peek() != '(' {
		if string(r.word(cAtom, "STATUS")) != "STATUS" {
			r.fail("expected STATUS or event group")
		}
		a.Status = true
		r.sp()
	}
	for {
		a.Groups = append(a.Groups, r.notifyGroup())
		if r.atEOL() {
			return a
		}
		r.sp()
	}
}

func (r *Reader) notifyGroup() NotifyGroup {
	r.expect('(', "(")
	g := NotifyGroup{Filter: string(r.word(cName, "mailbox filter"))}
	switch g.Filter {
	case "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED":
	case "SUBTREE", "MAILBOXES":
		r.sp()
		if r.peek() == '(' {
			r.next()
			for {
				g.Mailboxes = append(g.Mailboxes, r.astring())
				if r.peek() == ')' {
					r.next()
					break
				}
				r.sp()
			}
		} else {
			g.Mailboxes = []string{r.astring()}
		}
	default:
		r.fail("unknown mailbox filter")
	}
	r.sp()
	if r.peek() != '(' {
		if string(r.word(cAtom, "events")) != "NONE" {
			r.fail("expected event list or NONE")
		}
		r.expect(')', ")")
		return g
	}
	r.next()
	g.Events = r.notifyEvents()
	r.expect(')', ")")
	return g
}

// notifyEvents parses the events of a list whose "(" was read, and its ")".
func (r *Reader) notifyEvents() []NotifyEvent {
	var events []NotifyEvent
	for {
		name := string(r.token(cAtom))
		if name == "" {
			r.fail("expected event")
		}
		ev := NotifyEvent{Name: name}
		for _, n := range NotifyEventNames {
			if strings.EqualFold(n, name) {
				ev.Name = n
			}
		}
		if r.peek() == ')' {
			r.next()
			return append(events, ev)
		}
		r.sp()
		if r.peek() == '(' {
			if ev.Name != "MessageNew" {
				r.fail("only MessageNew takes FETCH attributes")
			}
			r.next()
			for {
				ev.Fetch = append(ev.Fetch, r.fetchAtt())
				if r.peek() == ')' {
					r.next()
					break
				}
				r.sp()
			}
			events = append(events, ev)
			if r.peek() == ')' {
				r.next()
				return events
			}
			r.sp()
			continue
		}
		events = append(events, ev)
	}
}
