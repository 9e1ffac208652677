package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// seedCommands is typical client traffic (RFC examples, Thunderbird,
// mbsync, iOS Mail) used as fuzz seeds and benchmark input.
var seedCommands = []string{
	"B1 SEARCH RETURN (RELEVANCY ALL) FUZZY TEXT \"Helo\"\r\n",
	"a001 CAPABILITY\r\n",
	"1 ID (\"name\" \"Thunderbird\" \"version\" \"115.3.1\")\r\n",
	"2 authenticate PLAIN AHVzZXIAcGFzcw==\r\n",
	"3 select \"INBOX\" (CONDSTORE)\r\n",
	"4 UID fetch 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n",
	"5 UID fetch 4226 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])\r\n",
	"6 list (SUBSCRIBED) \"\" \"*\" RETURN (SPECIAL-USE)\r\n",
	"7 IDLE\r\n",
	"8 UID STORE 4226 +FLAGS (\\Seen)\r\n",
	"9 UID MOVE 4226 \"Trash\"\r\n",
	"10 APPEND \"Sent\" (\\Seen) \"14-Jul-2023 10:00:00 +0200\" {12+}\r\nSubject: x\r\n\r\n",
	"A0001 LOGIN \"user\" \"pass\"\r\n",
	"A0002 LIST \"\" \"*\"\r\n",
	"A0003 SELECT \"INBOX\"\r\n",
	"A0004 UID FETCH 1:* (UID FLAGS)\r\n",
	"A0005 UID FETCH 10:20 (UID INTERNALDATE RFC822.SIZE FLAGS BODY.PEEK[])\r\n",
	"A0006 UID STORE 5 FLAGS.SILENT (\\Seen \\Flagged)\r\n",
	"A0007 UID EXPUNGE 3:4\r\n",
	"A0008 APPEND \"INBOX\" (\\Seen) {3}\r\nabc\r\n",
	"8.0 COMPRESS DEFLATE\r\n",
	"8.1 ENABLE QRESYNC\r\n",
	"8.2 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
	"8.3 UID FETCH 1:* (FLAGS BODYSTRUCTURE) (CHANGEDSINCE 1 VANISHED)\r\n",
	"8.4 UID SEARCH RETURN (ALL) UNDELETED SINCE 1-Feb-2024\r\n",
	"8.5 STATUS \"Drafts\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)\r\n",
	"A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n",
	"A283 SEARCH TEXT \"string not in mailbox\"\r\n",
	"A284 SEARCH CHARSET UTF-8 TEXT {12}\r\nXXXXXXXXXXXX\r\n",
	"a SEARCH OR (FROM a TO b) NOT (SEEN OR 1:5 UID 7:*)\r\n",
	"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n",
	"a SEARCH RETURN (SAVE) SUBJECT x\r\na UID FETCH $ FLAGS\r\n",
	"a FETCH 1 (BODY[1.2.HEADER.FIELDS.NOT (X-A)]<0.100> BINARY.PEEK[1]<0.10> BINARY.SIZE[2])\r\n",
	"t1 CREATE \"Important Messages\" (USE (\\Important))\r\n",
	"a RENAME \"Entw&APw-rfe\" Drafts\r\n",
	"a LSUB \"\" %\r\n",
	"a UID COPY 1,3:5 \"Archive/2024\"\r\n",
	"a APPEND Drafts UTF8 (~{5+}\r\nhello)\r\n",
	"a APPEND Drafts {1+}\r\nx (\\Seen) ~{2+}\r\n\x00y\r\n",
	"a NAMESPACE\r\nb NOOP\r\nc LOGOUT\r\n",
	"a BOGUS {3+}\r\nabc\r\nb NOOP\r\n",
	"a UNAUTHENTICATE\r\nb LOGIN bob pw\r\n",                 // RFC 8437
	"A003 REPLACE 4 Drafts (\\Seen \\Draft) {3+}\r\nabc\r\n", // RFC 8508
	"a UID REPLACE 2000 Sent \"05-Jan-2015 10:00:00 +0100\" UTF8 (~{2+}\r\nab)\r\n",
	"a UID REPLACE * Drafts CATENATE (URL \"/Drafts;UIDVALIDITY=1/;UID=2\" TEXT {1+}\r\nx)\r\n",
	"a ENABLE UIDONLY\r\nb UID FETCH 1:* (FLAGS)\r\nc UID SEARCH $\r\n", // RFC 9586
	"a GETMETADATA \"INBOX\" (/private/comment /shared/comment)\r\n",
	"a GETMETADATA (MAXSIZE 1024 DEPTH infinity) \"\" /shared\r\n",
	"a GETMETADATA INBOX (DEPTH 1) /private/filters/values\r\n",
	"a SETMETADATA INBOX (/private/comment {33+}\r\nMy new comment across\r\ntwo lines. /shared/comment NIL)\r\n",
	"a SETMETADATA \"\" (/private/bin ~{3+}\r\na\x00b /shared/x \"\")\r\n",
	"a LIST \"\" % RETURN (METADATA (MAXSIZE 100) (/shared/comment /private/comment) CHILDREN)\r\n",
	"a LIST \"\" * RETURN (METADATA ((/shared/comment) MAXSIZE 7))\r\n",
	"a SETACL INBOX/Drafts Chris +cda\r\n",
	"a DELETEACL \"Other Users/alice/Projects\" anyone\r\n",
	"a GETACL INBOX\r\na LISTRIGHTS ~/Mail/saved smith\r\na MYRIGHTS {5+}\r\nINBOX\r\n",
	"a LIST \"\" \"Other Users/*\" RETURN (MYRIGHTS STATUS (MESSAGES))\r\n",
	"a SETQUOTA \"Other Users/bob\" (STORAGE 1048576 MESSAGE 100)\r\n",
	"a GENURLAUTH \"imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred\" INTERNAL\r\n",
	"a URLFETCH \"imap://joe@h/INBOX/;uid=20;urlauth=anonymous:internal:91354a473744909de610943775f92038\" (x BINARY BODYPARTSTRUCTURE)\r\n",
	"a RESETKEY INBOX INTERNAL\r\n",
}

