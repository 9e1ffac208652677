package sieve

import "testing"

// reject and ereject (RFC 5429).

func TestReject(t *testing.T) {
	// RFC 5429 §2.2's example.
	r := run(t, `require ["reject"];

if header :contains "from" "coyote@desert.example.org" {
   reject text:
I am not taking mail from you, and I don't
want your birdseed, either!
.
   ;
}`, plainMsg)
	want(t, r, "reject:I am not taking mail from you, and I don't\r\nwant your birdseed, either!\r\n")
	// RFC 5429 §2.1's example.
	want(t, run(t, `require ["ereject"];
if address :domain :is "from" "desert.example.org" {
    ereject "I no longer accept mail from this domain";
}`, plainMsg), "ereject:I no longer accept mail from this domain")
	// reject with a delivering action is an error: the message is kept.
	runErr(t, `require "reject"; keep; reject "no";`, plainMsg, Limits{}, "cannot be combined")
	runErr(t, `require "reject"; reject "no"; redirect "a@example.org";`, plainMsg, Limits{}, "cannot be combined")
	runErr(t, `require ["reject", "ereject"]; reject "no"; ereject "no";`, plainMsg, Limits{}, "cannot be combined")
	// discard after reject is fine.
	want(t, run(t, `require "reject"; reject "no"; discard;`, plainMsg), "reject:no discard")
}
