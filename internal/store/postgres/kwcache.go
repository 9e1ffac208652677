package postgres

import (
	"strings"
	"sync"
)

// keywordCache is what an account learned from its own committed writes
// about the user's keywords: each keyword's account-wide spelling (the
// keywords table: the first spelling wins, and a row is never changed or
// deleted while the user exists) and which keywords each mailbox's list
// holds (mailbox_keywords: rows go only with their mailbox, whose id is
// never reused). Both only grow in the database, so what was true once
// stays true, through any node: a STORE or APPEND of keywords the cache
// knows sends neither the lookup nor the insert into the mailbox's list
// (two round trips). It is bounded: past maxCachedKeywords entries it
// learns nothing more, and the writes ask the database as before.
//
// "Only grow" holds while the database keeps its commits: a crash of the
// server loses relaxed commits (Options.RelaxedCommits), a failover to an
// asynchronous standby loses its lag. Either breaks the Store's listening
// connection (Store.breaks), and the cache forgets everything it learned
// before a break; a write whose transaction spanned one teaches nothing.
type keywordCache struct {
	mu     sync.Mutex
	breaks uint64                        // Store.breaks the entries were learned at
	canon  map[string]string             // folded -> spelling
	inBox  map[int64]map[string]struct{} // mailbox id -> folded keywords in its list
	n      int                           // entries in canon and inBox together
}

// at drops the entries when the Store's connection broke since they were
// learned (breaks is Store.breaks now). c.mu is held.
func (c *keywordCache) at(breaks uint64) {
	if c.breaks != breaks {
		c.breaks, c.canon, c.inBox, c.n = breaks, nil, nil, 0
	}
}

// maxCachedKeywords bounds a keywordCache (a few tens of KiB at most).
const maxCachedKeywords = 1024

// keywordsSeen is what one write found out, taught to the cache once it
// committed (learn).
type keywordsSeen struct {
	canon map[string]string
	inBox map[int64][]string // folded
}

func (s *keywordsSeen) spelling(folded, name string) {
	if s.canon == nil {
		s.canon = map[string]string{}
	}
	s.canon[folded] = name
}

func (s *keywordsSeen) listed(mailboxID int64, folded []string) {
	if s.inBox == nil {
		s.inBox = map[int64][]string{}
	}
	s.inBox[mailboxID] = append(s.inBox[mailboxID], folded...)
}

// spellings returns the account-wide spelling of each of kws, or false
// when one of them is not known (breaks: Store.breaks now).
func (c *keywordCache) spellings(breaks uint64, kws []string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at(breaks)
	out := make([]string, len(kws))
	for i, k := range kws {
		name, ok := c.canon[strings.ToLower(k)]
		if !ok {
			return nil, false
		}
		out[i] = name
	}
	return out, true
}

// listed reports whether mailbox id's keyword list holds every one of
// folded (breaks: Store.breaks now); an empty list is, without the lock
// (most APPENDs carry no keyword).
func (c *keywordCache) listed(breaks uint64, id int64, folded []string) bool {
	if len(folded) == 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at(breaks)
	box := c.inBox[id]
	for _, f := range folded {
		if _, ok := box[f]; !ok {
			return false
		}
	}
	return true
}

// learn adds what a committed write found out; since and now are
// Store.breaks when the write was queued and now: a write that spans a
// break teaches nothing.
func (c *keywordCache) learn(since, now uint64, s *keywordsSeen) {
	if (s.canon == nil && s.inBox == nil) || since != now {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at(now)
	for f, name := range s.canon {
		if _, ok := c.canon[f]; ok || c.n >= maxCachedKeywords {
			continue
		}
		if c.canon == nil {
			c.canon = map[string]string{}
		}
		c.canon[f] = name
		c.n++
	}
	for id, folded := range s.inBox {
		for _, f := range folded {
			box := c.inBox[id]
			if _, ok := box[f]; ok || c.n >= maxCachedKeywords {
				continue
			}
			if box == nil {
				if c.inBox == nil {
					c.inBox = map[int64]map[string]struct{}{}
				}
				box = map[string]struct{}{}
				c.inBox[id] = box
			}
			box[f] = struct{}{}
			c.n++
		}
	}
}
