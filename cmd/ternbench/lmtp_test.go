package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/delivery"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

func TestLMTPPoolDeterministic(t *testing.T) {
	for _, size := range []int{4 << 10, 100 << 10} {
		a, b := lmtpPool(3, size, 4), lmtpPool(3, size, 4)
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("size %d: message %d differs for the same seed", size, i)
			}
			if n := len(a[i]); n < size*8/10 || n > size*12/10 {
				t.Errorf("size %d: message %d has %d bytes", size, i, n)
			}
		}
		if bytes.Equal(a[0], a[1]) {
			t.Errorf("size %d: pool messages are all the same", size)
		}
	}
}

// TestLMTPWorkload delivers a bounded number of messages over real LMTP to
// tern's delivery server on a real SQLite store and checks the report and
// the stored mail.
func TestLMTPWorkload(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Notifier: notify.New(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, u := range []string{"user1", "user2"} {
		if err := st.CreateUser(ctx, u, "x"); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := delivery.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := delivery.NewLMTPServer(delivery.New(st, delivery.Options{Logger: log}), delivery.LMTPConfig{})
	go srv.Serve(ln)
	defer srv.Close()

	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	host, p := splitHostPort(t, ln.Addr().String())
	code := run(ctx, []string{"lmtp", "--host", host, "--port", p, "--users", "2", "--concurrency", "3",
		"--count", "10", "--size", "4096", "--pool", "4", "--label", "tern", "--json", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	var r result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	d := findOp(r.Ops, "deliver")
	if r.Workload != "lmtp" || r.Primary != "messages/s" || r.Value <= 0 || d.Count != 10 || d.Errors != 0 || r.Concurrency != 3 {
		t.Fatalf("result: %+v", r)
	}
	if !strings.Contains(stdout.String(), "messages/s") {
		t.Errorf("stdout: %s", stdout.String())
	}

	// Recipients alternate by message number; which worker ran which of
	// the 10 operations depends on timing, so only the total is exact. The
	// stored bodies end with the pool's messages.
	pool := lmtpPool(1, 4096, 4)
	total := 0
	for _, u := range []string{"user1", "user2"} {
		acct, err := st.Account(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		s, uids, err := snapshotInbox(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		if s.Messages == 0 {
			t.Errorf("%s: no messages delivered", u)
		}
		total += int(s.Messages)
		for _, uid := range uids {
			body, err := acct.OpenBody(ctx, s.ID, uid)
			if err != nil {
				t.Fatal(err)
			}
			raw := make([]byte, body.Size())
			body.ReadAt(raw, 0)
			body.Close()
			found := false
			for _, m := range pool {
				found = found || bytes.HasSuffix(raw, m)
			}
			if !found {
				t.Errorf("%s uid %d: body is none of the generated messages", u, uid)
			}
		}
		acct.Close()
	}
	if total != 10 {
		t.Errorf("%d messages delivered in all, want 10", total)
	}
}

func snapshotInbox(ctx context.Context, a store.Account) (store.MailboxStatus, []uint32, error) {
	mb, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		return store.MailboxStatus{}, nil, err
	}
	return a.Snapshot(ctx, mb.ID)
}

func splitHostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// TestAppendNewWords: the words go on a last line of the message, are
// new each time, and the pool message they extend is left as it was.
func TestAppendNewWords(t *testing.T) {
	pool := lmtpPool(1, 4096, 1)
	orig := bytes.Clone(pool[0])
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for range 50 {
		m := appendNewWords(slices.Clip(pool[0]), r, 20)
		if !bytes.HasPrefix(m, orig) || !bytes.HasSuffix(m, []byte("\r\n")) {
			t.Fatalf("message not extended by a last line: %q", m[len(orig)-20:])
		}
		words := strings.Fields(string(m[len(orig):]))
		if len(words) != 20 {
			t.Fatalf("%d words, want 20", len(words))
		}
		for _, w := range words {
			if len(w) < 8 || len(w) > 12 || seen[w] {
				t.Fatalf("word %q: wrong length or seen before", w)
			}
			seen[w] = true
		}
	}
	if !bytes.Equal(pool[0], orig) {
		t.Fatal("the pool message was changed")
	}
}

// TestNewWordsNeedPlainText: --new-words with a size that makes multipart
// messages is refused (the words would land in the MIME epilogue, which
// no index reads).
func TestNewWordsNeedPlainText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"lmtp", "--port", "1", "--size", "16384", "--new-words", "5"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--new-words needs --size") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
