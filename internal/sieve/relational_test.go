package sieve

import "testing"

// relational (RFC 5231) with i;ascii-numeric (RFC 4790).

const relationalMsg = `Received: ...
Received: ...
Subject: example
To: foo@example.com.invalid, baz@example.com.invalid
Cc: qux@example.com.invalid
From: <Sheila@example.com.invalid>
X-Priority: 1

body
`

func TestRelationalRFCExamples(t *testing.T) {
	// RFC 5231 §6: the tests listed there as true and false.
	const req = `require ["relational", "comparator-i;ascii-numeric"];` + "\n"
	cases := []struct {
		test string
		want bool
	}{
		{`address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]`, true},
		{`header :count "ge" :comparator "i;ascii-numeric" ["received"] ["2"]`, true},
		{`header :count "ge" :comparator "i;ascii-numeric" ["received", "subject"] ["3"]`, true},
		{`header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]`, false},
		{`header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["3"]`, true},
		{`address :value "gt" :all :comparator "i;ascii-casemap" ["from"] ["M"]`, true},
		{`address :value "lt" :localpart :comparator "i;octet" ["from"] ["b"]`, true},
		{`header :value "ne" "subject" "example"`, false},
		{`header :value "eq" :comparator "i;ascii-numeric" "x-priority" "01"`, true},
		{`header :value "gt" :comparator "i;ascii-numeric" "x-none" "1"`, false},
	}
	for _, c := range cases {
		res := run(t, req+"if "+c.test+" { discard; }", relationalMsg)
		if got := len(res.Actions) == 1; got != c.want {
			t.Errorf("%s: %v, want %v", c.test, got, c.want)
		}
	}
	compileErr(t, req+`if header :value "xx" "a" "b" { stop; }`, 2, "unknown relational operator")
	compileErr(t, `if header :count "eq" "a" "b" { stop; }`, 1, "needs require \"relational\"")
}
