package server_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Mailbox names that try to escape the user's namespace reach nothing of
// another user's mail, and nothing outside the user's own directory is
// created.
func TestMailboxNameIsolation(t *testing.T) {
	dir := t.TempDir()
	ts := newTestServer(t, serverOpts{insecureAuth: true, dataDir: dir})
	ts.addUser("alice", "secret")
	ts.addUser("bob", "hunter2")
	bob := ts.dial()
	bob.ok("LOGIN bob hunter2")
	bob.ok("CREATE Secret")
	const secret = "Subject: bob's secret\r\n\r\nthe launch codes\r\n"
	bob.appendMsg("Secret", "", secret)
	bob.appendMsg("INBOX", "", secret)
	bob.ok("LOGOUT")

	filesBefore := listFiles(t, dir)

	alice := ts.dial()
	alice.ok("LOGIN alice secret")
	names := []string{
		`..`, `../bob`, `../bob/INBOX`, `../../users/2/Secret`, `/`, `/Secret`, `//Secret`,
		`~bob`, `~bob/Secret`, `#user/bob`, `#user/bob/Secret`, `#shared/bob`, `#public`,
		`"Secret\u0000"`, `bob/Secret`, `users/2`, `/etc/passwd`, `/tmp/x`, `C:\\Windows`,
		`..\\bob`, `&AC8-Secret`, `&AC4ALg-/bob`, `&AF4-`, `&-bob`, `INBOX/../../bob`,
		`Secret`, `SECRET`, `*`, `%`, `bob`,
	}
	for _, n := range names {
		mb := n
		if !strings.HasPrefix(mb, `"`) {
			mb = `"` + strings.ReplaceAll(mb, `\`, `\\`) + `"`
		}
		// None of these may show bob's message.
		for _, cmd := range []string{"SELECT " + mb, "EXAMINE " + mb, "STATUS " + mb + " (MESSAGES)", "LIST \"\" " + mb, "LIST " + mb + " *"} {
			us, tagged := alice.do(cmd)
			all := strings.Join(us, "\n") + "\n" + tagged
			if strings.Contains(all, "EXISTS") && !strings.Contains(all, "* 0 EXISTS") {
				t.Errorf("%s: alice sees messages: %s", cmd, all)
			}
			if strings.Contains(all, "MESSAGES 1") || strings.Contains(all, "MESSAGES 2") {
				t.Errorf("%s: alice sees bob's counts: %s", cmd, all)
			}
			if strings.Contains(strings.ToLower(all), "secret\"") && strings.HasPrefix(cmd, "LIST") && !strings.Contains(all, "Secret") {
				t.Errorf("%s: %s", cmd, all)
			}
		}
		// Writes with these names stay inside alice's account (or fail).
		alice.do("CREATE " + mb)
		alice.do("RENAME " + mb + " Renamed")
		alice.do("DELETE " + mb)
		alice.do("SUBSCRIBE " + mb)
		alice.do("APPEND " + mb + " {5+}\r\nhello")
		alice.do("DELETE Renamed")
		alice.ok("SELECT INBOX")
		alice.do("COPY 1:* " + mb)
		alice.do("UNSELECT")
	}
	alice.ok("LOGOUT")

	// Bob's mail is untouched.
	bob = ts.dial()
	bob.ok("LOGIN bob hunter2")
	for _, mb := range []string{"INBOX", "Secret"} {
		us := bob.ok("SELECT " + mb)
		hasLine(t, us, "* 1 EXISTS")
		us = bob.ok("FETCH 1 BODY.PEEK[]")
		if len(us) != 1 || !strings.Contains(us[0], "the launch codes") {
			t.Fatalf("bob's %s: %q", mb, us)
		}
	}
	us := bob.ok(`LIST "" *`)
	for _, l := range us {
		if strings.Contains(l, "Renamed") || strings.Contains(l, "..") || strings.Contains(l, "passwd") {
			t.Errorf("bob's mailbox list changed: %q", l)
		}
	}

	// No file appeared outside alice's own directory (users/1) and the
	// database files of the store.
	for f := range listFiles(t, dir) {
		if filesBefore[f] || strings.HasPrefix(f, "users/1/") || strings.HasPrefix(f, "tern.db") {
			continue
		}
		t.Errorf("new file outside alice's directory: %s", f)
	}
}

func listFiles(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = true
		return nil
	})
	return files
}

// The answer to a wrong password and to an unknown user is the same.
func TestNoUserEnumeration(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "secret")
	c := ts.dial()
	_, t1 := c.do("LOGIN alice wrong")
	_, t2 := c.do("LOGIN nosuchuser wrong")
	if t1 != t2 || !strings.HasPrefix(t1, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("bad password: %q; unknown user: %q", t1, t2)
	}
	// Same for AUTHENTICATE PLAIN (base64 of "\x00alice\x00wrong" etc.).
	_, a1 := c.do("AUTHENTICATE PLAIN AGFsaWNlAHdyb25n")
	_, a2 := c.do("AUTHENTICATE PLAIN AG5vc3VjaHVzZXIAd3Jvbmc=")
	if a1 != a2 || !strings.HasPrefix(a1, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("AUTHENTICATE bad password: %q; unknown user: %q", a1, a2)
	}
}

// AUTHENTICATE cancelled with "*" is a BAD and the session goes on.
func TestAuthenticateCancel(t *testing.T) {
	ts := newTestServer(t, serverOpts{insecureAuth: true})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.write("a AUTHENTICATE PLAIN\r\n")
	if l := c.readLine(); l != "+ " {
		t.Fatalf("got %q", l)
	}
	c.write("*\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "a BAD") {
		t.Fatalf("cancel: got %q", l)
	}
	// Garbage instead of base64, and a response that is far too long.
	c.write("b AUTHENTICATE PLAIN\r\n")
	c.readLine()
	c.write("!!!not base64!!!\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "b BAD") {
		t.Fatalf("bad base64: got %q", l)
	}
	c.ok("LOGIN alice secret")
}

// Without TLS (and without insecure auth) the server advertises
// LOGINDISABLED and refuses LOGIN and AUTHENTICATE; after STARTTLS it
// allows them.
func TestLoginDisabledBeforeTLS(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.dial()
	if !strings.Contains(c.greeting, "LOGINDISABLED") || !strings.Contains(c.greeting, "STARTTLS") || strings.Contains(c.greeting, "AUTH=PLAIN") {
		t.Fatalf("greeting %q", c.greeting)
	}
	c.expect("LOGIN alice secret", "NO [PRIVACYREQUIRED]")
	c.expect("AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==", "NO")
	// The correct password did not log in.
	c.expect("SELECT INBOX", "BAD")
	tc := ts.dialTLS()
	tc.ok("LOGIN alice secret")
}

// STARTTLS command injection (CVE-2011-0411 class): commands pipelined in
// plaintext behind STARTTLS are never executed.
func TestStartTLSInjection(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.dial()
	c.write("a STARTTLS\r\nb LOGIN alice secret\r\n")
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, _ := c.br.ReadString('\n')
	if !strings.HasPrefix(l, "a OK") {
		t.Fatalf("got %q", l)
	}
	waitClosed(t, c.conn, 5*time.Second)
}
