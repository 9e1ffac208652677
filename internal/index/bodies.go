package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/tern-imap/tern/internal/store"
)

// The body cache keeps the bytes of small new messages once a FETCH read
// them, per mailbox and UID, so that the next read of the same message
// (another device fetching the same new mail, a client fetching a part
// after the whole) needs no store query: on PostgreSQL a round trip, on
// SQLite a query, page reads and decompression. Only the newest
// bodyRecent messages of a mailbox are kept: new mail is what several
// devices read, while reads spread over a large mailbox's old mail
// would only pay for copies that are seldom read again. A message's
// bytes never change for its UID, so an entry lives until the UID is
// expunged (or the cache starts over, below), like the content cache.
const (
	// bodyCacheMax is the largest message kept: most mail, and the
	// larger ones are read from files (SQLite) or are rare.
	bodyCacheMax = 64 << 10
	// bodyBoxMax bounds one mailbox's body cache; a fill that would
	// exceed it starts the cache over empty, so the messages in use
	// refill it.
	bodyBoxMax = 4 << 20
	// bodyRecent is how many of a mailbox's newest messages (by UID)
	// the cache takes.
	bodyRecent = 256
	// bodyEvictStep is how much the body caches of all mailboxes grow
	// between two checks of the memory budget (each looks at every
	// mailbox's size).
	bodyEvictStep = 1 << 20
)

// bodyShare is the most the body caches of all mailboxes hold together:
// a quarter of the memory budget.
func (x *Indexes) bodyShare() int64 { return x.budget / 4 }

// cachedBody is a message's bytes and encoded part tree, shared by every
// reader and never written after it is made.
type cachedBody struct {
	data, parts []byte
}

// open returns a reader of its own over the shared bytes.
func (c *cachedBody) open() store.Body { return store.NewMemBody(c.data, c.parts) }

func (c *cachedBody) cost() int64 { return int64(len(c.data)+len(c.parts)) + 96 }

// OpenBody answers from the body cache, or opens the body in the store
// and, for a client's read (store.KeepBody) of a small message, keeps a
// copy.
func (a *account) OpenBody(ctx context.Context, mailboxID int64, uid uint32) (store.Body, error) {
	c, admit := a.cachedBody(mailboxID, uid)
	if c != nil {
		a.hit()
		return c.open(), nil
	}
	body, err := a.Account.OpenBody(ctx, mailboxID, uid)
	if err != nil || !admit || body.Size() > bodyCacheMax || !store.KeepsBody(ctx) {
		return body, err
	}
	a.miss()
	data := make([]byte, body.Size())
	n, err := body.ReadAt(data, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		// Failed before anything is written: the command answers NO
		// (a store that cannot be read now: NO [UNAVAILABLE]).
		body.Close()
		return nil, fmt.Errorf("read body of UID %d: %w", uid, err)
	}
	if n < len(data) {
		return body, nil // shorter than its size: the caller's own reads meet that
	}
	c = &cachedBody{data: data, parts: slices.Clone(body.Parts())}
	body.Close()
	a.keepBody(mailboxID, uid, c)
	return c.open(), nil
}

// cachedBody returns the cached body of uid, or nil and whether the
// cache would take it (one of the mailbox's newest). It answers only
// from an index that has every change signalled so far (an expunge
// another process or node made drops the body when it is applied); it
// does not load or catch up the mailbox's index itself.
func (a *account) cachedBody(mailboxID int64, uid uint32) (c *cachedBody, admit bool) {
	b := a.x.peek(a.User(), a.id, mailboxID)
	if b == nil || b.stale.Load() {
		return nil, false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.loaded || b.dead || b.target.Load() > b.head.HighestModSeq {
		return nil, false
	}
	if c := b.bodies[uid]; c != nil {
		return c, false
	}
	return nil, b.recentUID(uid)
}

// recentUID reports whether uid is one of the mailbox's bodyRecent
// newest messages; callers hold mu.
func (b *Mailbox) recentUID(uid uint32) bool {
	i, ok := slices.BinarySearch(b.cols.uid, uid)
	return ok && i >= len(b.cols.uid)-bodyRecent
}

// keepBody caches c as uid's body if uid is still one of the mailbox's
// newest (an expunge applied meanwhile has dropped it for good) and the
// body caches of all mailboxes stay within bodyShare.
func (a *account) keepBody(mailboxID int64, uid uint32, c *cachedBody) {
	b := a.x.peek(a.User(), a.id, mailboxID)
	if b == nil || a.x.bodyBytes.Load()+c.cost() > a.x.bodyShare() {
		return
	}
	before := a.x.bodyBytes.Load()
	b.mu.Lock()
	b.keepBody(uid, c)
	b.mu.Unlock()
	if a.x.bodyBytes.Load()/bodyEvictStep > before/bodyEvictStep {
		a.x.evict(b)
	}
}

// keepBody adds c as uid's body; callers hold mu.
func (b *Mailbox) keepBody(uid uint32, c *cachedBody) {
	if !b.loaded || b.dead || !b.recentUID(uid) {
		return
	}
	if old, ok := b.bodies[uid]; ok {
		b.addBodyBytes(-old.cost())
		delete(b.bodies, uid)
	}
	if b.bodies == nil || b.bodiesBytes+c.cost() > bodyBoxMax {
		b.addBodyBytes(-b.bodiesBytes)
		b.bodies = make(map[uint32]*cachedBody)
	}
	b.bodies[uid] = c
	b.addBodyBytes(c.cost())
}

// addBodyBytes counts d more bytes in the body cache, in the mailbox and
// in the total of all mailboxes; callers hold mu.
func (b *Mailbox) addBodyBytes(d int64) {
	b.bodiesBytes += d
	if b.bodyTotal != nil {
		b.bodyTotal.Add(d)
	}
}
