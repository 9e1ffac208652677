package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestExpungeWhileOthersFetch: one session expunges thousands of messages
// while another keeps fetching flags of all of them; afterwards the
// fetching session's view, STATUS and the store agree exactly.
func TestExpungeWhileOthersFetch(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "pw")
	const n = 3000
	ctx := context.Background()
	acct, err := ts.store.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 500 {
		var msgs []store.NewMessage
		for j := i; j < i+500; j++ {
			flags := []string{`\Seen`}
			if j%2 == 0 {
				flags = append(flags, `\Deleted`)
			}
			msgs = append(msgs, store.NewMessage{Body: []byte(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", j, j)), Flags: flags})
		}
		if _, err := acct.Append(ctx, "INBOX", msgs); err != nil {
			t.Fatal(err)
		}
	}
	acct.Close()

	a := ts.login("alice", "pw")
	b := ts.login("alice", "pw")
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")
	var wg sync.WaitGroup
	wg.Add(1)
	fetchErr := make(chan string, 1)
	go func() {
		defer wg.Done()
		for range 10 {
			u, tagged := b.do("UID FETCH 1:* (FLAGS)")
			if !strings.HasPrefix(tagged, "OK") || len(u) < n/2 {
				fetchErr <- fmt.Sprintf("FETCH during EXPUNGE: %q after %d lines", tagged, len(u))
				return
			}
		}
	}()
	u := a.ok("EXPUNGE")
	wg.Wait()
	close(fetchErr)
	if msg, ok := <-fetchErr; ok {
		t.Fatal(msg)
	}
	if got := countPrefix(u, "* "); got != n/2 {
		t.Fatalf("EXPUNGE sent %d responses, want %d", got, n/2)
	}
	b.ok("NOOP")
	u = b.ok("FETCH 1:* (UID FLAGS)")
	if len(u) != n/2 {
		t.Fatalf("after the expunge the other session sees %d messages, want %d", len(u), n/2)
	}
	for _, l := range u {
		if strings.Contains(l, `\Deleted`) {
			t.Fatalf("expunged message still in view: %s", l)
		}
	}
	hasLine(t, b.ok("STATUS INBOX (MESSAGES UNSEEN)"), fmt.Sprintf("* STATUS INBOX (MESSAGES %d UNSEEN 0)", n/2))
}

func countPrefix(lines []string, p string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, p) {
			n++
		}
	}
	return n
}
