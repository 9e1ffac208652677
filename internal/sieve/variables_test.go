package sieve

import (
	"strings"
	"testing"
)

// variables (RFC 5229).

func TestVariablesRFCExamples(t *testing.T) {
	// RFC 5229 §3.
	r := run(t, `require ["variables", "reject"];
set "honorific"  "Mr";
set "first_name" "Wile";
set "last_name"  "Coyote";
set "vacation" text:
Dear ${HONORIFIC} ${last_name},
I'm out, please leave a message after the meep.
.
;
reject "${vacation}";`, plainMsg)
	if got := r.Actions[0].Reason; got != "Dear Mr Coyote,\r\nI'm out, please leave a message after the meep.\r\n" {
		t.Fatalf("reason %q", got)
	}
	// RFC 5229 §4.1's modifier table.
	cases := []struct{ set, want string }{
		{`set "b" "${a}";`, "juMBlEd lETteRS"},
		{`set :length "b" "${a}";`, "15"},
		{`set :lower "b" "${a}";`, "jumbled letters"},
		{`set :upperfirst "b" "${a}";`, "JuMBlEd lETteRS"},
		{`set :upperfirst :lower "b" "${a}";`, "Jumbled letters"},
		{`set :quotewildcard "b" "Rock*";`, `Rock\*`},
	}
	for _, c := range cases {
		r := run(t, `require ["variables", "reject"]; set "a" "juMBlEd lETteRS"; `+c.set+` reject "${b}";`, plainMsg)
		if r.Actions[0].Reason != c.want {
			t.Errorf("%s: %q, want %q", c.set, r.Actions[0].Reason, c.want)
		}
	}
	// "${" without a valid name stays; unknown variables are empty.
	r = run(t, `require ["variables", "reject"]; reject "${a.b} ${nope}x ${";`, plainMsg)
	if got := r.Actions[0].Reason; got != "${a.b} x ${" {
		t.Fatalf("reason %q", got)
	}
}

func TestMatchVariablesRFCExamples(t *testing.T) {
	// RFC 5229 §3.2.
	src := `require ["fileinto", "variables"];
if header :matches "List-ID" "*<*@*" {
    fileinto "INBOX.lists.${2}"; stop;
}
# Imagine the header
# Subject: [acme-users] [fwd] version 1.0 is out
if header :matches "Subject" "[*] *" {
    # ${1} will hold "acme-users",
    # ${2} will hold "[fwd] version 1.0 is out"
    fileinto "INBOX.lists.${1}"; stop;
}
# Imagine the header
# To: coyote@ACME.Example.COM
if address :matches ["To", "Cc"] ["coyote@**.com",
        "wile@**.com"] {
    # ${0} is the matching address
    # ${1} is always the empty string
    # ${2} is part of the domain name ("ACME.Example")
    fileinto "INBOX.business.${2}"; stop;
} else {
    # Control wouldn't reach this block if any match was
    # successful, so no match variables are set at this
    # point.
}
if anyof (true, address :domain :matches "To" "*.com") {
    # The second test is never evaluated, so there are
    # still no match variables set.
    stop;
}`
	want(t, run(t, src, "List-ID: Coyote list <coyote.lists@example.org>\n\nx\n"), "fileinto:INBOX.lists.coyote.lists")
	want(t, run(t, src, "Subject: [acme-users] [fwd] version 1.0 is out\n\nx\n"), "fileinto:INBOX.lists.acme-users")
	want(t, run(t, src, "To: coyote@ACME.Example.COM\n\nx\n"), "fileinto:INBOX.business.ACME.Example")
	want(t, run(t, src, "To: road@runner.org\n\nx\n"), "implicit-keep")

	r := run(t, `require ["variables", "reject"]; if header :matches "subject" "I * a ?resent *" { reject "${0}|${1}|${2}|${3}|${4}"; }`, plainMsg)
	if got := r.Actions[0].Reason; got != "I have a present for you|have|p|for you|" {
		t.Fatalf("reason %q", got)
	}
}

func TestStringTest(t *testing.T) {
	want(t, run(t, `require "variables"; set "x" "abc"; if string :is "${x}" "abc" { discard; }`, plainMsg), "discard")
	want(t, run(t, `require ["variables", "relational", "comparator-i;ascii-numeric"];
if string :count "eq" :comparator "i;ascii-numeric" ["a", "", "b"] "2" { discard; }`, plainMsg), "discard")
	// Variables are case-insensitive.
	want(t, run(t, `require "variables"; set "Name" "v"; if string "${NAME}" "v" { discard; }`, plainMsg), "discard")
}

func TestVariableSizeLimit(t *testing.T) {
	s, err := Compile([]byte(`require ["variables", "reject"];
set "a" "0123456789";
set "a" "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}";
set "a" "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}";
set "a" "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}";
set "a" "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}";
set "a" "${a}${a}${a}${a}${a}${a}${a}${a}${a}${a}";
reject "${a}";`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Execute(t.Context(), testEnvelope(), NewMessage([]byte(plainMsg)), Limits{MaxVariableBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Actions[0].Reason; len(got) != 1000 || !strings.HasPrefix(got, "0123") {
		t.Fatalf("reason of %d bytes", len(got))
	}
}
