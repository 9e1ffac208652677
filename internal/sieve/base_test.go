package sieve

import (
	"os"
	"testing"
)

// RFC 5228 base: the examples of §2 and §4-5 and the error rules.

func TestBaseRFCExamples(t *testing.T) {
	// RFC 5228 §2.2 / §4.4 example shapes.
	want(t, run(t, `if size :over 100K { discard; }`, plainMsg), "implicit-keep")
	want(t, run(t, `if size :under 1M { discard; }`, plainMsg), "discard")
	want(t, run(t, `
# RFC 5228 §2.6.2-style block
if header :contains "from" "coyote" {
   discard;
} elsif header :contains ["subject"] ["$$$"] {
   discard;
} else {
   keep;
}`, plainMsg), "discard")
	want(t, run(t, `if header :is "X-Caffeine" "C8H10N4O2" { stop; } discard;`, plainMsg), "implicit-keep")
	want(t, run(t, `if not exists ["From","Date"] { discard; }`, plainMsg), "implicit-keep")
	want(t, run(t, `if exists ["From","X-Missing"] { discard; }`, plainMsg), "implicit-keep")
	want(t, run(t, `if allof (address :domain :is "from" "desert.example.org", true) { keep; }`, plainMsg), "keep")
	want(t, run(t, `if anyof (false, address :localpart :is ["to"] "roadrunner") { discard; }`, plainMsg), "discard")
	want(t, run(t, `if address :all :is "to" "ROADRUNNER@acme.example.com" { discard; }`, plainMsg), "discard")
	want(t, run(t, `if address :all :comparator "i;octet" :is "to" "ROADRUNNER@acme.example.com" { discard; }`, plainMsg), "implicit-keep")
	want(t, run(t, `if header :matches "subject" "I have * for ?ou" { discard; }`, plainMsg), "discard")
	want(t, run(t, `if header :matches "subject" "*present" { discard; }`, plainMsg), "implicit-keep")
	want(t, run(t, `if header :contains "subject" "" { discard; }`, plainMsg), "discard")
	want(t, run(t, `if header :matches "x-caffeine" "C8\\H10*" { discard; }`, plainMsg), "discard")
	want(t, run(t, "keep;\nkeep;", plainMsg), "keep keep")
	want(t, run(t, "", plainMsg), "implicit-keep")
}

func TestComparators(t *testing.T) {
	const num = "require \"comparator-i;ascii-numeric\";\n"
	want(t, run(t, num+`if header :is :comparator "i;ascii-numeric" "x-n" "0042" { discard; }`, "X-N: 42abc\n\nb\n"), "discard")
	want(t, run(t, num+`if header :is :comparator "i;ascii-numeric" "x-n" "abc" { discard; }`, "X-N: xyz\n\nb\n"), "discard") // both infinity
	want(t, run(t, `if header :is :comparator "i;ascii-casemap" "x-n" "HeLLo" { discard; }`, "X-N: hello\n\nb\n"), "discard")
	compileErr(t, `if header :is :comparator "i;ascii-numeric" "x" "1" { stop; }`, 1, "needs require")
	compileErr(t, num+`if header :contains :comparator "i;ascii-numeric" "x" "1" { stop; }`, 2, "does not support :contains")
	compileErr(t, `if header :comparator "i;nope" "x" "1" { stop; }`, 1, "unknown comparator")
}

func TestMultilineAndEncodedCharacter(t *testing.T) {
	src := "require [\"reject\", \"encoded-character\"];\nreject text:\nline one\n..dot\n.\n;\n"
	r := run(t, src, plainMsg)
	if r.Actions[0].Reason != "line one\r\n.dot\r\n" {
		t.Fatalf("reason %q", r.Actions[0].Reason)
	}
	r = run(t, `require ["reject", "encoded-character"]; reject "${hex: 48 69}${unicode:263a}$" ;`, plainMsg)
	if r.Actions[0].Reason != "Hi\u263a$" {
		t.Fatalf("reason %q", r.Actions[0].Reason)
	}
	// Without the extension the text stays as written.
	r = run(t, `require "reject"; reject "${hex:48}";`, plainMsg)
	if r.Actions[0].Reason != "${hex:48}" {
		t.Fatalf("reason %q", r.Actions[0].Reason)
	}
	// Comments of both kinds, escapes in quoted strings.
	want(t, run(t, "/* a\n comment */ if header :is \"subject\" \"I have a present for you\" # c\n{ discard; }", plainMsg), "discard")
	r = run(t, `require "reject"; reject "a\"b\\c\d";`, plainMsg)
	if r.Actions[0].Reason != `a"b\cd` {
		t.Fatalf("reason %q", r.Actions[0].Reason)
	}
}

