package delivery

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeScripts writes name -> source files into a new directory.
func writeScripts(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func globalMsg(subject, extra string) string {
	return "From: Sender <sender@example.net>\r\nTo: x@example.org\r\nSubject: " + subject + "\r\n" +
		extra + "Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.net>\r\n\r\nBody.\r\n"
}

// deliverLMTP sends msg to each rcpt in one LMTP transaction and
// returns the replies.
func (e *testEnv) deliverLMTP(msg string, rcpts ...string) []string {
	e.t.Helper()
	c := dialLMTP(e.t, "tcp", e.addr)
	c.cmd(250, "MAIL FROM:<sender@example.net>")
	for _, r := range rcpts {
		c.cmd(250, "RCPT TO:<%s>", r)
	}
	return c.data(msg, len(rcpts))
}

// TestLMTPGlobalScripts runs before scripts (a directory, in name
// order), users' scripts and an after script over LMTP: a before script
// that files spam ends the sequence; a header a before script adds is
// seen by the user's script and stored; stop in a before script ends only
// that script; the after script runs only when the keep is still in
// effect; include :global reads the global directory; a broken user
// script counts as a keep; users without scripts keep the +detail rule.
func TestLMTPGlobalScripts(t *testing.T) {
	before := writeScripts(t, map[string]string{
		"10-spam.sieve": `require ["fileinto", "imap4flags"];
if header :contains "X-Spam-Flag" "YES" { addflag "$spam"; fileinto "Junk"; stop; }`,
		"20-stop.sieve": `require "editheader";
if header :contains "Subject" "quiet" { stop; }
addheader "X-Checked" "yes";`,
		"30-ignored.txt": `this is not a script`,
	})
	after := writeScripts(t, map[string]string{
		"archive.sieve": `require ["fileinto", "copy"];
if header :contains "Subject" "archive" { fileinto :copy "Archive"; }`,
	})
	global := writeScripts(t, map[string]string{
		"lists.sieve": `require "fileinto"; fileinto "Lists";`,
	})
	g, err := LoadGlobalScripts(GlobalConfig{Before: []string{before}, After: []string{filepath.Join(after, "archive.sieve")}, Dir: global})
	if err != nil {
		t.Fatal(err)
	}
	if b, a, i := g.Counts(); b != 2 || a != 1 || i != 1 {
		t.Fatalf("counts %d %d %d", b, a, i)
	}
	scripts := &userScripts{active: map[string]string{
		"alice": `require "fileinto"; if header :is "X-Checked" "yes" { fileinto "Checked"; }`,
		"carol": `if frobnicate { discard; }`,
		"dave":  `require "include"; include :global "lists";`,
	}}
	e := newEnv(t, Options{Scripts: scripts, Global: g, RecipientDelimiter: "+"}, "alice", "bob", "carol", "dave")
	ctx := context.Background()
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		for _, mb := range []string{"Junk", "Checked", "Archive", "Lists", "lists"} {
			if err := e.account(u).CreateMailbox(ctx, mb, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.startLMTP(LMTPConfig{})
	all := []string{"alice@example.org", "bob+lists@example.org", "carol@example.org", "dave@example.org"}

	for _, r := range e.deliverLMTP(globalMsg("cheap archive pills", "X-Spam-Flag: YES\r\n"), all...) {
		if !strings.HasPrefix(r, "250") {
			t.Fatalf("spam: %q", r)
		}
	}
	e.deliverLMTP(globalMsg("archive this", ""), all...)
	e.deliverLMTP(globalMsg("quiet archive", ""), all...)

	want := map[string]map[string]int{
		// alice: spam in Junk; the other two: "archive this" carries
		// X-Checked (filed into Checked, the after script does not run);
		// "quiet archive" skipped the header, so alice keeps it and the
		// after script files a copy.
		"alice": {"Junk": 1, "Checked": 1, "INBOX": 1, "Archive": 1},
		// bob has no script: his keeps follow +lists.
		"bob": {"Junk": 1, "lists": 2, "Archive": 2, "INBOX": 0},
		// carol's script does not compile: a keep, then the after script.
		"carol": {"Junk": 1, "INBOX": 2, "Archive": 2},
		// dave includes the global lists script: filed, no after script.
		"dave": {"Junk": 1, "Lists": 2, "Archive": 0, "INBOX": 0},
	}
	for user, boxes := range want {
		for mb, n := range boxes {
			if got := e.count(user, mb); got != n {
				t.Errorf("%s %s: %d messages, want %d", user, mb, got, n)
			}
		}
	}
	if f := e.flagsOf("alice", "Junk")[0]; len(f) != 1 || f[0] != "$spam" {
		t.Errorf("alice's Junk flags %v", f)
	}
	if b := e.bodies("alice", "Checked")[0]; !strings.Contains(b, "X-Checked: yes\r\n") {
		t.Errorf("alice's Checked copy lacks the before script's header:\n%s", b)
	}
	if b := e.bodies("carol", "Archive")[0]; !strings.Contains(b, "X-Checked: yes\r\n") {
		t.Errorf("the after script's copy lacks the before script's header:\n%s", b)
	}
}

// TestLMTPGlobalRejectAfterDelivery: a user script's reject after a
// before script stored a copy is an error of the user's script (a keep).
func TestLMTPGlobalRejectAfterDelivery(t *testing.T) {
	before := writeScripts(t, map[string]string{"a.sieve": `require ["fileinto", "copy"]; fileinto :copy "Audit";`})
	g, err := LoadGlobalScripts(GlobalConfig{Before: []string{before}})
	if err != nil {
		t.Fatal(err)
	}
	scripts := &userScripts{active: map[string]string{"alice": `require "reject"; reject "no";`}}
	e := newEnv(t, Options{Scripts: scripts, Global: g}, "alice")
	if err := e.account("alice").CreateMailbox(context.Background(), "Audit", ""); err != nil {
		t.Fatal(err)
	}
	e.startLMTP(LMTPConfig{})
	if r := e.deliverLMTP(globalMsg("hello", ""), "alice@example.org"); !strings.HasPrefix(r[0], "250") {
		t.Fatalf("reply %q", r[0])
	}
	if a, i := e.count("alice", "Audit"), e.count("alice", "INBOX"); a != 1 || i != 1 {
		t.Fatalf("Audit %d INBOX %d", a, i)
	}
}

// TestLoadGlobalScriptsErrors: a script that does not compile, a
// missing path, and a global_dir that is a file stop the start with an
// error naming the setting and the file.
func TestLoadGlobalScriptsErrors(t *testing.T) {
	dir := writeScripts(t, map[string]string{"ok.sieve": `keep;`, "bad.sieve": "keep;\nfrobnicate;\n"})
	for _, tc := range []struct {
		cfg  GlobalConfig
		want []string
	}{
		{GlobalConfig{Before: []string{dir}}, []string{"sieve.before", "bad.sieve", "line 2"}},
		{GlobalConfig{After: []string{filepath.Join(dir, "bad.sieve")}}, []string{"sieve.after", "bad.sieve", "line 2"}},
		{GlobalConfig{Dir: dir}, []string{"sieve.global_dir", "bad.sieve"}},
		{GlobalConfig{Before: []string{filepath.Join(dir, "missing.sieve")}}, []string{"sieve.before", "missing.sieve"}},
		{GlobalConfig{Dir: filepath.Join(dir, "ok.sieve")}, []string{"sieve.global_dir", "not a directory"}},
	} {
		_, err := LoadGlobalScripts(tc.cfg)
		if err == nil {
			t.Errorf("%+v: no error", tc.cfg)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q lacks %q", tc.cfg, err, w)
			}
		}
	}
}

// TestLMTPSieveSameScriptTwoUsers: two users with the same active script
// (one compiled script in the cache) each include their own personal
// script, never the other's.
func TestLMTPSieveSameScriptTwoUsers(t *testing.T) {
	same := `require "include"; include :personal "sub";`
	scripts := &userScripts{
		active: map[string]string{"alice": same, "bob": same},
		named: map[string]string{
			"alice/sub": `require "fileinto"; fileinto "AliceOnly";`,
			"bob/sub":   `require "fileinto"; fileinto "BobOnly";`,
		},
	}
	e := newEnv(t, Options{Scripts: scripts}, "alice", "bob")
	for _, u := range []string{"alice", "bob"} {
		for _, mb := range []string{"AliceOnly", "BobOnly"} {
			if err := e.account(u).CreateMailbox(context.Background(), mb, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.startLMTP(LMTPConfig{})
	e.deliverLMTP(globalMsg("one", ""), "alice@example.org")
	e.deliverLMTP(globalMsg("two", ""), "bob@example.org")
	if e.count("alice", "AliceOnly") != 1 || e.count("bob", "BobOnly") != 1 || e.count("bob", "AliceOnly") != 0 {
		t.Fatalf("alice: %d in AliceOnly; bob: %d in BobOnly, %d in AliceOnly",
			e.count("alice", "AliceOnly"), e.count("bob", "BobOnly"), e.count("bob", "AliceOnly"))
	}
}

// TestLMTPGlobalKeepFlags: the flags of a before script's keep travel
// with the message into the next script (RFC 5232's internal variable
// starts with them): an explicit keep :flags and an addflag before an
// implicit keep reach the user's implicit keep, a user script without
// imap4flags stores them with its fileinto, one with imap4flags sees
// them (hasflag) and can remove them, and an after script gets what the
// user's keep passed on.
func TestLMTPGlobalKeepFlags(t *testing.T) {
	before := writeScripts(t, map[string]string{
		"flags.sieve": `require ["imap4flags"];
if header :contains "Subject" "vip" { keep :flags ["\\Flagged", "$vip"]; stop; }
addflag "$scanned";`,
	})
	after := writeScripts(t, map[string]string{
		"after.sieve": `require ["imap4flags"]; if hasflag "$mine" { addflag "$after"; }`,
	})
	g, err := LoadGlobalScripts(GlobalConfig{Before: []string{before}, After: []string{after}})
	if err != nil {
		t.Fatal(err)
	}
	scripts := &userScripts{active: map[string]string{
		// no imap4flags: files lists, keeps the rest
		"alice": `require "fileinto"; if header :contains "Subject" "list" { fileinto "Lists"; }`,
		// imap4flags: sees the carried flags, removes one, adds its own
		"bob": `require ["imap4flags", "fileinto"];
if hasflag "$vip" { removeflag "$vip"; }
addflag "$mine";
if header :contains "Subject" "list" { fileinto :flags "$listflag" "Lists"; }`,
	}}
	e := newEnv(t, Options{Scripts: scripts, Global: g}, "alice", "bob", "carol")
	ctx := context.Background()
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := e.account(u).CreateMailbox(ctx, "Lists", ""); err != nil {
			t.Fatal(err)
		}
	}
	e.startLMTP(LMTPConfig{})
	all := []string{"alice@example.org", "bob@example.org", "carol@example.org"}
	for _, subj := range []string{"vip note", "plain note", "list note"} {
		for _, r := range e.deliverLMTP(globalMsg(subj, ""), all...) {
			if !strings.HasPrefix(r, "250") {
				t.Fatalf("%s: %q", subj, r)
			}
		}
	}
	want := map[string]map[string][]string{
		"alice": {
			"INBOX": {`$vip \Flagged`, `$scanned`},
			"Lists": {`$scanned`},
		},
		"bob": {
			"INBOX": {`$after $mine \Flagged`, `$after $mine $scanned`},
			"Lists": {`$listflag`},
		},
		// no script of her own: the before script's flags reach the
		// final keep through the after script.
		"carol": {
			"INBOX": {`$vip \Flagged`, `$scanned`, `$scanned`},
		},
	}
	for user, boxes := range want {
		for mb, flags := range boxes {
			var got []string
			for _, f := range e.flagsOf(user, mb) {
				slices.Sort(f)
				got = append(got, strings.Join(f, " "))
			}
			if !slices.Equal(got, flags) {
				t.Errorf("%s %s: flags %q, want %q", user, mb, got, flags)
			}
		}
	}
}
