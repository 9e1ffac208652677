package sieve

import (
	"strconv"
	"strings"
)

// Delivery is one copy of the message to store.
type Delivery struct {
	Mailbox    string // "INBOX" for keep
	Flags      []string
	Create     bool
	SpecialUse string
	MailboxID  string
	Header     []byte // edited header, nil: the original
}

// Deliveries merges keep, fileinto and the implicit keep into one
// delivery per target mailbox, in the order first taken: the same
// mailbox named twice (e.g. keep and fileinto "INBOX") stores one copy
// with the union of the flags (RFC 5228 §2.10.3).
func (r *Result) Deliveries() []Delivery {
	var out []Delivery
	add := func(d Delivery) {
		if strings.EqualFold(d.Mailbox, "INBOX") {
			d.Mailbox = "INBOX"
		}
		for i := range out {
			o := &out[i]
			if o.Mailbox == d.Mailbox && o.SpecialUse == d.SpecialUse && o.MailboxID == d.MailboxID {
				o.Flags = normalizeFlags(append(o.Flags, d.Flags...))
				o.Create = o.Create || d.Create
				if d.Header != nil {
					o.Header = d.Header
				}
				return
			}
		}
		out = append(out, d)
	}
	for _, a := range r.Actions {
		switch a.Kind {
		case ActionKeep:
			add(Delivery{Mailbox: "INBOX", Flags: a.Flags, Header: a.Header})
		case ActionFileinto:
			add(Delivery{Mailbox: a.Mailbox, Flags: a.Flags, Create: a.Create, SpecialUse: a.SpecialUse, MailboxID: a.MailboxID, Header: a.Header})
		}
	}
	if r.ImplicitKeep {
		add(Delivery{Mailbox: "INBOX", Flags: r.ImplicitKeepFlags, Header: r.FinalHeader})
	}
	return out
}

// String describes an action in Sieve-like syntax, for logs and for
// "tern sieve test": `fileinto :copy :flags ["\\Seen"] "Lists/acme"`.
func (a Action) String() string {
	var b strings.Builder
	b.WriteString(string(a.Kind))
	flag := func(on bool, tag string) {
		if on {
			b.WriteString(" :" + tag)
		}
	}
	str := func(tag, v string) {
		if v != "" {
			b.WriteString(" :" + tag + " " + strconv.Quote(v))
		}
	}
	switch a.Kind {
	case ActionKeep, ActionFileinto:
		flag(a.Copy, "copy")
		flag(a.Create, "create")
		str("specialuse", a.SpecialUse)
		str("mailboxid", a.MailboxID)
		if a.Flags != nil {
			quoted := make([]string, len(a.Flags))
			for i, f := range a.Flags {
				quoted[i] = strconv.Quote(f)
			}
			b.WriteString(" :flags [" + strings.Join(quoted, ", ") + "]")
		}
		if a.Kind == ActionFileinto {
			b.WriteString(" " + strconv.Quote(a.Mailbox))
		}
	case ActionRedirect:
		flag(a.Copy, "copy")
		b.WriteString(" " + strconv.Quote(a.Address))
	case ActionReject, ActionEreject:
		b.WriteString(" " + strconv.Quote(a.Reason))
	case ActionVacation:
		if v := a.Vacation; v != nil {
			b.WriteString(" to " + strconv.Quote(v.To) + " :subject " + strconv.Quote(v.Subject) + " period " + v.Period.String())
		}
	case ActionAddHeader:
		b.WriteString(" " + strconv.Quote(a.Field) + " " + strconv.Quote(a.Value))
	case ActionDeleteHeader:
		b.WriteString(" " + strconv.Quote(a.Field) + " (" + strconv.Itoa(a.Removed) + " removed)")
	}
	return b.String()
}
