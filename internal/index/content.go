package index

import (
	"context"
	"slices"

	"github.com/tern-imap/tern/internal/store"
)

// contentWant is what the content cache holds: the parsed fields a FETCH
// of a few messages asks for (ENVELOPE, BODY, BODYSTRUCTURE, header
// sections, threading ids). A message's content never changes for its
// UID, so entries need no invalidation beyond dropping expunged UIDs.
// Previews are not cached: an old message's preview appears once the
// indexer reaches it.
const contentWant = store.WantEnvelope | store.WantBody | store.WantBodyStructure | store.WantHeader | store.WantThreading

// contentFetchMax is the largest FETCH answered through the content
// cache. Larger ones (a client's first sync of a mailbox) read the store
// directly and leave the cache alone: what several sessions fetch again
// and again is the new mail, a few messages at a time.
const contentFetchMax = 128

// contentBoxMax bounds one mailbox's content cache; when a fill would
// exceed it the cache starts over empty, so the messages in use refill it.
const contentBoxMax = 4 << 20

// contentFields are one message's cached content fields.
type contentFields struct {
	envelope, body, bodyStructure, header []byte
	messageID                             string
	inReplyTo, references                 []string
}

func (c *contentFields) size() int64 {
	n := int64(len(c.envelope)+len(c.body)+len(c.bodyStructure)+len(c.header)+len(c.messageID)) + 160
	for _, s := range c.inReplyTo {
		n += int64(len(s)) + 16
	}
	for _, s := range c.references {
		n += int64(len(s)) + 16
	}
	return n
}

func (c *contentFields) fill(m *store.Message, want store.Want) {
	if want&store.WantEnvelope != 0 {
		m.Envelope = c.envelope
	}
	if want&store.WantBody != 0 {
		m.Body = c.body
	}
	if want&store.WantBodyStructure != 0 {
		m.BodyStructure = c.bodyStructure
	}
	if want&store.WantHeader != 0 {
		m.Header = c.header
	}
	if want&store.WantThreading != 0 {
		m.MessageID, m.InReplyTo, m.References = c.messageID, c.inReplyTo, c.references
	}
}

// contentCacheable reports whether a Fetch of n UIDs for want is answered
// from the index plus the content cache.
func contentCacheable(want store.Want, n int) bool {
	return n <= contentFetchMax && want&contentWant != 0 && want&^(indexWant|contentWant) == 0
}

// fillContent makes sure the content fields of uids are cached, reading
// the missing ones from the store in one Fetch; read reports whether it
// did.
func (a *account) fillContent(ctx context.Context, mailboxID int64, uids []uint32) (read bool, err error) {
	var missing []uint32
	err = a.with(ctx, mailboxID, func(b *Mailbox) error {
		for _, u := range uids {
			if _, ok := b.content[u]; !ok {
				missing = append(missing, u)
			}
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return false, err
	}
	got := make(map[uint32]*contentFields, len(missing))
	err = a.Account.Fetch(ctx, mailboxID, missing, contentWant, func(m *store.Message) error {
		got[m.UID] = &contentFields{envelope: slices.Clone(m.Envelope), body: slices.Clone(m.Body),
			bodyStructure: slices.Clone(m.BodyStructure), header: slices.Clone(m.Header),
			messageID: m.MessageID, inReplyTo: m.InReplyTo, references: m.References}
		return nil
	})
	if err != nil {
		return true, err
	}
	a.keepFilled(mailboxID, func(b *Mailbox) {
		var add int64
		for _, c := range got {
			add += c.size()
		}
		if b.content == nil || b.contentBytes+add > contentBoxMax {
			b.content, b.contentBytes = make(map[uint32]*contentFields, len(got)), 0
		}
		for u, c := range got {
			if _, ok := slices.BinarySearch(b.cols.uid, u); ok {
				b.content[u] = c
				b.contentBytes += c.size()
			}
		}
	})
	return true, nil
}
