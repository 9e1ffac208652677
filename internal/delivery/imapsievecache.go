package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// The IMAPSIEVE script of a mailbox is looked up on every STORE and
// every FETCH that sets \Seen (the FLAG cause), so the answer — which
// compiled script runs, or none — is cached per owner and mailbox id.
// What this process changes forgets the owner's entries at once
// (ForgetIMAPSieve: SETMETADATA, DELETE and RENAME of mailboxes, the
// ManageSieve script commands); entries also expire after
// imapSieveCacheTTL, so changes made by another process (tern sieve put,
// another node on the same PostgreSQL) are seen within that time.

// imapSieveCacheTTL bounds how long a cached answer is used.
const imapSieveCacheTTL = 30 * time.Second

// imapSieveCacheMax bounds the entries; a full cache starts over.
const imapSieveCacheMax = 8192

type imapSieveKey struct {
	owner   string
	mailbox int64
}

type imapSieveEntry struct {
	script *sieve.Script // nil: no script runs
	name   string
	at     time.Time
}

type imapSieveCache struct {
	mu  sync.Mutex
	gen uint64 // counts ForgetIMAPSieve calls: an answer read across one is not kept
	m   map[imapSieveKey]imapSieveEntry
}

// ForgetIMAPSieve drops what is cached about owner's IMAPSIEVE scripts:
// call it when owner's metadata, mailboxes or Sieve scripts changed.
func (d *Deliverer) ForgetIMAPSieve(owner string) {
	c := &d.imapSieve
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k := range c.m {
		if k.owner == owner {
			delete(c.m, k)
		}
	}
}

// cachedIMAPSieveScript is imapSieveScript through the cache. Errors
// are not cached.
func (d *Deliverer) cachedIMAPSieveScript(ctx context.Context, acct store.Account, mailbox string, mailboxID int64) (*sieve.Script, string, error) {
	c := &d.imapSieve
	key := imapSieveKey{acct.User(), mailboxID}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Sub(e.at) < imapSieveCacheTTL {
		return e.script, e.name, nil
	}
	s, name, err := d.imapSieveScript(ctx, acct, mailbox)
	if err != nil {
		return nil, "", err
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.m == nil || len(c.m) >= imapSieveCacheMax {
			c.m = map[imapSieveKey]imapSieveEntry{}
		}
		c.m[key] = imapSieveEntry{script: s, name: name, at: now}
	}
	c.mu.Unlock()
	return s, name, nil
}
