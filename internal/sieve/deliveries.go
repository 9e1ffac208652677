package sieve

import "strings"

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
