package delivery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// userScripts is a script source holding scripts in memory: each user's
// active script, and named scripts for include.
type userScripts struct {
	mu     sync.Mutex
	active map[string]string
	named  map[string]string // "user/name"
}

func (s *userScripts) ActiveScript(ctx context.Context, user string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.active[user]
	if !ok {
		return nil, nil
	}
	return []byte(src), nil
}

func (s *userScripts) Script(ctx context.Context, user, name string, global bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if global {
		user = "@global"
	}
	src, ok := s.named[user+"/"+name]
	if !ok {
		return nil, fmt.Errorf("script %q: %w", name, sieve.ErrScriptNotFound)
	}
	return []byte(src), nil
}

// flagsOf returns the flags of every message in a mailbox, by UID.
func (e *testEnv) flagsOf(user, mailbox string) [][]string {
	e.t.Helper()
	ctx := context.Background()
	a := e.account(user)
	mi, err := a.Mailbox(ctx, mailbox)
	if err != nil {
		e.t.Fatal(err)
	}
	_, uids, err := a.Snapshot(ctx, mi.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]string
	err = a.Fetch(ctx, mi.ID, uids, store.WantFlags, func(m *store.Message) error {
		out = append(out, slices.Clone(m.Flags))
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *testEnv) count(user, mailbox string) int {
	e.t.Helper()
	a := e.account(user)
	st, err := a.Status(context.Background(), mailbox)
	if err != nil {
		return -1
	}
	return int(st.Messages)
}

const sieveMsg = "From: Boss <boss@example.com>\r\nTo: alice@example.org\r\nSubject: [acme] budget\r\n" +
	"List-Id: Acme <acme.lists.example.com>\r\nMessage-ID: <2@example.com>\r\n\r\nNumbers.\r\n"

// TestLMTPSieve delivers over LMTP on TCP to users whose active scripts
// file, flag, create, keep, discard and reject, and checks where the
// mail ended up and every recipient's own reply.
func TestLMTPSieve(t *testing.T) {
	scripts := &userScripts{
		active: map[string]string{
			// alice: mailing lists into a folder created on demand, with flags;
			// keep plus fileinto INBOX is one copy.
			"alice": `require ["fileinto", "mailbox", "imap4flags", "variables", "include"];
if header :matches "List-Id" "*<*.lists.*>" {
    addflag "\\Seen";
    addflag "$list";
    fileinto :create "Lists/${2}";
    stop;
}
include :personal "inbox-twice";`,
			// bob rejects the boss.
			"bob": `require "reject";
if address :is "from" "boss@example.com" { reject "I do not take mail from the boss."; }`,
			// carol discards.
			"carol": `discard;`,
			// dave's script does not compile: the message is kept.
			"dave": `if frobnicate { discard; }`,
			// erin files into her Junk special-use mailbox by flag.
			"erin": `require ["fileinto", "special-use", "editheader"];
addheader "X-Filed" "junk";
fileinto :specialuse "\\Junk" "Spam";`,
		},
		named: map[string]string{
			"alice/inbox-twice": `require ["fileinto"]; keep; fileinto "INBOX";`,
		},
	}
	e := newEnv(t, Options{Scripts: scripts}, "alice", "bob", "carol", "dave", "erin", "frank")
	if err := e.account("erin").CreateMailbox(context.Background(), "Junk Mail", `\Junk`); err != nil {
		t.Fatal(err)
	}
	e.startLMTP(LMTPConfig{})

	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<boss@example.com>")
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin", "frank"} {
		c.cmd(250, "RCPT TO:<%s@example.org>", u)
	}
	replies := c.data(sieveMsg, 6)
	for i, want := range []string{"250", "550 5.7.1 <bob@example.org> I do not take mail from the boss.", "250", "250", "250", "250"} {
		if !strings.HasPrefix(replies[i], want) {
			t.Errorf("reply %d: %q, want %q", i, replies[i], want)
		}
	}
	if n := e.count("alice", "Lists/acme"); n != 1 {
		t.Fatalf("alice Lists/acme: %d messages", n)
	}
	if f := e.flagsOf("alice", "Lists/acme")[0]; !slices.Contains(f, `\Seen`) || !slices.Contains(f, "$list") {
		t.Fatalf("alice's flags %v", f)
	}
	if n := e.count("alice", "INBOX"); n != 0 {
		t.Fatalf("alice INBOX: %d messages", n)
	}
	for user, n := range map[string]int{"bob": 0, "carol": 0, "dave": 1, "frank": 1} {
		if got := e.count(user, "INBOX"); got != n {
			t.Errorf("%s INBOX: %d messages, want %d", user, got, n)
		}
	}
	if n := e.count("erin", "Spam"); n != -1 {
		t.Errorf("erin: Spam created (%d)", n)
	}
	junk := e.bodies("erin", "Junk Mail")
	if len(junk) != 1 || !strings.HasPrefix(junk[0], "X-Filed: junk\r\nReturn-Path: <boss@example.com>\r\n") || !strings.HasSuffix(junk[0], "\r\n\r\nNumbers.\r\n") {
		t.Fatalf("erin's Junk Mail: %q", junk)
	}

	// A message that is not list mail: alice's include runs keep and
	// fileinto INBOX, which store one copy.
	c.cmd(250, "MAIL FROM:<friend@example.net>")
	c.cmd(250, "RCPT TO:<alice@example.org>")
	if r := c.data("From: friend@example.net\r\nSubject: hi\r\n\r\nhello\r\n", 1); !strings.HasPrefix(r[0], "250") {
		t.Fatalf("reply %q", r)
	}
	if n := e.count("alice", "INBOX"); n != 1 {
		t.Fatalf("alice INBOX after keep + fileinto INBOX: %d messages, want 1", n)
	}
}

// TestLMTPSieveMailboxID: :mailboxid finds a renamed folder; a missing
// folder without :create means INBOX.
func TestLMTPSieveMailboxID(t *testing.T) {
	scripts := &userScripts{active: map[string]string{}}
	e := newEnv(t, Options{Scripts: scripts}, "alice")
	ctx := context.Background()
	a := e.account("alice")
	if err := a.CreateMailbox(ctx, "Work", ""); err != nil {
		t.Fatal(err)
	}
	mi, err := a.Mailbox(ctx, "Work")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.RenameMailbox(ctx, "Work", "Job"); err != nil {
		t.Fatal(err)
	}
	scripts.active["alice"] = `require ["fileinto", "mailboxid"];
fileinto :mailboxid "` + mi.ObjectID() + `" "Work";
fileinto "Nowhere";`
	e.startLMTP(LMTPConfig{})
	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<x@example.net>")
	c.cmd(250, "RCPT TO:<alice@example.org>")
	if r := c.data(testMsg, 1); !strings.HasPrefix(r[0], "250") {
		t.Fatalf("reply %q", r)
	}
	if n := e.count("alice", "Job"); n != 1 {
		t.Errorf("Job: %d messages, want 1 (found by :mailboxid)", n)
	}
	if n := e.count("alice", "Work"); n != -1 {
		t.Errorf("Work exists (%d)", n)
	}
	if n := e.count("alice", "INBOX"); n != 1 {
		t.Errorf("INBOX: %d messages, want 1 (fileinto a missing folder)", n)
	}
}

// TestLMTPSieveHostileScript: a script that exceeds its limits at run
// time still delivers the message to INBOX.
func TestLMTPSieveHostileScript(t *testing.T) {
	var b strings.Builder
	b.WriteString("require [\"fileinto\", \"include\"];\n")
	for i := range 500 {
		fmt.Fprintf(&b, "if header :contains [\"subject\",\"from\",\"to\"] [\"a%d\",\"b\",\"c\",\"d\"] { fileinto \"x\"; }\n", i)
	}
	b.WriteString(`include "loop";`)
	scripts := &userScripts{
		active: map[string]string{"alice": b.String(), "bob": `require "include"; include "loop";`},
		named:  map[string]string{"bob/loop": `require "include"; include "loop";`, "alice/loop": `discard;`},
	}
	e := newEnv(t, Options{Scripts: scripts, SieveLimits: sieve.Limits{MaxSteps: 1000}}, "alice", "bob")
	e.startLMTP(LMTPConfig{})
	c := dialLMTP(t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<x@example.net>")
	c.cmd(250, "RCPT TO:<alice@example.org>")
	c.cmd(250, "RCPT TO:<bob@example.org>")
	for _, r := range c.data(testMsg, 2) {
		if !strings.HasPrefix(r, "250") {
			t.Fatalf("reply %q", r)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		if n := e.count(u, "INBOX"); n != 1 {
			t.Errorf("%s INBOX: %d messages, want 1 (implicit keep after the runtime error)", u, n)
		}
	}
}

// scriptStore is a store whose accounts keep an active Sieve script (as
// the store's script storage will): the real SQLite store, with the
// scripts held in a map.
type scriptStore struct {
	store.Store
	active map[string]string
}

type scriptAccount struct {
	store.Account
	src string
}

func (s scriptStore) Account(ctx context.Context, user string) (store.Account, error) {
	a, err := s.Store.Account(ctx, user)
	if err != nil {
		return nil, err
	}
	return scriptAccount{a, s.active[user]}, nil
}

func (a scriptAccount) ActiveSieveScript(ctx context.Context) ([]byte, string, error) {
	if a.src == "" {
		return nil, "", nil
	}
	return []byte(a.src), "main", nil
}

// TestStoreScripts: StoreScripts runs the script an account keeps, and
// changes nothing for a store without scripts (+detail still files).
func TestStoreScripts(t *testing.T) {
	e := newEnv(t, Options{}, "alice", "bob")
	ctx := context.Background()
	if err := e.account("bob").CreateMailbox(ctx, "lists", ""); err != nil {
		t.Fatal(err)
	}
	st := scriptStore{Store: e.st, active: map[string]string{"alice": `require ["fileinto", "copy", "mailbox"]; fileinto :copy :create "Copies";`}}
	d := New(st, Options{Scripts: StoreScripts(st), Logger: quietLog()})
	in := Incoming{User: "alice", Address: "alice@example.org", From: "x@example.net", Body: []byte(testMsg)}
	if res, err := d.DeliverFiltered(ctx, in); err != nil || len(res) != 2 {
		t.Fatalf("alice: %v %v", res, err)
	}
	if e.count("alice", "Copies") != 1 || e.count("alice", "INBOX") != 1 {
		t.Fatalf("alice: Copies %d, INBOX %d", e.count("alice", "Copies"), e.count("alice", "INBOX"))
	}
	// bob has no script; a store without script storage neither.
	for _, d := range []*Deliverer{d, New(e.st, Options{Scripts: StoreScripts(e.st), Logger: quietLog()})} {
		in := Incoming{User: "bob", Detail: "lists", Address: "bob+lists@example.org", Body: []byte(testMsg)}
		if res, err := d.DeliverFiltered(ctx, in); err != nil || len(res) != 1 || res[0].Mailbox != "lists" {
			t.Fatalf("bob: %v %v", res, err)
		}
	}
}
