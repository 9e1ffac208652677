package sieve

import (
	"testing"
	"time"
)

// date, currentdate and index (RFC 5260).

const dateMsg = `Received: from a by b; Tue, 27 Feb 2007 15:00:00 -0500
Received: from c by d; Mon, 26 Feb 2007 10:00:00 -0500
From: boss@example.com
Date: Tue, 27 Feb 2007 14:23:45 +0100 (CET)
Subject: meeting

body
`

func TestDateRFCExamples(t *testing.T) {
	// RFC 5260 §5's examples.
	want(t, run(t, `require ["date", "relational", "fileinto"];
if allof(header :is "from" "boss@example.com",
         date :value "ge" :originalzone "date" "hour" "09",
         date :value "lt" :originalzone "date" "hour" "17")
{ fileinto "urgent"; }`, dateMsg), "fileinto:urgent")

	src := `require ["date", "relational", "fileinto"];
if allof(currentdate :value "ge" "date" "2007-06-30",
         currentdate :value "le" "date" "2007-07-07")
{ fileinto "vacation"; }`
	env := testEnvelope()
	env.Now = time.Date(2007, 7, 2, 12, 0, 0, 0, time.UTC)
	want(t, runEnv(t, src, dateMsg, env), "fileinto:vacation")
	env.Now = time.Date(2007, 7, 9, 12, 0, 0, 0, time.UTC)
	want(t, runEnv(t, src, dateMsg, env), "implicit-keep")

	// RFC 5260 §7's index example: the second Received from the top.
	want(t, run(t, `require ["date", "relational", "index"];
if date :value "gt" :index 2 :zone "-0500" "received"
        "iso8601" "2007-02-26T09:00:00-05:00"
{ redirect "aftercutoff@example.org"; }`, dateMsg), "redirect:aftercutoff@example.org")
}

func TestDateParts(t *testing.T) {
	parts := map[string]string{
		"year": "2007", "month": "02", "day": "27", "date": "2007-02-27", "julian": "54158",
		"hour": "14", "minute": "23", "second": "45", "time": "14:23:45",
		"iso8601": "2007-02-27T14:23:45+01:00", "std11": "Tue, 27 Feb 2007 14:23:45 +0100",
		"zone": "+0100", "weekday": "2",
	}
	for part, v := range parts {
		res := run(t, `require "date"; if date :originalzone "date" "`+part+`" "`+v+`" { discard; }`, dateMsg)
		if summary(res) != "discard" {
			t.Errorf("date part %s is not %q", part, v)
		}
	}
	want(t, run(t, `require "date"; if date :zone "+0000" "date" "hour" "13" { discard; }`, dateMsg), "discard")
	want(t, run(t, `require ["date", "index"]; if header :index 1 :last :contains "received" "from c" { discard; }`, dateMsg), "discard")
	want(t, run(t, `require ["index"]; if header :index 1 :contains "received" "from c" { discard; }`, dateMsg), "implicit-keep")
	want(t, run(t, `require ["index"]; if header :index 3 :contains "received" "" { discard; }`, dateMsg), "implicit-keep")
	compileErr(t, `require "date"; if date "date" "fortnight" "1" { stop; }`, 1, "unknown date part")
	compileErr(t, `require "date"; if date :zone "CET" "date" "hour" "1" { stop; }`, 1, "bad :zone")
	compileErr(t, `require "index"; if header :last "a" "b" { stop; }`, 1, ":last needs :index")
	compileErr(t, `require "index"; if header :index 0 "a" "b" { stop; }`, 1, "1 or more")
}
