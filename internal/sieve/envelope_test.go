package sieve

import "testing"

// envelope (RFC 5228 §5.4) and subaddress (RFC 5233).

func TestEnvelope(t *testing.T) {
	env := testEnvelope()
	env.From = "tim@example.com"
	want(t, runEnv(t, `require "envelope";
if envelope :all :is "from" "tim@example.com" {
   discard;
}`, plainMsg, env), "discard")
	want(t, runEnv(t, `require "envelope"; if envelope :domain :is "to" "EXAMPLE.org" { discard; }`, plainMsg, env), "discard")
	env.From = ""
	want(t, runEnv(t, `require "envelope"; if envelope :is "from" "" { discard; }`, plainMsg, env), "discard")
	compileErr(t, `require "envelope"; if envelope :is "frob" "" { discard; }`, 1, "unknown envelope part")
}

func TestSubaddress(t *testing.T) {
	// RFC 5233 §5's example.
	src := `require ["envelope", "subaddress", "fileinto"];
if envelope :user "to" "postmaster" {
    fileinto "inbox.postmaster";
    stop;
}
if envelope :detail :is "to" "mta-filters" {
    fileinto "inbox.ietf-mta-filters";
    stop;
}
if address :detail :is "cc" "lists" {
    fileinto "lists";
}`
	env := testEnvelope()
	env.To = "postmaster+x@example.org"
	want(t, runEnv(t, src, plainMsg, env), "fileinto:inbox.postmaster")
	env.To = "ken+mta-filters@example.org"
	want(t, runEnv(t, src, plainMsg, env), "fileinto:inbox.ietf-mta-filters")
	env.To = "ken@example.org"
	want(t, runEnv(t, src, plainMsg, env), "fileinto:lists")
	// No separator: :detail matches nothing; "user+" has an empty detail.
	want(t, runEnv(t, `require ["envelope", "subaddress"]; if envelope :detail :is "to" "" { discard; }`, plainMsg, env), "implicit-keep")
	env.To = "ken+@example.org"
	want(t, runEnv(t, `require ["envelope", "subaddress"]; if envelope :detail :is "to" "" { discard; }`, plainMsg, env), "discard")
}
