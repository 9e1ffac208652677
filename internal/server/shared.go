package server

import (
	"context"
	"sync"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// When one change wakes thousands of sessions watching the same mailbox,
// they all ask the same question: what changed since the same modseq?
// sharedState answers it with one storage query, and remembers how far
// \Recent was claimed so only the first session writes the claim.
type sharedState struct {
	mu      sync.Mutex
	changes map[changeKey]*changeEntry
	recent  map[mailboxKey]uint32 // highest UID known to be claimed as \Recent
	swept   time.Time             // last sweep of finished, expired change entries
}

type mailboxKey struct {
	user    string
	mailbox int64
}

type changeKey struct {
	mailboxKey
	sinceModSeq uint64
	sinceUID    uint32
	gen         uint64
}

type changeEntry struct {
	done chan struct{}
	cs   store.ChangeSet
	err  error
	at   time.Time
}

const (
	maxSharedChanges = 4096
	sharedChangesTTL = 5 * time.Second
	maxRecentMarks   = 100000
)

// changes returns what changed in a mailbox since (sinceModSeq, sinceUID),
// sharing the query with other sessions asking the same question after the
// same change. The result must not be modified.
func (s *Server) changes(ctx context.Context, acct store.Account, user string, mailboxID int64, sinceModSeq uint64, sinceUID uint32) (store.ChangeSet, error) {
	// The generation is read before the query, so a shared result reflects
	// every change signalled up to it.
	gen := s.cfg.Notify.Generation(user, mailboxID)
	k := changeKey{mailboxKey{user, mailboxID}, sinceModSeq, sinceUID, gen}
	sh := &s.shared
	now := time.Now()
	sh.mu.Lock()
	if sh.changes == nil {
		sh.changes = make(map[changeKey]*changeEntry)
	}
	e, ok := sh.changes[k]
	if !ok {
		if len(sh.changes) >= maxSharedChanges || (len(sh.changes) > 64 && now.Sub(sh.swept) > time.Second) {
			sh.swept = now
			for k2, e2 := range sh.changes {
				select {
				case <-e2.done:
					if now.Sub(e2.at) > sharedChangesTTL || len(sh.changes) >= maxSharedChanges {
						delete(sh.changes, k2)
					}
				default:
				}
			}
		}
		e = &changeEntry{done: make(chan struct{}), at: now}
		sh.changes[k] = e
	}
	sh.mu.Unlock()
	if !ok {
		e.cs, e.err = acct.Changes(ctx, mailboxID, sinceModSeq, sinceUID)
		close(e.done)
		if e.err != nil {
			sh.mu.Lock()
			delete(sh.changes, k)
			sh.mu.Unlock()
		}
		return e.cs, e.err
	}
	select {
	case <-e.done:
		return e.cs, e.err
	case <-ctx.Done():
		return store.ChangeSet{}, ctx.Err()
	}
}

// claimRecent claims \Recent for UIDs up to upTo, skipping the storage
// write when another session already claimed them. It returns the lowest
// UID this session may treat as recent.
func (s *Server) claimRecent(ctx context.Context, acct store.Account, user string, mailboxID int64, upTo uint32) (uint32, error) {
	k := mailboxKey{user, mailboxID}
	sh := &s.shared
	sh.mu.Lock()
	if mark, ok := sh.recent[k]; ok && mark >= upTo {
		sh.mu.Unlock()
		return upTo + 1, nil
	}
	sh.mu.Unlock()
	from, err := acct.ClaimRecent(ctx, mailboxID, upTo)
	if err != nil {
		return 0, err
	}
	sh.mu.Lock()
	if sh.recent == nil || len(sh.recent) >= maxRecentMarks {
		sh.recent = make(map[mailboxKey]uint32)
	}
	if upTo > sh.recent[k] {
		sh.recent[k] = upTo
	}
	sh.mu.Unlock()
	return from, nil
}
