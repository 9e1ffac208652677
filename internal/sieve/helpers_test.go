package sieve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// run compiles and executes src on msg for a default envelope.
func run(t *testing.T, src, msg string) *Result {
	t.Helper()
	return runEnv(t, src, msg, testEnvelope())
}

func testEnvelope() Envelope {
	return Envelope{
		From: "sender@example.net", To: "alice@example.org",
		UserAddresses: []string{"alice@example.org"},
		Now:           time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC),
	}
}

func runEnv(t *testing.T, src, msg string, env Envelope) *Result {
	t.Helper()
	s, err := Compile([]byte(src), Options{})
	if err != nil {
		t.Fatalf("compile: %v\n%s", err, src)
	}
	res, err := s.Execute(context.Background(), env, NewMessage([]byte(crlf(msg))), Limits{})
	if err != nil {
		t.Fatalf("execute: %v\n%s", err, src)
	}
	return res
}

// runErr executes a script expecting a runtime error, and checks that
// the result keeps the message.
func runErr(t *testing.T, src, msg string, limits Limits, want string) {
	t.Helper()
	s, err := Compile([]byte(src), Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	res, err := s.Execute(context.Background(), testEnvelope(), NewMessage([]byte(crlf(msg))), limits)
	var rt *RuntimeError
	if !errors.As(err, &rt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("execute: err %v, want a runtime error with %q", err, want)
	}
	if !res.ImplicitKeep || len(res.Actions) != 0 {
		t.Fatalf("after a runtime error: %+v, want only the implicit keep", res)
	}
}

// compileErr checks that src fails to compile with want in the message
// at the given line (0: any).
func compileErr(t *testing.T, src string, line int, want string) {
	t.Helper()
	_, err := Compile([]byte(src), Options{})
	shown := src
	if len(shown) > 200 {
		shown = shown[:200] + "..."
	}
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("compile %q: err %v, want a CompileError", shown, err)
	}
	if !strings.Contains(ce.Msg, want) || (line != 0 && ce.Line != line) {
		t.Fatalf("compile %q: %v, want line %d and %q", shown, err, line, want)
	}
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// summary renders actions compactly: "fileinto:Junk keep discard".
func summary(r *Result) string {
	var parts []string
	for _, a := range r.Actions {
		s := string(a.Kind)
		switch a.Kind {
		case ActionFileinto:
			s += ":" + a.Mailbox
		case ActionRedirect:
			s += ":" + a.Address
		case ActionReject, ActionEreject:
			s += ":" + a.Reason
		case ActionAddHeader, ActionDeleteHeader:
			s += ":" + a.Field
		}
		if a.Copy {
			s += "(copy)"
		}
		if len(a.Flags) > 0 {
			s += "[" + strings.Join(a.Flags, " ") + "]"
		}
		parts = append(parts, s)
	}
	if r.ImplicitKeep {
		s := "implicit-keep"
		if len(r.ImplicitKeepFlags) > 0 {
			s += "[" + strings.Join(r.ImplicitKeepFlags, " ") + "]"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func want(t *testing.T, r *Result, w string) {
	t.Helper()
	if got := summary(r); got != w {
		t.Fatalf("actions %q, want %q", got, w)
	}
}

const plainMsg = `Date: Tue, 1 Dec 2026 09:15:00 +0100
From: Coyote <coyote@desert.example.org>
To: alice@example.org, "Road Runner" <roadrunner@acme.example.com>
Cc: bob+lists@example.org
Subject: I have a present for you
Message-ID: <1234@local.example>
X-Caffeine: C8H10N4O2

Look, I'm sorry about the whole anvil thing.
`
