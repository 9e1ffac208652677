package e2e_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// testMbsync syncs a local Maildir with tern using mbsync (isync) over
// IMAPS, changes both sides, and checks that they converge.
func testMbsync(t *testing.T, srv *server) {
	mbsync := need(t, "mbsync")
	const user, pass = "mbsync", "mb-secret"
	home := t.TempDir()
	mail := filepath.Join(home, "Mail")
	rc := filepath.Join(home, ".mbsyncrc")
	conf := fmt.Sprintf(`IMAPAccount tern
Host localhost
Port %s
User %s
Pass %s
SSLType IMAPS
CertificateFile %s

IMAPStore tern-remote
Account tern

MaildirStore tern-local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel tern
Far :tern-remote:
Near :tern-local:
Patterns *
Create Both
Expunge Both
SyncState *
`, srv.imapsPort, user, pass, srv.certFile, mail, mail)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home}
	sync := func() string {
		t.Helper()
		args := []string{"-c", rc, "-V", "-a"}
		if os.Getenv("TERN_E2E_DEBUG") != "" {
			args = []string{"-c", rc, "-D", "-a"}
		}
		return run(t, env, home, mbsync, args...)
	}

	c := srv.client(t, user, pass)
	m1 := testMessage("Bob <bob@example.org>", "mb one", 1)
	m2 := testMessage("Carol <carol@example.org>", "mb two", 2)
	m3 := testMessage("Dave <dave@example.org>", "mb three", 3)
	a1 := testMessage("Erin <erin@example.org>", "mb archived", 4)
	appendMsg(t, c, "INBOX", m1)
	appendMsg(t, c, "INBOX", m2, imap.FlagSeen)
	uid3 := appendMsg(t, c, "INBOX", m3, imap.FlagFlagged)
	uidA := appendMsg(t, c, "Archive", a1)
	big := bigMessage("mb big", 300<<10)
	appendMsg(t, c, "Sent", big, imap.FlagSeen)

	// First sync: everything comes down, with flags.
	log1 := sync()
	inbox := readMaildir(t, filepath.Join(mail, "INBOX"))
	if len(inbox) != 3 {
		t.Fatalf("local INBOX has %d messages after first sync, want 3; mbsync said:\n%s", len(inbox), log1)
	}
	for _, want := range []struct {
		body  []byte
		flags string
	}{{m1, ""}, {m2, "S"}, {m3, "F"}} {
		got, ok := findMaildir(inbox, lf(want.body))
		if !ok {
			t.Fatalf("local INBOX lacks %q; has %+v", want.body, inbox)
		}
		if got.Flags != want.flags {
			t.Errorf("local %s flags %q, want %q", filepath.Base(got.Path), got.Flags, want.flags)
		}
	}
	archive := readMaildir(t, filepath.Join(mail, "Archive"))
	if len(archive) != 1 || !bytes.Equal(archive[0].Body, lf(a1)) {
		t.Fatalf("local Archive = %+v, want the archived message", archive)
	}
	if sent := readMaildir(t, filepath.Join(mail, "Sent")); len(sent) != 1 || !bytes.Equal(sent[0].Body, lf(big)) || sent[0].Flags != "S" {
		t.Fatalf("local Sent has %d messages, want exactly the %d-byte message with flag S", len(sent), len(big))
	}
	for _, box := range []string{"Drafts", "Trash", "Junk"} {
		if _, err := os.Stat(filepath.Join(mail, box, "cur")); err != nil {
			t.Errorf("mailbox %s was not created locally: %v", box, err)
		}
	}

	// Local changes: read m1, delete m2, add l1 to new/.
	l1 := lf(testMessage("Frank <frank@example.org>", "mb local", 5))
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
	s1 := testMessage("Grace <grace@example.org>", "mb server", 6)
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

	// tern side. mbsync adds an X-TUID header to what it uploads.
	srvInbox := mailboxContents(t, c, "INBOX")
	for i := range srvInbox {
		srvInbox[i].Body = stripTUID(srvInbox[i].Body)
	}
	check := func(body []byte, flags ...string) {
		t.Helper()
		m, ok := findBody(srvInbox, body)
		if !ok {
			t.Errorf("tern INBOX lacks %q after second sync; has %d messages: %v", body, len(srvInbox), srvInbox)
			return
		}
		if !slices.Equal(m.Flags, flags) {
			t.Errorf("tern flags of %q = %v, want %v", body[:40], m.Flags, flags)
		}
	}
	check(m1, "\\Seen")
	check(m3, "\\Answered", "\\Flagged")
	check(s1)
	check(bytes.ReplaceAll(l1, []byte("\n"), []byte("\r\n")))
	if _, ok := findBody(srvInbox, m2); ok || len(srvInbox) != 4 {
		t.Errorf("tern INBOX has %d messages (m2 present: %v), want 4 without m2; mbsync said:\n%s", len(srvInbox), ok, log2)
	}
	if got := mailboxContents(t, c, "Archive"); len(got) != 0 {
		t.Errorf("tern Archive has %d messages, want 0", len(got))
	}

	// Local side.
	inbox = readMaildir(t, filepath.Join(mail, "INBOX"))
	if len(inbox) != 4 {
		t.Errorf("local INBOX has %d messages after second sync, want 4", len(inbox))
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
	if got := readMaildir(t, filepath.Join(mail, "Archive")); len(got) != 0 {
		t.Errorf("local Archive has %d messages after the server deleted its only one, want 0", len(got))
	}

	// The same account over STARTTLS on the plain port: mbsync lists
	// the mailboxes (-l) after upgrading the connection.
	starttls := filepath.Join(home, "starttls.rc")
	conf2 := strings.Replace(strings.Replace(conf, "SSLType IMAPS", "SSLType STARTTLS", 1),
		"Port "+srv.imapsPort, "Port "+srv.imapPort, 1)
	if err := os.WriteFile(starttls, []byte(conf2), 0o600); err != nil {
		t.Fatal(err)
	}
	listed := run(t, env, home, mbsync, "-c", starttls, "-l", "-a")
	for _, box := range []string{"INBOX", "Archive", "Drafts", "Sent", "Trash", "Junk"} {
		if !regexp.MustCompile(`(?m)^` + box + `$`).MatchString(listed) {
			t.Errorf("mbsync -l over STARTTLS did not list %s:\n%s", box, listed)
		}
	}

	// A third sync has nothing to do and changes nothing.
	sync()
	if got := mailboxContents(t, c, "INBOX"); len(got) != 4 {
		t.Errorf("tern INBOX has %d messages after a no-op sync, want 4", len(got))
	}
	if got := readMaildir(t, filepath.Join(mail, "INBOX")); len(got) != 4 {
		t.Errorf("local INBOX has %d messages after a no-op sync, want 4", len(got))
	}
}