// checkCommand asserts invariants of a successfully parsed command.
func checkCommand(t *testing.T, cmd *Command, opts ReaderOptions) {
	if cmd.Tag == "" || cmd.Name == "" {
		t.Fatalf("empty tag or name: %+v", cmd)
	}
	countSet := func(s NumSet) {
		if len(s.Ranges) > opts.MaxRanges {
			t.Fatalf("set with %d ranges", len(s.Ranges))
		}
	}
	switch a := cmd.Args.(type) {
	case *FetchArgs:
		countSet(a.Set)
		if len(a.Items) == 0 {
			t.Fatal("FETCH without items")
		}
	case *StoreArgs:
		countSet(a.Set)
	case *AppendArgs:
		var total int64
		for _, m := range a.Messages {
			total += int64(len(m.Literal))
			if !m.Binary && bytes.IndexByte(m.Literal, 0) >= 0 {
				t.Fatal("NUL in non-binary APPEND literal")
			}
		}
		if total > opts.MaxLiteral {
			t.Fatalf("APPEND literals total %d", total)
		}
	case *URLFetchArgs:
		if len(a.URLs) == 0 || len(a.URLs) > MaxURLsPerCommand {
			t.Fatalf("URLFETCH with %d URLs", len(a.URLs))
		}
		for _, u := range a.URLs {
			if len(u.URL) > MaxURLLength || len(u.Params) > maxURLFetchParams {
				t.Fatalf("URLFETCH URL of %d bytes, %d params", len(u.URL), len(u.Params))
			}
		}
	case *GenURLAuthArgs:
		if len(a.Pairs) == 0 || len(a.Pairs) > MaxURLsPerCommand {
			t.Fatalf("GENURLAUTH with %d URLs", len(a.Pairs))
		}
	case *SetQuotaArgs:
		if len(a.Resources) > maxQuotaResources {
			t.Fatalf("SETQUOTA with %d resources", len(a.Resources))
		}
	case *SearchArgs:
		var walk func(k *SearchKey, depth int)
		walk = func(k *SearchKey, depth int) {
			if depth > maxKeyNesting+opts.MaxDepth+1 {
				t.Fatal("search tree too deep")
			}
			switch k.Op {
			case SearchNot, SearchFuzzy:
				if len(k.Children) != 1 {
					t.Fatal("NOT/FUZZY arity")
				}
			case SearchOr:
				if len(k.Children) != 2 {
					t.Fatal("OR arity")
				}
			}
			for _, c := range k.Children {
				walk(c, depth+1)
			}
		}
		walk(a.Key, 0)
	}
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range seedCommands {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		opts := ReaderOptions{MaxLine: 1024, MaxLiteral: 4096, MaxDepth: 8, MaxRanges: 50}
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(in), 64), opts)
		r.opts.Continue = func() error { return nil }
		for i := 0; ; i++ {
			if i > len(in)+1 {
				t.Fatal("reader makes no progress")
			}
			cmd, err := r.ReadCommand()
			if err != nil {
				var pe *ParseError
				if errors.As(err, &pe) {
					if pe.Msg == "" {
						t.Fatal("empty error message")
					}
					if !pe.Fatal {
						continue
					}
					return
				}
				if err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error type %T %v", err, err)
				}
				return
			}
			checkCommand(t, cmd, opts)
		}
	})
}

func BenchmarkReadCommandFetch(b *testing.B) {
	line := "A0005 UID FETCH 1:*,5,9:12 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date Message-ID)])\r\n"
	in := strings.Repeat(line, 1000)
	rd := strings.NewReader(in)
	br := bufio.NewReader(rd)
	r := NewReader(br, ReaderOptions{})
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		cmd, err := r.ReadCommand()
		if err == io.EOF {
			rd.Reset(in)
			br.Reset(rd)
			cmd, err = r.ReadCommand()
		}
		if err != nil || cmd.Name != "FETCH" {
			b.Fatal(err)
		}
	}
}
