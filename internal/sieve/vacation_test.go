package sieve

import (
	"strings"
	"testing"
	"time"
)

// vacation (RFC 5230) and vacation-seconds (RFC 6131).

func vacationOf(t *testing.T, r *Result) *Vacation {
	t.Helper()
	for _, a := range r.Actions {
		if a.Kind == ActionVacation {
			return a.Vacation
		}
	}
	return nil
}

func TestVacationRFCExamples(t *testing.T) {
	// RFC 5230 §4's first example.
	src := `require "vacation";
if header :contains "subject" "cyrus" {
    vacation "I'm out -- send mail to cyrus-bugs";
} else {
    vacation "I'm out -- call me at 302 555 0666.";
}`
	r := run(t, src, plainMsg)
	v := vacationOf(t, r)
	if v == nil || v.Reason != "I'm out -- call me at 302 555 0666." || v.Period != 7*24*time.Hour || !r.ImplicitKeep {
		t.Fatalf("vacation %+v, implicit keep %v", v, r.ImplicitKeep)
	}
	msg := string(v.Message)
	for _, h := range []string{
		"From: <alice@example.org>\r\n", "To: <sender@example.net>\r\n",
		"Subject: Auto: I have a present for you\r\n",
		"In-Reply-To: <1234@local.example>\r\n", "References: <1234@local.example>\r\n",
		"Auto-Submitted: auto-replied", "\r\n\r\nI'm out -- call me at 302 555 0666.",
	} {
		if !strings.Contains(msg, h) {
			t.Errorf("reply lacks %q:\n%s", h, msg)
		}
	}
	if v.To != "sender@example.net" || v.Key == "" {
		t.Fatalf("to %q key %q", v.To, v.Key)
	}

	// RFC 5230 §4.2-4.5: :days, :addresses, :subject, :from, :handle.
	r = run(t, `require "vacation";
vacation :days 23 :addresses ["tjs@example.edu",
                              "ts4z@landru.example.edu"]
   :subject "Gone fishing" :from "tjs@example.edu" :handle "fish"
   "I'm away until October 19.  If it's an emergency, call 911, I guess." ;`,
		"From: sender@example.net\nTo: tjs@example.edu\nSubject: x\n\nx\n")
	v = vacationOf(t, r)
	if v == nil || v.Period != 23*24*time.Hour || v.Subject != "Gone fishing" || v.From != "tjs@example.edu" || v.Handle != "fish" {
		t.Fatalf("vacation %+v", v)
	}
	// RFC 6131.
	r = run(t, `require ["vacation", "vacation-seconds"]; vacation :seconds 1800 "back soon";`, plainMsg)
	if v = vacationOf(t, r); v == nil || v.Period != 30*time.Minute {
		t.Fatalf("vacation %+v", v)
	}
	compileErr(t, `require "vacation"; vacation :seconds 5 "x";`, 1, "needs require \"vacation-seconds\"")
	compileErr(t, `require ["vacation", "vacation-seconds"]; vacation :days 1 :seconds 5 "x";`, 1, "cannot be combined")
}

func TestVacationNoReply(t *testing.T) {
	src := `require "vacation"; vacation "away";`
	cases := map[string]string{
		"list":           "List-Id: <l.example>\nTo: alice@example.org\n\nx\n",
		"auto-submitted": "Auto-Submitted: auto-generated\nTo: alice@example.org\n\nx\n",
		"bulk":           "Precedence: bulk\nTo: alice@example.org\n\nx\n",
		"not addressed":  "To: someone@example.org\n\nx\n",
	}
	for name, msg := range cases {
		if v := vacationOf(t, run(t, src, msg)); v != nil {
			t.Errorf("%s: a reply was built", name)
		}
	}
	for _, from := range []string{"", "alice@example.org", "owner-list@example.net", "MAILER-DAEMON@example.net", "list-request@example.net", "noreply@example.net"} {
		env := testEnvelope()
		env.From = from
		if v := vacationOf(t, runEnv(t, src, plainMsg, env)); v != nil {
			t.Errorf("sender %q: a reply was built", from)
		}
	}
	// Auto-Submitted: no is a person.
	if v := vacationOf(t, run(t, src, "Auto-Submitted: no\nTo: alice@example.org\n\nx\n")); v == nil {
		t.Error("Auto-Submitted: no got no reply")
	}
	runErr(t, `require "vacation"; vacation "a"; vacation "b";`, plainMsg, Limits{}, "vacation used twice")
	runErr(t, `require ["vacation", "reject"]; vacation "a"; reject "b";`, plainMsg, Limits{}, "cannot be combined")
}
