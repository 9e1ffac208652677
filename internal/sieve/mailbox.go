package sieve

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// mailboxexists (RFC 5490), specialuse_exists (RFC 8579),
// mailboxidexists (RFC 9042) and duplicate (RFC 7352).

func (r *runner) loadMailboxes() ([]MailboxInfo, error) {
	if r.mbLoaded || r.env.Mailboxes == nil {
		return r.mailboxes, nil
	}
	list, err := r.env.Mailboxes.Mailboxes(r.ctx)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	r.mailboxes, r.mbLoaded = list, true
	return list, nil
}

// sameMailbox compares names, INBOX case-insensitively.
func sameMailbox(a, b string) bool {
	if strings.EqualFold(a, "INBOX") {
		return strings.EqualFold(b, "INBOX")
	}
	return a == b
}

func findMailbox(list []MailboxInfo, name string) *MailboxInfo {
	for i := range list {
		if sameMailbox(list[i].Name, name) {
			return &list[i]
		}
	}
	return nil
}

func hasUse(mb *MailboxInfo, use string) bool {
	for _, u := range mb.SpecialUse {
		if strings.EqualFold(u, use) {
			return true
		}
	}
	return false
}

func (r *runner) mailboxTest(n *node) (bool, error) {
	list, err := r.loadMailboxes()
	if err != nil {
		return false, err
	}
	switch n.name {
	case "mailboxexists":
		for _, name := range r.strs(n.args[0]) {
			if findMailbox(list, name) == nil {
				return false, nil
			}
		}
		return true, nil
	case "mailboxidexists":
		for _, id := range r.strs(n.args[0]) {
			found := false
			for _, mb := range list {
				found = found || (id != "" && mb.ID == id)
			}
			if !found {
				return false, nil
			}
		}
		return true, nil
	}
	// specialuse_exists [mailbox] uses
	uses := r.strs(n.args[len(n.args)-1])
	if len(n.args) == 2 {
		mb := findMailbox(list, r.arg(n, 0))
		if mb == nil {
			return false, nil
		}
		for _, u := range uses {
			if !hasUse(mb, u) {
				return false, nil
			}
		}
		return true, nil
	}
	for _, u := range uses {
		found := false
		for i := range list {
			found = found || hasUse(&list[i], u)
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

// defaultDuplicatePeriod is how long an id is remembered without :seconds.
const (
	defaultDuplicatePeriod = 7 * 24 * time.Hour
	maxDuplicatePeriod     = 90 * 24 * time.Hour
)

func (r *runner) duplicate(n *node) (bool, error) {
	var id string
	if v, ok := r.tagStr(n, "uniqueid"); ok {
		id = v
	} else {
		name := "message-id"
		if h, ok := r.tagStr(n, "header"); ok {
			name = h
		}
		vals := r.hdr.values(name)
		if len(vals) == 0 {
			return false, nil
		}
		id = unfoldValue(vals[0])
	}
	handle, _ := r.tagStr(n, "handle")
	sum := sha256.Sum256([]byte("sieve-duplicate\x00" + handle + "\x00" + id))
	key := hex.EncodeToString(sum[:])
	period := defaultDuplicatePeriod
	if a, ok := n.tags["seconds"]; ok {
		period = time.Duration(min(a.num, uint64(maxDuplicatePeriod/time.Second))) * time.Second
	}
	seen := false
	if r.env.Duplicates != nil {
		var err error
		if seen, err = r.env.Duplicates.Seen(r.ctx, key); err != nil {
			return false, fmt.Errorf("duplicate: %w", err)
		}
	}
	if !seen || n.has("last") {
		r.res.DuplicateMarks = append(r.res.DuplicateMarks, DuplicateMark{Key: key, Expiry: period})
	}
	return seen, nil
}
