package sieve

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// benchScript50 is a 50-rule user filter of the usual kinds; none of its
// rules matches benchMsg, so every test runs.
func benchScript50() string {
	var b strings.Builder
	b.WriteString(`require ["fileinto", "envelope", "imap4flags", "regex", "variables", "subaddress", "mailbox"];` + "\n")
	for i := range 50 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "if header :contains \"List-Id\" \"list%d.example.com\" { fileinto :create \"Lists/list%d\"; stop; }\n", i, i)
		case 1:
			fmt.Fprintf(&b, "if address :is \"from\" [\"friend%d@example.net\", \"colleague%d@example.org\"] { addflag \"\\\\Flagged\"; fileinto \"People\"; }\n", i, i)
		case 2:
			fmt.Fprintf(&b, "if header :matches \"subject\" \"*[project-%d]*\" { fileinto \"Projects/${2}\"; }\n", i)
		case 3:
			fmt.Fprintf(&b, "if allof (envelope :detail \"to\" \"tag%d\", not exists \"X-Seen%d\") { fileinto \"Tags\"; }\n", i, i)
		case 4:
			fmt.Fprintf(&b, "if header :regex \"X-Spam-Score\" \"^%d[0-9]\\\\.\" { fileinto \"Junk\"; stop; }\n", i)
		}
	}
	return b.String()
}

// BenchmarkExecute50Rules: the interpreter's cost per message for a
// 50-rule script (compiled once, as delivery caches it), including
// reading the message's header.
//
//	go test -run '^$' -bench Execute50Rules -benchmem ./internal/sieve/
func BenchmarkExecute50Rules(b *testing.B) {
	s, err := Compile([]byte(benchScript50()), Options{})
	if err != nil {
		b.Fatal(err)
	}
	raw := []byte(crlf(`From: Bench <bench@example.net>
To: someone@example.org
Subject: benchmark message
Date: Tue, 3 Feb 2026 10:00:00 +0000
Message-ID: <bench@example.net>
Content-Type: text/plain; charset=us-ascii
X-Spam-Score: 1.5

` + strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 90)))
	env := testEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Execute(context.Background(), env, NewMessage(raw), Limits{})
		if err != nil || !res.ImplicitKeep {
			b.Fatal(err, res)
		}
	}
}

func BenchmarkCompile50Rules(b *testing.B) {
	src := []byte(benchScript50())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(src, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