func TestCompileErrors(t *testing.T) {
	compileErr(t, `require "nonexistent";`, 1, "unsupported extension")
	compileErr(t, "keep;\nrequire \"fileinto\";", 2, "require must come before")
	compileErr(t, `if true { require "fileinto"; }`, 1, "require must come before")
	compileErr(t, `fileinto "x";`, 1, "needs require \"fileinto\"")
	compileErr(t, `frobnicate;`, 1, "unknown command")
	compileErr(t, `if frob { stop; }`, 1, "unknown test")
	compileErr(t, `keep`, 1, "expected")
	compileErr(t, `if true stop;`, 1, "")
	compileErr(t, `else { stop; }`, 1, "without a preceding if")
	compileErr(t, `if true { stop; } else { stop; } else { stop; }`, 1, "without a preceding if")
	compileErr(t, `if size 100 { stop; }`, 1, "")
	compileErr(t, `if size :over 1 :under 2 { stop; }`, 1, "cannot be combined")
	compileErr(t, `if header :is :is "a" "b" { stop; }`, 1, "given twice")
	compileErr(t, `if header :is :contains "a" "b" { stop; }`, 1, "cannot be combined")
	compileErr(t, `if header "a" :is "b" { stop; }`, 1, "")
	compileErr(t, `if header :is "a" { stop; }`, 1, "positional")
	compileErr(t, `if allof true { stop; }`, 1, "test list")
	compileErr(t, `keep { stop; }`, 1, "takes no block")
	compileErr(t, "keep;\n  discard\n", 3, "expected")
	compileErr(t, `if header :is "a" "b`, 1, "unterminated string")
	compileErr(t, "/* open", 1, "unterminated comment")
	compileErr(t, `if size :over 99999999999999999999 { stop; }`, 1, "too large")
	compileErr(t, `redirect "not an address";`, 1, "invalid address")
	compileErr(t, `stop "x";`, 1, "positional")
	compileErr(t, `if address :index 1 "to" "x" { stop; }`, 1, "needs require \"index\"")
	compileErr(t, "require \"fileinto\";\nfileinto :copy \"x\";", 2, "needs require \"copy\"")
}

func TestCompileErrorPosition(t *testing.T) {
	_, err := Compile([]byte("keep;\n\n   frob;"), Options{})
	if err == nil || err.Error() != `line 3:4: unknown command "frob"` {
		t.Fatalf("err %v", err)
	}
}

func TestExtensionsOption(t *testing.T) {
	if _, err := Compile([]byte(`require "fileinto";`), Options{Extensions: []string{"envelope"}}); err == nil {
		t.Fatal("fileinto allowed although not in Options.Extensions")
	}
	if _, err := Compile([]byte(`require "envelope";`), Options{Extensions: []string{"envelope"}}); err != nil {
		t.Fatal(err)
	}
}

// TestRFC5228FullExample runs the example script of RFC 5228 §9
// (testdata/rfc5228.sieve) on four messages, one per branch.
func TestRFC5228FullExample(t *testing.T) {
	src, err := os.ReadFile("testdata/rfc5228.sieve")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"Sender: owner-ietf-mta-filters@imc.org\nTo: me@example.com\n\nx\n":                                       "fileinto:filter",
		"From: colleague@example.com\nTo: someone@else.org\n\nx\n":                                                "keep",
		"From: spammer@example.net\nTo: other@example.org\nSubject: hi\n\nx\n":                                    "fileinto:spam",
		"From: a@example.net\nTo: x@example.org\nCc: me@example.com\nSubject: Make lots of Money FAST now\n\nx\n": "fileinto:spam",
		"From: a@example.net\nTo: x@example.org\nCc: me@example.com\nSubject: lunch\n\nx\n":                       "fileinto:personal",
		"From: friend@example.net\nTo: me@example.com\nSubject: lunch?\n\nx\n":                                    "keep", // To is in example.com
	}
	for msg, w := range cases {
		want(t, run(t, string(src), msg), w)
	}
}
