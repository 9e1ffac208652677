package sieve

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// environment (RFC 5183) at delivery: location MDA, phase during, the
// imap.* items empty; an unknown item makes the test false.
func TestEnvironmentDelivery(t *testing.T) {
	src := `require ["environment", "imapsieve"];
if allof (environment :is "location" "MDA", environment :is "phase" "during",
          environment :is "name" "tern", environment :is "imap.cause" "",
          environment :is "imap.user" "") { discard; }`
	want(t, run(t, src, plainMsg), "discard")
	want(t, run(t, `require "environment"; if environment :contains "remote-host" "" { discard; }`, plainMsg), "implicit-keep")
	compileErr(t, `if environment :is "location" "MDA" { discard; }`, 1, "environment")
}

func imapEvent(cause, mailbox string, flags ...string) Envelope {
	env := testEnvelope()
	env.IMAP = &IMAPEvent{Cause: cause, Mailbox: mailbox, User: "alice", Email: "alice@example.org", Flags: flags}
	return env
}

// IMAP events (RFC 6785): the environment items, RFC 6785 §5's example
// 1, hasflag seeing the message's flags, and the delivery-only tests and
// actions failing at run time.
func TestIMAPSieveEvent(t *testing.T) {
	// RFC 6785 §5, example 1.
	ex1 := `require ["copy", "environment", "imapsieve"];
if anyof (environment :is "imap.cause" "APPEND",
          environment :is "imap.cause" "COPY")  {
    if environment :is "imap.mailbox" "ActionItems" {
        redirect :copy "actionitems@example.com";
    }
}`
	want(t, runEnv(t, ex1, plainMsg, imapEvent("COPY", "ActionItems")), "redirect:actionitems@example.com(copy) implicit-keep")
	want(t, runEnv(t, ex1, plainMsg, imapEvent("APPEND", "Other")), "implicit-keep")
	want(t, runEnv(t, ex1, plainMsg, testEnvelope()), "implicit-keep")

	src := `require ["environment", "imapsieve", "imap4flags"];
if allof (environment :is "location" "MS", environment :is "phase" "post",
          environment :is "imap.user" "alice", environment :is "imap.email" "alice@example.org",
          hasflag "\\Flagged") { addflag "$trained"; }`
	r := runEnv(t, src, plainMsg, imapEvent("COPY", "Junk", `\Flagged`, "$x"))
	if !r.ImplicitKeep || !slices.Equal(r.ImplicitKeepFlags, []string{`\Flagged`, "$x", "$trained"}) {
		t.Fatalf("keep %v flags %v", r.ImplicitKeep, r.ImplicitKeepFlags)
	}

	for _, bad := range []string{
		`require "envelope"; if envelope :is "from" "x@example.net" { discard; }`,
		`require "vacation"; vacation "away";`,
		`require "reject"; reject "no";`,
		`require "ereject"; ereject "no";`,
	} {
		s, err := Compile([]byte(bad), Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Execute(context.Background(), imapEvent("APPEND", "INBOX"), NewMessage([]byte(crlf(plainMsg))), Limits{})
		if err == nil || !strings.Contains(err.Error(), "IMAP event") || !res.ImplicitKeep || len(res.Actions) != 0 {
			t.Errorf("%s: err %v, result %+v", bad, err, res)
		}
	}
}
