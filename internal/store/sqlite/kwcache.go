package sqlite

import (
	"fmt"
	"strings"
	"sync"
)

// keywordCache remembers, for one user, keyword rows the database is
// known to hold, so that STORE and APPEND with keywords skip the
// statements that record them again (three per keyword: the spelling's
// INSERT OR IGNORE and SELECT, the mailbox list's INSERT OR IGNORE).
//
// What it holds stays true: rows of keywords are never deleted (the first
// spelling of a keyword is the account's for good), and rows of
// mailbox_keywords go only with their mailbox, whose id is never reused.
// Other processes (tern deliver, tern import) only add rows, which the
// cache then lacks and looks up. Entries are added only after the
// transaction that read or wrote them committed (learn), so a write that
// was rolled back leaves nothing behind.
type keywordCache struct {
	mu     sync.Mutex
	names  map[string]string // folded keyword -> the account's spelling
	listed map[mailboxKeyword]struct{}
}

type mailboxKeyword struct {
	mailbox int64
	folded  string
}

// keywordCacheMax bounds each of the cache's maps: past it, keywords are
// recorded with SQL as before (a client inventing keywords without end
// must not grow the server's memory).
const keywordCacheMax = 4096

// keywordsSeen is what one write transaction found or recorded, for
// keywordCache.learn after its commit.
type keywordsSeen struct {
	names  map[string]string
	listed []mailboxKeyword
}

func (c *keywordCache) name(folded string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.names[folded]
	return n, ok
}

func (c *keywordCache) isListed(k mailboxKeyword) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.listed[k]
	return ok
}

// learn adds what a committed transaction saw.
func (c *keywordCache) learn(s *keywordsSeen) {
	if len(s.names) == 0 && len(s.listed) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names = map[string]string{}
		c.listed = map[mailboxKeyword]struct{}{}
	}
	for f, n := range s.names {
		if len(c.names) < keywordCacheMax {
			c.names[f] = n
		}
	}
	for _, k := range s.listed {
		if len(c.listed) < keywordCacheMax {
			c.listed[k] = struct{}{}
		}
	}
}

// canonKeywords maps keywords to their account-wide first spelling,
// recording new ones.
func (w *wtx) canonKeywords(kws []string) ([]string, error) {
	out := make([]string, 0, len(kws))
	for _, k := range kws {
		fold := strings.ToLower(k)
		if n, ok := w.kw.name(fold); ok {
			out = append(out, n)
			continue
		}
		if _, err := w.tx.ExecContext(w.ctx, `INSERT OR IGNORE INTO keywords(folded, name) VALUES(?, ?)`, fold, k); err != nil {
			return nil, fmt.Errorf("record keyword: %w", err)
		}
		var name string
		if err := w.tx.QueryRowContext(w.ctx, `SELECT name FROM keywords WHERE folded = ?`, fold).Scan(&name); err != nil {
			return nil, fmt.Errorf("look up keyword: %w", err)
		}
		if w.kwSeen.names == nil {
			w.kwSeen.names = map[string]string{}
		}
		w.kwSeen.names[fold] = name
		out = append(out, name)
	}
	return out, nil
}

// addMailboxKeywords adds (canonical) keywords to a mailbox's list and
// reports whether the list grew.
func (w *wtx) addMailboxKeywords(mailboxID int64, kws []string) (bool, error) {
	grew := false
	for _, k := range kws {
		mk := mailboxKeyword{mailbox: mailboxID, folded: strings.ToLower(k)}
		if w.kw.isListed(mk) {
			continue
		}
		res, err := w.tx.ExecContext(w.ctx, `INSERT OR IGNORE INTO mailbox_keywords(mailbox_id, folded) VALUES(?, ?)`, mk.mailbox, mk.folded)
		if err != nil {
			return false, fmt.Errorf("add mailbox keyword: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			grew = true
		}
		w.kwSeen.listed = append(w.kwSeen.listed, mk)
	}
	return grew, nil
}
