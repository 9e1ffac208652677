package sieve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Hostile scripts are refused at compile time or stopped at run time
// with a clear error, the message kept.

func TestHostileScriptsRefused(t *testing.T) {
	deepBlocks := strings.Repeat("if true {", 40) + "keep;" + strings.Repeat("}", 40)
	compileErr(t, deepBlocks, 1, "nested deeper than 32")
	deepTests := "if " + strings.Repeat("not ", 100) + "true { keep; }"
	compileErr(t, deepTests, 1, "nested deeper than 32")
	deepLists := "if " + strings.Repeat("allof(", 100) + "true" + strings.Repeat(")", 100) + " { keep; }"
	compileErr(t, deepLists, 1, "nested deeper than 32")
	if _, err := Compile([]byte(strings.Repeat("keep;", 100)), Options{MaxScriptBytes: 100}); err == nil || !strings.Contains(err.Error(), "script too large") {
		t.Fatalf("oversized script: %v", err)
	}
	// A 65536-deep nesting must not overflow the stack either.
	compileErr(t, strings.Repeat("if true {", 1<<16), 1, "nested deeper")
	compileErr(t, "if "+strings.Repeat("not ", 1<<16)+"true {}", 1, "nested deeper")
	if _, err := Compile([]byte("keep; \xff"), Options{}); err == nil {
		t.Fatal("invalid UTF-8 accepted")
	}
}

func TestStepLimit(t *testing.T) {
	// 2000 tests over many header values: stopped by MaxSteps.
	var b strings.Builder
	for range 2000 {
		b.WriteString(`if header :contains ["a","b","c","d"] ["x","y","z"] { keep; }` + "\n")
	}
	msg := strings.Repeat("A: 1\nB: 2\n", 50) + "\nbody\n"
	runErr(t, b.String(), msg, Limits{MaxSteps: 10000}, "more than 10000 steps")
}

func TestActionLimits(t *testing.T) {
	runErr(t, `require "fileinto"; fileinto "a"; fileinto "b"; fileinto "c";`, plainMsg, Limits{MaxActions: 2}, "more than 2 actions")
	runErr(t, `redirect "a@example.org"; redirect "b@example.org"; redirect "c@example.org";`, plainMsg, Limits{MaxRedirects: 2}, "more than 2 redirects")
	runErr(t, `require "variables"; set "a" "1"; set "b" "2"; set "c" "3";`, plainMsg, Limits{MaxVariables: 2}, "more than 2 variables")
}

func TestHugeStringExpansion(t *testing.T) {
	// 1000 references to a 4 KiB variable are cut at maxExpandedBytes.
	src := `require ["variables", "reject"]; set "a" "` + strings.Repeat("x", 4096) + `"; reject "` + strings.Repeat("${a}", 1000) + `";`
	r := run(t, src, plainMsg)
	if n := len(r.Actions[0].Reason); n > maxExpandedBytes {
		t.Fatalf("reason of %d bytes", n)
	}
}

func TestContextCancel(t *testing.T) {
	var b strings.Builder
	for range 3000 {
		b.WriteString("if true { }\n")
	}
	s, err := Compile([]byte(b.String()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, err := s.Execute(ctx, testEnvelope(), NewMessage([]byte(plainMsg)), Limits{})
	if !errors.Is(err, context.Canceled) || !r.ImplicitKeep {
		t.Fatalf("err %v, result %+v", err, r)
	}
}

func TestSupported(t *testing.T) {
	all := Supported()
	all[0] = "changed"
	if Supported()[0] == "changed" {
		t.Fatal("Supported returns the package's slice")
	}
	// Every supported extension can be required.
	if _, err := Compile([]byte(`require ["`+strings.Join(Supported()[1:], `","`)+`", "`+Supported()[0]+`"];`), Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestLongValuesCostSteps: comparisons over a large body or header cost
// steps by length, so many of them are stopped rather than run for long.
func TestLongValuesCostSteps(t *testing.T) {
	big := "Subject: " + strings.Repeat("a", 1<<20) + "\n\n" + strings.Repeat("body text\n", 200000)
	var b strings.Builder
	b.WriteString(`require "body";` + "\n")
	for i := range 300 {
		fmt.Fprintf(&b, "if body :contains \"needle%d\" { discard; }\n", i)
	}
	runErr(t, b.String(), big, Limits{}, "steps")
	b.Reset()
	for i := range 100 {
		fmt.Fprintf(&b, "if header :matches \"subject\" \"*a%s*b%d\" { discard; }\n", strings.Repeat("?", 200), i)
	}
	runErr(t, b.String(), big, Limits{}, "steps")
	// One such test is fine.
	want(t, run(t, `require "body"; if body :contains "needle" { discard; }`, big), "implicit-keep")
}
