package sieve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// include, return, global (RFC 6609).

// scriptMap holds personal and global scripts by name.
type scriptMap struct {
	personal, global map[string]string
	loads            int
}

func (m *scriptMap) Resolve(ctx context.Context, name string, global bool) ([]byte, error) {
	m.loads++
	src, ok := m.personal[name]
	if global {
		src, ok = m.global[name]
	}
	if !ok {
		return nil, fmt.Errorf("script %q: %w", name, ErrScriptNotFound)
	}
	return []byte(src), nil
}

func runIncl(t *testing.T, m *scriptMap, src, msg string) (*Result, error) {
	t.Helper()
	s, err := Compile([]byte(src), Options{Include: m})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s.Execute(context.Background(), testEnvelope(), NewMessage([]byte(crlf(msg))), Limits{})
}

func TestIncludeRFCExample(t *testing.T) {
	// RFC 6609 §3.2's example, the scripts filled in.
	m := &scriptMap{
		personal: map[string]string{
			"always_allow":  `if address :is "from" "boss@example.com" { keep; }`,
			"spam_tests":    `require "reject"; if header :contains "Subject" "XXX" { reject "spam"; }`,
			"mailing_lists": `require "fileinto"; if exists "List-Id" { fileinto "lists"; }`,
		},
		global: map[string]string{
			"spam_tests": `require "fileinto"; if header :contains "X-Spam" "yes" { fileinto "Junk"; }`,
		},
	}
	src := `require ["include"];
include :personal "always_allow";
include :global "spam_tests";
include :personal "spam_tests";
include :personal "mailing_lists";`
	r, err := runIncl(t, m, src, "X-Spam: yes\nList-Id: <l.example>\nFrom: a@example.net\n\nx\n")
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, "fileinto:Junk fileinto:lists")
	r, err = runIncl(t, m, src, "Subject: XXX\nFrom: a@example.net\n\nx\n")
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, "reject:spam")
}

func TestIncludeGlobalVariablesAndReturn(t *testing.T) {
	// RFC 6609 §3.3/§3.4: variables are shared only when declared global.
	m := &scriptMap{personal: map[string]string{
		"set_folder": `require ["include", "variables"]; global "folder"; set "folder" "Work"; set "local" "x"; return; set "folder" "never";`,
		"use":        `require ["include", "variables", "fileinto"]; global "folder"; fileinto "${folder}${local}";`,
	}}
	r, err := runIncl(t, m, `require ["include", "variables"];
include "set_folder";
include "use";
global "folder";
if string :is "${folder}" "Work" { keep; }
if string :is "${global.folder}" "Work" { discard; }`, plainMsg)
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, "fileinto:Work keep discard")
}

func TestIncludeLoopOnceOptional(t *testing.T) {
	m := &scriptMap{personal: map[string]string{
		"a":    `require "include"; include "b";`,
		"b":    `require "include"; include "a";`,
		"self": `require "include"; include "self";`,
		"once": `require "imap4flags"; addflag "X";`,
	}}
	for _, src := range []string{`require "include"; include "a";`, `require "include"; include "self";`} {
		r, err := runIncl(t, m, src, plainMsg)
		var rt *RuntimeError
		if !errors.As(err, &rt) || !strings.Contains(err.Error(), "include loop") || !r.ImplicitKeep {
			t.Fatalf("%s: err %v, result %+v: want an include loop error and implicit keep", src, err, r)
		}
	}
	r, err := runIncl(t, m, `require "include"; include :optional "missing"; keep;`, plainMsg)
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, "keep")
	if _, err := runIncl(t, m, `require "include"; include "missing"; keep;`, plainMsg); !errors.Is(err, ErrScriptNotFound) {
		t.Fatalf("missing include: %v", err)
	}
	// :once includes a script once per execution, even from two places.
	r, err = runIncl(t, m, `require ["include", "imap4flags"]; include :once "once"; removeflag "X"; include :once "once";`, plainMsg)
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, "implicit-keep")
	// A stop in an included script ends everything.
	m.personal["stopper"] = `stop;`
	r, err = runIncl(t, m, `require "include"; include "stopper"; discard;`, plainMsg)
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, "implicit-keep")
	compileErr(t, `require "include"; include "a/b";`, 1, "invalid script name")
	compileErr(t, `require "include"; include :personal :global "a";`, 1, "cannot be combined")
}

// TestIncludeFanOut: a script that includes another many times (without
// a loop) is bounded by MaxIncludes.
func TestIncludeFanOut(t *testing.T) {
	m := &scriptMap{personal: map[string]string{
		"leaf": `keep;`,
		"mid":  `require "include"; include "leaf"; include "leaf"; include "leaf"; include "leaf";`,
		"top":  `require "include"; include "mid"; include "mid"; include "mid"; include "mid";`,
	}}
	s, err := Compile([]byte(`require "include"; include "top"; include "top"; include "top";`), Options{Include: m})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Execute(context.Background(), testEnvelope(), NewMessage([]byte(plainMsg)), Limits{MaxIncludes: 20})
	var rt *RuntimeError
	if !errors.As(err, &rt) {
		t.Fatalf("err %v, want more than 20 includes", err)
	}
	if m.loads > 3 {
		t.Fatalf("%d loads: each script should be fetched and compiled once", m.loads)
	}
}
