package sieve

import (
	"context"
	"testing"
	"time"
)

// duplicate (RFC 7352).

// seenIDs is the duplicate state of a test: the marks of earlier runs.
type seenIDs map[string]time.Duration

func (s seenIDs) Seen(ctx context.Context, key string) (bool, error) {
	_, ok := s[key]
	return ok, nil
}

// deliver runs src for msg and records the result's marks, as a
// delivery does after storing the message.
func (s seenIDs) deliver(t *testing.T, src, msg string) *Result {
	t.Helper()
	env := testEnvelope()
	env.Duplicates = s
	r := runEnv(t, src, msg, env)
	for _, m := range r.DuplicateMarks {
		s[m.Key] = m.Expiry
	}
	return r
}

func TestDuplicateRFCExamples(t *testing.T) {
	// RFC 7352 §4, first example.
	src := `require ["duplicate", "fileinto", "mailbox"];
if duplicate {
  fileinto :create "Trash/Duplicate";
}`
	seen := seenIDs{}
	want(t, seen.deliver(t, src, plainMsg), "implicit-keep")
	want(t, seen.deliver(t, src, plainMsg), "fileinto:Trash/Duplicate")
	other := "Message-ID: <other@local.example>\n\nx\n"
	want(t, seen.deliver(t, src, other), "implicit-keep")

	// §4, second example: a handle and a header of its own.
	src3 := `require ["duplicate"];
if duplicate :header "X-Event-ID" :handle "notifier" { discard; }`
	ev := "X-Event-ID: 42\nMessage-ID: <1234@local.example>\n\nx\n"
	want(t, seen.deliver(t, src3, ev), "implicit-keep")
	want(t, seen.deliver(t, src3, ev), "discard")
	// The same header without the handle is another key: not seen yet.
	want(t, seen.deliver(t, `require "duplicate"; if duplicate :header "X-Event-ID" { discard; }`, ev), "implicit-keep")
}

func TestDuplicateUniqueID(t *testing.T) {
	seen := seenIDs{}
	src := `require ["duplicate", "variables", "imap4flags"];
if header :matches "subject" "ALERT: *" {
  if duplicate :seconds 60 :uniqueid "${1}" {
    setflag "\\seen";
  }
}`
	want(t, seen.deliver(t, src, "Subject: ALERT: disk full\n\nx\n"), "implicit-keep")
	want(t, seen.deliver(t, src, "Subject: ALERT: disk full\n\ny\n"), `implicit-keep[\Seen]`)
	for _, exp := range seen {
		if exp != time.Minute {
			t.Fatalf("expiry %v, want 1m", exp)
		}
	}
	// Without a Message-ID there is nothing to compare: not a duplicate.
	want(t, seen.deliver(t, `require "duplicate"; if duplicate { discard; }`, "Subject: x\n\nx\n"), "implicit-keep")
}
