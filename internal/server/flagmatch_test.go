package server_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/store"
)

// matchCounting wraps a store and counts the MatchFlags calls that reach
// the index through its Accounts.
type matchCounting struct {
	store.Store
	n *atomic.Int64
}

func (s matchCounting) Account(ctx context.Context, user string) (store.Account, error) {
	a, err := s.Store.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	return matchCountingAccount{Account: a, n: s.n}, nil
}

type matchCountingAccount struct {
	store.Account
	n *atomic.Int64
}

func (a matchCountingAccount) MatchFlags(ctx context.Context, mailboxID int64, uids []uint32, match func([]string) bool) ([]uint32, []uint64, error) {
	fm, ok := a.Account.(store.FlagMatcher)
	if !ok {
		return nil, nil, store.ErrNoFlagMatch
	}
	a.n.Add(1)
	return fm.MatchFlags(ctx, mailboxID, uids, match)
}

// TestSearchFlagsFromIndex: a SEARCH on flags alone is answered from the
// mailbox index once per flag set (store.FlagMatcher, through the metrics
// wrapper as in tern serve), and gives exactly what the per-message
// search gives for the same key (forced by an added UID 1:*, which is not
// a flag key), for random flags and random keys; messages a session has
// not been told about yet, and expunged ones, stay out.
func TestSearchFlagsFromIndex(t *testing.T) {
	var calls atomic.Int64
	ts := newTestServer(t, serverOpts{wrapStore: func(st store.Store) store.Store {
		return metrics.New().WrapStore(matchCounting{Store: st, n: &calls})
	}})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	other := ts.login("alice", "secret")
	r := rand.New(rand.NewPCG(9, 9))
	flags := []string{`\Seen`, `\Flagged`, `\Answered`, `\Deleted`, `\Draft`, "$Work", "Todo"}
	for range 300 {
		var fs []string
		for _, f := range flags {
			if r.IntN(3) == 0 {
				fs = append(fs, f)
			}
		}
		c.appendMsg("INBOX", strings.Join(fs, " "), simpleMsg)
	}
	c.ok("SELECT INBOX")
	other.ok("SELECT INBOX")
	other.ok("UID STORE 1:20 +FLAGS.SILENT (\\Deleted)")
	other.ok("UID EXPUNGE 1:20")                    // c has not been told yet
	other.appendMsg("INBOX", `\Flagged`, simpleMsg) // UID 301
	leaf := func() string {
		keys := []string{"ALL", "SEEN", "UNSEEN", "FLAGGED", "UNFLAGGED", "ANSWERED", "UNANSWERED", "DELETED",
			"UNDELETED", "DRAFT", "UNDRAFT", "KEYWORD $Work", "UNKEYWORD $Work", "KEYWORD Todo", "KEYWORD Nope"}
		return keys[r.IntN(len(keys))]
	}
	var key func(depth int) string
	key = func(depth int) string {
		switch x := r.IntN(4); {
		case depth > 2 || x == 0:
			return leaf()
		case x == 1:
			return "NOT " + key(depth+1)
		case x == 2:
			return "OR " + key(depth+1) + " " + key(depth+1)
		default:
			return "(" + key(depth+1) + " " + key(depth+1) + ")"
		}
	}
	searchLine := func(cmd string) string {
		for _, l := range c.ok(cmd) {
			if strings.HasPrefix(l, "* SEARCH") {
				return l
			}
		}
		t.Fatalf("%s: no SEARCH response", cmd)
		return ""
	}
	// The index no longer has UIDs 1-20 and already has 302; c's view
	// still has the former and not yet the latter.
	if l := searchLine("UID SEARCH ALL"); !strings.HasPrefix(l, "* SEARCH 21 22 ") || !strings.HasSuffix(l, " 300") {
		t.Fatalf("UID SEARCH ALL before the session heard of the changes: %q", l)
	}
	c.ok("NOOP")
	for i := range 200 {
		k := key(0)
		before := calls.Load()
		fast := searchLine("UID SEARCH " + k)
		if calls.Load() == before {
			t.Fatalf("UID SEARCH %s did not use the index's flag matching", k)
		}
		slow := searchLine("UID SEARCH UID 1:* " + k)
		if fast != slow {
			t.Fatalf("search %d, %s:\nfrom the index %q\nper message    %q", i, k, fast, slow)
		}
	}
}
