package sieve

import (
	"context"
	"testing"
)

// fileinto (RFC 5228 §4.1), :copy (RFC 3894), :create and mailboxexists
// (RFC 5490), :specialuse and specialuse_exists (RFC 8579), :mailboxid
// and mailboxidexists (RFC 9042), redirect (RFC 5228 §4.2).

type mailboxList []MailboxInfo

func (l mailboxList) Mailboxes(ctx context.Context) ([]MailboxInfo, error) { return l, nil }

var testMailboxes = mailboxList{
	{Name: "INBOX", ID: "I1"},
	{Name: "Partners", ID: "P7"},
	{Name: "Spam", ID: "S3", SpecialUse: []string{`\Junk`}},
	{Name: "Sent", ID: "T2", SpecialUse: []string{`\Sent`}},
}

func mailboxEnv() Envelope {
	env := testEnvelope()
	env.Mailboxes = testMailboxes
	return env
}

func TestFileinto(t *testing.T) {
	want(t, run(t, `require "fileinto"; fileinto "Archive";`, plainMsg), "fileinto:Archive")
	// RFC 3894 §3: fileinto :copy keeps the implicit keep.
	want(t, run(t, `require ["copy", "fileinto"]; fileinto :copy "incoming";`, plainMsg), "fileinto:incoming(copy) implicit-keep")
	want(t, run(t, `require "copy"; redirect :copy "bob@example.org";`, plainMsg), "redirect:bob@example.org(copy) implicit-keep")
	want(t, run(t, `redirect "bob@example.org";`, plainMsg), "redirect:bob@example.org")
	// The same redirect twice is done once.
	want(t, run(t, `redirect "bob@example.org"; redirect "BOB@example.org";`, plainMsg), "redirect:bob@example.org")
	compileErr(t, `require "fileinto"; fileinto "";`, 1, "empty mailbox")
}

func TestMailboxExtension(t *testing.T) {
	// RFC 5490 §3.1's example.
	src := `require ["fileinto", "reject", "mailbox"];
if mailboxexists "Partners" {
   fileinto "Partners";
} else {
   reject "This message was not accepted by the Mailstore";
}`
	want(t, runEnv(t, src, plainMsg, mailboxEnv()), "fileinto:Partners")
	want(t, runEnv(t, src, plainMsg, testEnvelope()), "reject:This message was not accepted by the Mailstore")
	r := run(t, `require ["fileinto", "mailbox"]; fileinto :create "INBOX.folder";`, plainMsg)
	if !r.Actions[0].Create {
		t.Fatal(":create not set")
	}
	want(t, runEnv(t, `require "mailbox"; if mailboxexists ["inbox", "Partners", "Nope"] { discard; }`, plainMsg, mailboxEnv()), "implicit-keep")
}

func TestSpecialUse(t *testing.T) {
	// RFC 8579 §4's example.
	r := run(t, `require ["fileinto", "special-use"];
fileinto :specialuse "\\Junk" "Spam";`, plainMsg)
	if a := r.Actions[0]; a.Mailbox != "Spam" || a.SpecialUse != `\Junk` {
		t.Fatalf("%+v", a)
	}
	want(t, runEnv(t, `require "special-use"; if specialuse_exists "\\Junk" { discard; }`, plainMsg, mailboxEnv()), "discard")
	want(t, runEnv(t, `require "special-use"; if specialuse_exists "Spam" ["\\Junk", "\\Sent"] { discard; }`, plainMsg, mailboxEnv()), "implicit-keep")
	want(t, runEnv(t, `require "special-use"; if specialuse_exists ["\\Junk", "\\Sent"] { discard; }`, plainMsg, mailboxEnv()), "discard")
	compileErr(t, `require ["fileinto", "special-use"]; fileinto :specialuse "Junk" "Spam";`, 1, "not a special-use flag")
}

func TestMailboxID(t *testing.T) {
	// RFC 9042 §3's example.
	r := run(t, `require ["fileinto", "mailboxid"];
if header :contains ["from"] "coyote" {
    fileinto :mailboxid "F6352ae03-b7f5-463c-896f-d8b48ee3"
             "INBOX.harassment";
}`, plainMsg)
	if a := r.Actions[0]; a.MailboxID != "F6352ae03-b7f5-463c-896f-d8b48ee3" || a.Mailbox != "INBOX.harassment" {
		t.Fatalf("%+v", a)
	}
	want(t, runEnv(t, `require "mailboxid"; if mailboxidexists ["P7", "S3"] { discard; }`, plainMsg, mailboxEnv()), "discard")
	want(t, runEnv(t, `require "mailboxid"; if mailboxidexists ["P7", "nope"] { discard; }`, plainMsg, mailboxEnv()), "implicit-keep")
}

func TestDeliveriesMergeKeepAndInbox(t *testing.T) {
	r := run(t, `require ["fileinto", "imap4flags"]; addflag "\\Seen"; keep; fileinto :flags "\\Flagged" "inbox"; fileinto "Work";`, plainMsg)
	ds := r.Deliveries()
	if len(ds) != 2 || ds[0].Mailbox != "INBOX" || ds[1].Mailbox != "Work" {
		t.Fatalf("deliveries %+v", ds)
	}
	if got := ds[0].Flags; len(got) != 2 || got[0] != `\Seen` || got[1] != `\Flagged` {
		t.Fatalf("INBOX flags %v", got)
	}
	r = run(t, `require ["fileinto", "copy"]; fileinto :copy "INBOX";`, plainMsg)
	if ds := r.Deliveries(); len(ds) != 1 || ds[0].Mailbox != "INBOX" {
		t.Fatalf("fileinto :copy INBOX plus implicit keep: %+v", ds)
	}
}

func TestActionString(t *testing.T) {
	r := run(t, `require ["fileinto", "copy", "imap4flags", "mailbox", "reject", "editheader"];
fileinto :copy :create :flags "\\Seen" "Lists/acme"; redirect "a@example.org"; addheader "X-A" "1"; deleteheader "X-B";`, plainMsg)
	var got []string
	for _, a := range r.Actions {
		got = append(got, a.String())
	}
	want := []string{`fileinto :copy :create :flags ["\\Seen"] "Lists/acme"`, `redirect "a@example.org"`, `addheader "X-A" "1"`, `deleteheader "X-B" (0 removed)`}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("action %d: %s, want %s", i, got[i], want[i])
		}
	}
}
