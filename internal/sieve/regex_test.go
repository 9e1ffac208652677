package sieve

import (
	"strings"
	"testing"
)

// regex (draft-ietf-sieve-regex), on Go's RE2.

func TestRegex(t *testing.T) {
	want(t, run(t, `require "regex"; if header :regex "subject" "^I have (a|an) [a-z]+ for" { discard; }`, plainMsg), "discard")
	want(t, run(t, `require "regex"; if header :regex :comparator "i;octet" "subject" "^i HAVE" { discard; }`, plainMsg), "implicit-keep")
	want(t, run(t, `require "regex"; if header :regex "subject" "^i HAVE" { discard; }`, plainMsg), "discard")
	r := run(t, `require ["regex", "variables", "fileinto"];
if address :regex :localpart "from" "^([a-z]+)$" { fileinto "from-${1}"; }`, plainMsg)
	want(t, r, "fileinto:from-coyote")
	compileErr(t, `require "regex"; if header :regex "subject" "(" { stop; }`, 1, "bad regular expression")
	compileErr(t, `require "regex"; if header :regex "subject" "`+strings.Repeat("a", 2000)+`" { stop; }`, 1, "longer than")
	compileErr(t, `require ["regex", "comparator-i;ascii-numeric"]; if header :regex :comparator "i;ascii-numeric" "s" "1" { stop; }`, 1, "does not support")
	// A regex built from a variable is compiled at run time.
	want(t, run(t, `require ["regex", "variables"]; set "re" "pres+ent"; if header :regex "subject" "${re}" { discard; }`, plainMsg), "discard")
	runErr(t, `require ["regex", "variables"]; set "re" "(("; if header :regex "subject" "${re}" { discard; }`, plainMsg, Limits{}, "bad regular expression")
}

// TestRegexBomb: a pattern that backtracking engines take exponential
// time on is linear here; the test finishes at once.
func TestRegexBomb(t *testing.T) {
	msg := "Subject: " + strings.Repeat("a", 5000) + "!\n\nx\n"
	want(t, run(t, `require "regex"; if header :regex "subject" "^(a+)+$" { discard; }`, msg), "implicit-keep")
	want(t, run(t, `require "regex"; if header :regex "subject" "^(a|aa)*!$" { discard; }`, msg), "discard")
	// :matches with many stars is polynomial too.
	want(t, run(t, `if header :matches "subject" "*a*a*a*a*a*a*a*a*a*a*b" { discard; }`, msg), "implicit-keep")
}
