package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// testOfflineIMAP syncs a local Maildir with tern using offlineimap3 over
// IMAPS, changes both sides, and checks that they converge. Line ends
// are compared after CRLF->LF folding: offlineimap may store either.
func testOfflineIMAP(t *testing.T, srv *server) {
	oi := need(t, "offlineimap")
	const user, pass = "offline", "oi-secret"
	home := t.TempDir()
	mail := filepath.Join(home, "Mail")
	rc := filepath.Join(home, "offlineimaprc")
	conf := fmt.Sprintf(`[general]
accounts = tern
metadata = %s/meta
maxsyncaccounts = 1

[Account tern]
localrepository = local
remoterepository = remote
utf8foldernames = yes

[Repository local]
type = Maildir
localfolders = %s

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = %s
remoteuser = %s
remotepass = %s
ssl = yes
sslcacertfile = %s
maxconnections = 1
`, home, mail, srv.imapsPort, user, pass, srv.certFile)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home}
	sync := func() string {
		t.Helper()
		args := []string{"-c", rc, "-o", "-u", "basic"}
		if os.Getenv("TERN_E2E_DEBUG") != "" {
			args = append(args, "-d", "imap")
		}
		return run(t, env, home, oi, args...)
	}

	c := srv.client(t, user, pass)
	m1 := testMessage("Bob <bob@example.org>", "oi one", 1)
	m2 := testMessage("Carol <carol@example.org>", "oi two", 2)
	m3 := testMessage("Dave <dave@example.org>", "oi three", 3)
	a1 := testMessage("Erin <erin@example.org>", "oi archived", 4)
	appendMsg(t, c, "INBOX", m1)
	appendMsg(t, c, "INBOX", m2, imap.FlagSeen)
	uid3 := appendMsg(t, c, "INBOX", m3, imap.FlagFlagged)
	uidA := appendMsg(t, c, "Archive", a1)
	big := bigMessage("oi big", 300<<10)
	appendMsg(t, c, "Sent", big, imap.FlagSeen)
	// A non-ASCII mailbox name: offlineimap (an IMAP4rev1 client) sees
	// it as modified UTF-7 ("Caf&AOk- Notes") and decodes it for the
	// local folder name. It is created by a client that enabled
	// UTF8=ACCEPT (go-imap sends raw UTF-8 names to any server that
	// advertises IMAP4rev2, without enabling it; tern, in IMAP4rev1
	// mode, rightly refuses those).
	const cafe = "Café Notes"
	cu := srv.client(t, user, pass)
	if _, err := cu.Enable(imap.CapUTF8Accept).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cu.Create(cafe, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	n1 := testMessage("Heidi <heidi@example.org>", "oi café", 7)
	appendMsg(t, cu, cafe, n1)

	localBox := func(name string) []maildirMsg {
		t.Helper()
		msgs := readMaildir(t, filepath.Join(mail, name))
		for i := range msgs {
			msgs[i].Body = lf(msgs[i].Body)
		}
		return msgs
	}

	log1 := sync()
	inbox := localBox("INBOX")
	if len(inbox) != 3 {
		t.Fatalf("local INBOX has %d messages after first sync, want 3; offlineimap said:\n%s", len(inbox), log1)
	}
	for _, want := range []struct {
		body  []byte
		flags string
	}{{m1, ""}, {m2, "S"}, {m3, "F"}} {
		got, ok := findMaildir(inbox, lf(want.body))
		if !ok {
			t.Fatalf("local INBOX lacks %q; has %v", want.body, inbox)
		}
		if got.Flags != want.flags {
			t.Errorf("local %s flags %q, want %q", filepath.Base(got.Path), got.Flags, want.flags)
		}
	}
	if archive := localBox("Archive"); len(archive) != 1 || !bytes.Equal(archive[0].Body, lf(a1)) {
		t.Fatalf("local Archive = %v, want the archived message", archive)
	}
	if sent := localBox("Sent"); len(sent) != 1 || !bytes.Equal(sent[0].Body, lf(big)) || sent[0].Flags != "S" {
		t.Fatalf("local Sent has %d messages, want exactly the %d-byte message with flag S", len(sent), len(big))
	}
	if notes := localBox(cafe); len(notes) != 1 || !bytes.Equal(notes[0].Body, lf(n1)) {
		ents, _ := os.ReadDir(mail)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("local %q has %v; local folders are %q", cafe, notes, names)
	}
	for _, box := range []string{"Drafts", "Trash", "Junk"} {
		if _, err := os.Stat(filepath.Join(mail, box, "cur")); err != nil {
			t.Errorf("mailbox %s was not created locally: %v", box, err)
		}
	}

	// Local changes: read m1, delete m2, add l1 to new/.
	l1 := lf(testMessage("Frank <frank@example.org>", "oi local", 5))
	if got, ok := findMaildir(inbox, lf(m1)); ok {
		setMaildirFlags(t, got, "S")
	}
	if got, ok := findMaildir(inbox, lf(m2)); ok {
		if err := os.Remove(got.Path); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mail, "INBOX", "new", "1772528400.e2e.local"), l1, 0o600); err != nil {
		t.Fatal(err)
	}
	// Server changes by another client: answer m3, delete a1, add s1.
	s1 := testMessage("Grace <grace@example.org>", "oi server", 6)
	appendMsg(t, c, "INBOX", s1)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(uid3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(uidA), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(imap.UIDSetNum(uidA)).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}

	log2 := sync()
	if os.Getenv("TERN_E2E_SHOWLOG") != "" {
		t.Logf("first sync:\n%s\nsecond sync:\n%s", log1, log2)
	}

	// tern side.
	srvInbox := mailboxContents(t, c, "INBOX")
	check := func(body []byte, flags ...string) {
		t.Helper()
		for _, m := range srvInbox {
			if bytes.Equal(lf(m.Body), lf(body)) {
				if !slices.Equal(m.Flags, flags) {
					t.Errorf("tern flags of %q = %v, want %v", body[:40], m.Flags, flags)
				}
				return
			}
		}
		t.Errorf("tern INBOX lacks %q after second sync; has %v; offlineimap said:\n%s", body, srvInbox, log2)
	}
	check(m1, "\\Seen")
	check(m3, "\\Answered", "\\Flagged")
	check(s1)
	check(l1)
	if _, ok := findBody(srvInbox, m2); ok || len(srvInbox) != 4 {
		t.Errorf("tern INBOX has %d messages (m2 present: %v), want 4 without m2; offlineimap said:\n%s", len(srvInbox), ok, log2)
	}
	// The uploaded message is stored with CRLF line ends on the wire.
	for _, m := range srvInbox {
		if bytes.Equal(lf(m.Body), l1) && !bytes.Equal(m.Body, bytes.ReplaceAll(l1, []byte("\n"), []byte("\r\n"))) {
			t.Errorf("uploaded message stored as %q, want the local bytes with CRLF line ends", m.Body)
		}
	}
	if got := mailboxContents(t, c, "Archive"); len(got) != 0 {
		t.Errorf("tern Archive has %d messages, want 0", len(got))
	}

	// Local side.
	inbox = localBox("INBOX")
	if len(inbox) != 4 {
		t.Errorf("local INBOX has %d messages after second sync, want 4: %v", len(inbox), inbox)
	}
	for _, want := range []struct {
		body  []byte
		flags string
	}{{m1, "S"}, {m3, "FR"}, {s1, ""}, {l1, ""}} {
		got, ok := findMaildir(inbox, lf(want.body))
		if !ok {
			t.Errorf("local INBOX lacks %q", want.body)
			continue
		}
		if got.Flags != want.flags {
			t.Errorf("local %s flags %q, want %q", filepath.Base(got.Path), got.Flags, want.flags)
		}
	}
	if got := localBox("Archive"); len(got) != 0 {
		t.Errorf("local Archive has %d messages after the server deleted its only one, want 0", len(got))
	}

	// A third sync has nothing to do and changes nothing.
	sync()
	if got := mailboxContents(t, c, "INBOX"); len(got) != 4 {
		t.Errorf("tern INBOX has %d messages after a no-op sync, want 4", len(got))
	}
	if got := localBox("INBOX"); len(got) != 4 {
		t.Errorf("local INBOX has %d messages after a no-op sync, want 4", len(got))
	}
}
