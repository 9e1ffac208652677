package sieve

import (
	"strings"
	"testing"
)

// editheader (RFC 5293).

const editMsg = `Received: from x by y; Tue, 1 Dec 2026 09:00:00 +0000
Delivered-To: bob@example.com
Delivered-To: alice@example.org
X-Sieve-Filtered: <kim@job.example.com>
X-Sieve-Filtered: <bob@example.com>
Subject: hello

body
`

func TestEditheaderRFCExamples(t *testing.T) {
	// RFC 5293 §9's examples, together.
	r := run(t, `require ["editheader", "fileinto"];
addheader "X-Source" "mail.example.com";
addheader :last "X-Sieve-Filtered" "<kim@job.example.com>";
deleteheader :index 1 :is "Delivered-To" "bob@example.com";
deleteheader :contains "X-Sieve-Filtered" "bob@example.com";
if header :is "X-Source" "mail.example.com" { fileinto "edited"; }`, editMsg)
	want(t, r, "addheader:X-Source addheader:X-Sieve-Filtered deleteheader:Delivered-To deleteheader:X-Sieve-Filtered fileinto:edited")
	hdr := string(r.Actions[len(r.Actions)-1].Header)
	wantHdr := "X-Source: mail.example.com\r\n" +
		"Received: from x by y; Tue, 1 Dec 2026 09:00:00 +0000\r\n" +
		"Delivered-To: alice@example.org\r\n" +
		"X-Sieve-Filtered: <kim@job.example.com>\r\n" +
		"Subject: hello\r\n" +
		"X-Sieve-Filtered: <kim@job.example.com>\r\n\r\n"
	if hdr != wantHdr {
		t.Fatalf("header after edits:\n%s\nwant:\n%s", hdr, wantHdr)
	}
	if r.ImplicitKeep || r.FinalHeader == nil {
		t.Fatalf("implicit keep %v, final header %q", r.ImplicitKeep, r.FinalHeader)
	}
}

func TestEditheaderRules(t *testing.T) {
	// Every field of a name; :index with :last counts from the end.
	r := run(t, `require "editheader"; deleteheader :index 1 :last "delivered-to"; if header :is "delivered-to" "bob@example.com" { keep; }`, editMsg)
	want(t, r, "deleteheader:delivered-to keep")
	r = run(t, `require "editheader"; deleteheader "delivered-to"; if not exists "delivered-to" { keep; }`, editMsg)
	want(t, r, "deleteheader:delivered-to keep")
	// A keep before an edit delivers the header as it was then.
	r = run(t, `require "editheader"; keep; addheader "X-A" "1";`, editMsg)
	if r.Actions[0].Header != nil || !strings.HasPrefix(string(r.FinalHeader), "X-A: 1\r\n") {
		t.Fatalf("keep header %q, final %q", r.Actions[0].Header, r.FinalHeader)
	}
	// Non-ASCII values are encoded, line breaks removed.
	r = run(t, `require "editheader"; addheader "X-Note" "Grüße
two"; if header :is "x-note" "Grüße two" { discard; }`, editMsg)
	if !strings.Contains(string(r.FinalHeader), "X-Note: =?utf-8?q?Gr=C3=BC=C3=9Fe_two?=\r\n") {
		t.Fatalf("final header %q", r.FinalHeader)
	}
	want(t, r, "addheader:X-Note discard")
	// Received and Auto-Submitted are protected.
	compileErr(t, `require "editheader"; deleteheader "Received";`, 1, "may not be changed")
	compileErr(t, `require "editheader"; addheader "auto-submitted" "no";`, 1, "may not be changed")
	compileErr(t, `require "editheader"; addheader "bad name" "x";`, 1, "invalid header field name")
	want(t, run(t, `require ["editheader", "variables"]; set "h" "received"; deleteheader "${h}"; if exists "received" { discard; }`, editMsg), "discard")
	runErr(t, `require "editheader"; addheader "a" "1"; addheader "a" "2"; addheader "a" "3";`, editMsg, Limits{MaxHeaderEdits: 2}, "header edits")
}
