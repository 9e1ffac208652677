package e2e_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// tty is neomutt running in a detached tmux session, driven by keys.
type tty struct {
	t    *testing.T
	sock string
	env  []string
	dir  string
}

func (s *tty) tmux(args ...string) string {
	s.t.Helper()
	return run(s.t, s.env, s.dir, "tmux", append([]string{"-S", s.sock}, args...)...)
}

// keys sends tmux key names (e.g. "Enter", "q", "C-u") to the pane.
func (s *tty) keys(keys ...string) {
	s.t.Helper()
	s.tmux(append([]string{"send-keys", "-t", "e2e"}, keys...)...)
}

// text types a literal string.
func (s *tty) text(str string) {
	s.t.Helper()
	s.tmux("send-keys", "-t", "e2e", "-l", str)
}

func (s *tty) screen() string {
	s.t.Helper()
	return s.tmux("capture-pane", "-p", "-t", "e2e")
}

// waitFor polls the screen until cond holds, failing after 20 s.
func (s *tty) waitFor(what string, cond func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		scr := s.screen()
		if cond(scr) {
			return scr
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("neomutt: timed out waiting for %s; screen:\n%s", what, scr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *tty) waitText(substr string) string {
	s.t.Helper()
	return s.waitFor(fmt.Sprintf("%q on screen", substr), func(scr string) bool { return strings.Contains(scr, substr) })
}

// waitServer polls mailbox, each time through a new connection of the
// independent client, until cond holds, failing after 20 s. A new
// connection each time because a concurrent expunge by the client under
// test can make tern drop a connection in the middle of a FETCH (known
// bug, see TestConcurrentExpungeFetch).
func waitServer(t *testing.T, srv *server, user, pass, mailbox, what string, cond func([]msg) bool) []msg {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last []msg
	var lastErr error
	for {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s in %s; it has %v (last error %v)", what, mailbox, last, lastErr)
		}
		c, err := imapclient.DialTLS(srv.imapsAddr, &imapclient.Options{
			TLSConfig:   &tls.Config{RootCAs: srv.roots(t), ServerName: "localhost"},
			DebugWriter: debugWriter(),
		})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if err := c.Login(user, pass).Wait(); err != nil {
			c.Close()
			t.Fatalf("login: %v", err)
		}
		msgs, exists, err := mailboxSnapshot(c, mailbox)
		c.Close()
		if err == nil && len(msgs) == exists {
			if cond(msgs) {
				return msgs
			}
			last = msgs
		} else if err != nil {
			lastErr = err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testNeomutt drives neomutt in a tmux pane like a person at the
// keyboard: read, flag, delete, save to another folder, see new mail
// arrive, change folder. The effects are checked on the server.
func testNeomutt(t *testing.T, srv *server) {
	neomutt := need(t, "neomutt")
	need(t, "tmux")
	const user, pass = "mutt", "mutt-secret"
	home := t.TempDir()
	rc := filepath.Join(home, "muttrc")
	conf := fmt.Sprintf(`set folder="imaps://%s@localhost:%s/"
set spoolfile="+INBOX"
set imap_pass="%s"
set ssl_ca_certificates_file="%s"
set certificate_file="%s"
set ssl_force_tls=yes
set imap_idle=yes
set mail_check=1
set timeout=1
set header_cache=""
set message_cachedir=""
set record=""
set postponed="+Drafts"
set quit=yes
set delete=yes
set move=no
set mark_old=no
set confirmappend=no
set confirmcreate=no
set wait_key=no
set sort=date-sent
set index_format="%%4C %%Z %%-20.20F %%s"
set from="Mutt User <mutt@example.org>"
set hostname="example.org"
set editor="%s"
set edit_headers=no
set fast_reply=yes
`, user, srv.imapsPort, pass, srv.certFile, filepath.Join(home, "certs"), filepath.Join(home, "editor.sh"))
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// The "editor" writes the body of a new message, as a person would.
	editor := "#!/bin/sh\nprintf 'Draft body written in the e2e editor.\\n' >> \"$1\"\n"
	if err := os.WriteFile(filepath.Join(home, "editor.sh"), []byte(editor), 0o700); err != nil {
		t.Fatal(err)
	}

	c := srv.client(t, user, pass)
	m1 := testMessage("Bob <bob@example.org>", "mutt alpha", 1)
	m2 := testMessage("Carol <carol@example.org>", "mutt bravo", 2)
	m3 := testMessage("Dave <dave@example.org>", "mutt charlie", 3)
	m4 := testMessage("Erin <erin@example.org>", "mutt delta", 4)
	for _, m := range [][]byte{m1, m2, m3, m4} {
		appendMsg(t, c, "INBOX", m)
	}

	s := &tty{t: t, sock: filepath.Join(home, "tmux.sock"), dir: home,
		env: []string{"HOME=" + home, "TERM=xterm-256color", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "TMUX="}}
	s.tmux("-f", "/dev/null", "new-session", "-d", "-s", "e2e", "-x", "150", "-y", "40",
		neomutt, "-n", "-F", rc)
	t.Cleanup(func() {
		// Kill only our own tmux server (and with it neomutt).
		runErr(s.env, s.dir, "tmux", "-S", s.sock, "kill-server")
	})

	// The index lists the four messages, oldest first (sorted by date).
	scr := s.waitText("mutt delta")
	for _, subj := range []string{"mutt alpha", "mutt bravo", "mutt charlie"} {
		if !strings.Contains(scr, subj) {
			t.Fatalf("index lacks %q:\n%s", subj, scr)
		}
	}

	// Read the first message: the pager shows its body, and after a sync
	// the server has \Seen on it.
	s.keys("Enter")
	s.waitText("Hello number 1.")
	s.keys("q")
	s.waitText("mutt delta")
	s.keys("$")
	waitServer(t, srv, user, pass, "INBOX", "\\Seen on alpha", func(ms []msg) bool {
		m, ok := findBody(ms, m1)
		return ok && m.has("\\Seen")
	})

	// Flag the second message ("j" to move down, "F" to flag).
	s.keys("j", "F", "$")
	waitServer(t, srv, user, pass, "INBOX", "\\Flagged on bravo", func(ms []msg) bool {
		m, ok := findBody(ms, m2)
		return ok && m.has("\\Flagged")
	})

	// Delete the third and sync: it is expunged. Typing "3" Enter jumps
	// to message 3; opening it proves the cursor is there.
	s.keys("3", "Enter")
	s.keys("Enter")
	s.waitText("Hello number 3.")
	s.keys("q", "d", "$")
	waitServer(t, srv, user, pass, "INBOX", "charlie expunged", func(ms []msg) bool {
		_, ok := findBody(ms, m3)
		return !ok && len(ms) == 3
	})

	// Save the fourth to Archive ("s", then the folder): copied there
	// with its bytes, and removed from INBOX at the sync.
	s.keys("3", "Enter") // after the expunge, delta is message 3
	s.keys("Enter")
	s.waitText("Hello number 4.")
	s.keys("q", "s")
	s.waitText("Save to mailbox")
	s.keys("C-u")
	s.text("=Archive")
	s.keys("Enter")
	s.keys("$")
	archive := waitServer(t, srv, user, pass, "Archive", "delta saved", func(ms []msg) bool { return len(ms) == 1 })
	if !bytes.Equal(archive[0].Body, m4) {
		t.Errorf("Archive holds %q, want the saved message bytes %q", archive[0].Body, m4)
	}
	waitServer(t, srv, user, pass, "INBOX", "delta moved out", func(ms []msg) bool {
		_, ok := findBody(ms, m4)
		return !ok && len(ms) == 2
	})

	// New mail arrives from elsewhere: neomutt shows it without a key.
	m5 := testMessage("Frank <frank@example.org>", "mutt echo arrives", 5)
	appendMsg(t, c, "INBOX", m5)
	s.waitText("mutt echo arrives")

	// Change to the Archive folder: the saved message is listed.
	s.keys("c")
	s.waitText("Open mailbox")
	s.keys("C-u")
	s.text("=Archive")
	s.keys("Enter")
	s.waitFor("the Archive index", func(scr string) bool {
		return strings.Contains(scr, "mutt delta") && !strings.Contains(scr, "mutt echo arrives")
	})

	// Compose a message and postpone it: neomutt APPENDs it to Drafts
	// with \Draft.
	s.keys("m")
	s.waitText("To:")
	s.text("bob@example.org")
	s.keys("Enter")
	s.waitText("Subject:")
	s.text("postponed from neomutt")
	s.keys("Enter")
	s.waitText("Compose") // the compose menu after the editor ran
	s.keys("P")
	drafts := waitServer(t, srv, user, pass, "Drafts", "the postponed draft", func(ms []msg) bool { return len(ms) == 1 })
	if d := drafts[0]; !d.has("\\Draft") || !bytes.Contains(d.Body, []byte("Subject: postponed from neomutt\r\n")) ||
		!bytes.Contains(d.Body, []byte("\r\n\r\nDraft body written in the e2e editor.\r\n")) ||
		!bytes.Contains(d.Body, []byte("To: bob@example.org\r\n")) {
		t.Errorf("Drafts holds %v, want a \\Draft message to bob with the subject and body typed", d)
	}

	// Quit; the final server state is what the session left.
	s.keys("q")
	inbox := mailboxContents(t, c, "INBOX")
	if len(inbox) != 3 || !bytes.Equal(inbox[0].Body, m1) || !bytes.Equal(inbox[1].Body, m2) || !bytes.Equal(inbox[2].Body, m5) {
		t.Errorf("INBOX at the end = %v, want alpha, bravo, echo", inbox)
	} else {
		for i, want := range [][]string{{"\\Seen"}, {"\\Flagged"}, nil} {
			if !slices.Equal(inbox[i].Flags, want) {
				t.Errorf("INBOX message %d flags %v, want %v", i+1, inbox[i].Flags, want)
			}
		}
	}
}
