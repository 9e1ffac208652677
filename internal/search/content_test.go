package search

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// Test messages, RFC 5322 with CRLF line endings.
var (
	// UTF-8 quoted-printable body, ISO-8859-1 encoded subject.
	msgQP = crlf(`From: "Ann Example" <ann@example.org>
To: Bob Builder <bob@example.com>,
 carol@example.net
Cc: Dave <dave@example.com>
Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=
Date: Fri, 01 Mar 2024 10:00:00 +0100
Message-ID: <1@example.org>
X-Priority: 1
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe aus M=C3=BCnchen! This line is long and has a soft line br=
eak in the middle.
`)

	// UTF-8 base64 encoded subject in two folded words, encoded display
	// name, Latin-1 base64 body.
	msgB64 = crlf(`From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>
To: team@example.com
Bcc: secret-boss@example.com
Subject: =?UTF-8?B?w5xuw69jw7Zkw6k=?=
 =?UTF-8?B?IFN0cmHDn2UgcmVwb3J0?=
Date: Sat, 02 Mar 2024 08:00:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: base64

`) + wrap76(base64.StdEncoding.EncodeToString([]byte("\xc7a co\xfbte tr\xe8s cher, Fran\xe7ois.\r\n")))

	// multipart/alternative (plain + HTML) inside multipart/mixed with a
	// binary attachment.
	msgMulti = crlf(`From: Newsletter <news@example.com>
To: ann@example.org
Subject: Quarterly
 report
X-Empty:
Date: Sun, 03 Mar 2024 12:00:00 -0500
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is the preamble, not a body part.
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=us-ascii

Plain version: revenue grew.
--inner
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><head><style>.hidden { color: stylecolor; }</style></head><body>
<p>Hello <b>World</b></p><script>var x =3D 'scriptword';</script>
<p>Fish &amp; chips at the caf&eacute;</p></body></html>
--inner--
--outer
Content-Type: application/octet-stream; name="report.bin"
Content-Disposition: attachment; filename="report.bin"
Content-Transfer-Encoding: base64

`) + base64.StdEncoding.EncodeToString([]byte("attachmentsecret")) + crlf(`
--outer--
`)

	// message/rfc822 forwarded inside multipart/mixed.
	msgFwd = crlf(`From: fwd@example.com
To: ann@example.org
Subject: Fwd: inner
Date: Mon, 04 Mar 2024 12:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain

See the attached message.
--b1
Content-Type: message/rfc822

From: origin@example.net
To: someone@example.net
Subject: Inner subject line
Content-Type: text/plain; charset=utf-8

Inner body text.
--b1--
`)
)

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

// parsed is a message parsed by the message package.
type parsed struct {
	raw  []byte
	root *message.Part
	info *message.Info
}

// parse parses raw with the message package, as delivery does.
func parse(tb testing.TB, raw string) parsed {
	tb.Helper()
	info, err := message.Parse([]byte(raw))
	if err != nil {
		tb.Fatalf("message.Parse: %v", err)
	}
	root, err := message.DecodeParts(info.Parts)
	if err != nil {
		tb.Fatalf("message.DecodeParts: %v", err)
	}
	return parsed{raw: []byte(raw), root: root, info: info}
}

// closeCounter is the message reader; it counts Close calls.
type closeCounter struct {
	*bytes.Reader
	closed *int
}

func (c closeCounter) Close() error { *c.closed++; return nil }

type contentMsg struct {
	p      parsed
	uid    uint32
	flags  []string
	opens  int
	closes int
}

func (m *contentMsg) candidate(seq, max uint32) *Candidate {
	return &Candidate{
		SeqNum: seq,
		Msg: &store.Message{UID: m.uid, Flags: m.flags, Size: int64(len(m.p.raw)),
			InternalDate: time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC), SentDate: m.p.info.SentDate},
		MaxSeq: max, MaxUID: max,
		Open: func() (io.ReaderAt, *message.Part, error) {
			m.opens++
			return closeCounter{bytes.NewReader(m.p.raw), &m.closes}, m.p.root, nil
		},
	}
}

func contentMailbox(t *testing.T) []*contentMsg {
	return []*contentMsg{
		{p: parse(t, msgQP), uid: 1, flags: []string{`\Seen`}},
		{p: parse(t, msgB64), uid: 2},
		{p: parse(t, msgMulti), uid: 3, flags: []string{`\Flagged`}},
		{p: parse(t, msgFwd), uid: 4, flags: []string{`\Seen`}},
	}
}

func TestMatchContent(t *testing.T) {
	hdr := func(field, s string) *imap.SearchKey {
		return &imap.SearchKey{Op: imap.SearchHeader, Field: field, Str: s}
	}
	tests := []struct {
		name string
		key  *imap.SearchKey
		want []uint32
	}{
		{"FROM display name", ks(imap.SearchFrom, "ann example"), []uint32{1}},
		{"FROM address", ks(imap.SearchFrom, "NEWS@EXAMPLE"), []uint32{3}},
		{"FROM encoded display name", ks(imap.SearchFrom, "jürgen müller"), []uint32{2}},
		{"FROM encoded, folded case", ks(imap.SearchFrom, "JÜRGEN"), []uint32{2}},
		{"FROM whole header text", ks(imap.SearchFrom, `"Ann Example" <ann@`), []uint32{1}},
		{"TO folded header", ks(imap.SearchTo, "carol@example.net"), []uint32{1}},
		{"TO display name", ks(imap.SearchTo, "builder"), []uint32{1}},
		{"TO substring", ks(imap.SearchTo, "ann@example.org"), []uint32{3, 4}},
		{"CC", ks(imap.SearchCc, "dave"), []uint32{1}},
		{"BCC", ks(imap.SearchBcc, "secret-boss"), []uint32{2}},
		{"SUBJECT ISO-8859-1 Q", ks(imap.SearchSubject, "café crème"), []uint32{1}},
		{"SUBJECT case folded non-ASCII", ks(imap.SearchSubject, "CAFÉ CRÈME"), []uint32{1}},
		{"SUBJECT raw encoding does not match", ks(imap.SearchSubject, "E9"), nil},
		{"SUBJECT UTF-8 B, words joined", ks(imap.SearchSubject, "ünïcödé straße"), []uint32{2}},
		{"SUBJECT unfolded", ks(imap.SearchSubject, "quarterly report"), []uint32{3}},
		{"SUBJECT of embedded message not top-level", ks(imap.SearchSubject, "subject line"), nil},
		{"SUBJECT empty string matches all with subject", ks(imap.SearchSubject, ""), []uint32{1, 2, 3, 4}},
		{"HEADER field", hdr("x-priority", "1"), []uint32{1}},
		{"HEADER empty value exists", hdr("X-Empty", ""), []uint32{3}},
		{"HEADER empty string: presence", hdr("Message-ID", ""), []uint32{1}},
		{"HEADER absent", hdr("X-Nope", ""), nil},
		{"HEADER name is not value", hdr("Subject", "subject"), nil},
		{"BODY QP UTF-8", ks(imap.SearchBody, "grüße aus münchen"), []uint32{1}},
		{"BODY across soft line break", ks(imap.SearchBody, "soft line break"), []uint32{1}},
		{"BODY base64 Latin-1", ks(imap.SearchBody, "ça coûte TRÈS cher"), []uint32{2}},
		{"BODY plain alternative", ks(imap.SearchBody, "revenue grew"), []uint32{3}},
		{"BODY html text across tags", ks(imap.SearchBody, "hello world"), []uint32{3}},
		{"BODY html entities", ks(imap.SearchBody, "fish & chips at the café"), []uint32{3}},
		{"BODY html source", ks(imap.SearchBody, "<b>world</b>"), []uint32{3}},
		{"BODY skips attachments", ks(imap.SearchBody, "attachmentsecret"), nil},
		{"BODY skips preamble", ks(imap.SearchBody, "preamble"), nil},
		{"BODY embedded message body", ks(imap.SearchBody, "inner body text"), []uint32{4}},
		{"BODY embedded message header", ks(imap.SearchBody, "inner subject line"), []uint32{4}},
		{"BODY does not search top-level header", ks(imap.SearchBody, "example.org"), nil},
		{"TEXT header", ks(imap.SearchText, "x-priority: 1"), []uint32{1}},
		{"TEXT body", ks(imap.SearchText, "revenue"), []uint32{3}},
		{"TEXT decoded header", ks(imap.SearchText, "straße"), []uint32{2}},
		{"TEXT MIME header", ks(imap.SearchText, "report.bin"), []uint32{3}},
		{"TEXT common", ks(imap.SearchText, "example"), []uint32{1, 2, 3, 4}},
		{"AND content + flag", and(ks(imap.SearchTo, "ann@example.org"), k(imap.SearchSeen)), []uint32{4}},
		{"OR content", or(ks(imap.SearchBody, "münchen"), ks(imap.SearchSubject, "fwd")), []uint32{1, 4}},
		{"NOT content", not(ks(imap.SearchText, "café")), []uint32{2, 4}},
		{"nested", and(not(k(imap.SearchSeen)), or(ks(imap.SearchBcc, "boss"),
			and(ks(imap.SearchBody, "world"), kn(imap.SearchLarger, 100)))), []uint32{2, 3}},
		{"SENTON from Date header", kd(imap.SearchSentOn, 2024, 3, 3), []uint32{3}},
		{"SENTBEFORE", kd(imap.SearchSentBefore, 2024, 3, 2), []uint32{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := contentMailbox(t)
			var got []uint32
			for i, m := range msgs {
				c := m.candidate(uint32(i+1), uint32(len(msgs)))
				ok, err := Match(tt.key, c, now)
				if err != nil {
					t.Fatalf("uid %d: %v", m.uid, err)
				}
				if ok {
					got = append(got, m.uid)
				}
				if err := c.Release(); err != nil {
					t.Fatal(err)
				}
				if m.opens > 1 || m.closes != m.opens {
					t.Errorf("uid %d: opened %d times, closed %d times", m.uid, m.opens, m.closes)
				}
			}
			if !eqUIDs(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// One Candidate reused across messages with Release: cached content must not
// leak from one message into the next, and each message is opened once even
// when several content keys read it.
func TestCandidateReuse(t *testing.T) {
	msgs := contentMailbox(t)
	key := or(and(ks(imap.SearchSubject, "café"), ks(imap.SearchBody, "münchen")),
		or(ks(imap.SearchText, "revenue"), ks(imap.SearchFrom, "fwd@")))
	var c Candidate
	var got []uint32
	for round := 0; round < 2; round++ {
		got = got[:0]
		for i, m := range msgs {
			m.opens, m.closes = 0, 0
			tmp := m.candidate(uint32(i+1), 4)
			c.SeqNum, c.Msg, c.Open, c.MaxSeq, c.MaxUID = tmp.SeqNum, tmp.Msg, tmp.Open, 4, 4
			ok, err := Match(key, &c, now)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				got = append(got, m.uid)
			}
			if err := c.Release(); err != nil {
				t.Fatal(err)
			}
			if m.opens != 1 || m.closes != 1 {
				t.Errorf("uid %d: opened %d, closed %d; want 1, 1", m.uid, m.opens, m.closes)
			}
		}
		if !eqUIDs(got, []uint32{1, 3, 4}) {
			t.Errorf("round %d: got %v, want [1 3 4]", round, got)
		}
	}
}

func TestOpenError(t *testing.T) {
	c := &Candidate{Msg: &store.Message{UID: 9}, Open: func() (io.ReaderAt, *message.Part, error) {
		return nil, nil, fmt.Errorf("disk on fire")
	}}
	_, err := Match(ks(imap.SearchBody, "x"), c, now)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("want wrapped open error, got %v", err)
	}
}

func TestDecoders(t *testing.T) {
	qp := []string{
		"a=3Db", "a=b",
		"soft=\r\nbreak", "softbreak",
		"soft=  \r\nbreak", "softbreak",
		"bad=ZZescape", "bad=ZZescape",
		"lower=c3=a9", "lower\xc3\xa9",
		"end=", "end",
	}
	for i := 0; i < len(qp); i += 2 {
		if got := string(decodeQP(nil, []byte(qp[i]))); got != qp[i+1] {
			t.Errorf("decodeQP(%q) = %q, want %q", qp[i], got, qp[i+1])
		}
	}
	for _, s := range []string{"", "a", "ab", "abc", "abcd", "hello, world!\x00\xff"} {
		enc := base64.StdEncoding.EncodeToString([]byte(s))
		messy := wrap76(enc[:len(enc)/2]) + " \t" + enc[len(enc)/2:]
		if got := string(decodeBase64(nil, []byte(messy))); got != s {
			t.Errorf("decodeBase64(%q) = %q, want %q", messy, got, s)
		}
	}
}

func BenchmarkMatchBody(b *testing.B) {
	p := parse(b, msgMulti)
	m := &contentMsg{p: p, uid: 3}
	key := or(ks(imap.SearchBody, "no such phrase"), ks(imap.SearchSubject, "nothing"))
	var c Candidate
	tmp := m.candidate(1, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.SeqNum, c.Msg, c.Open = tmp.SeqNum, tmp.Msg, tmp.Open
		ok, err := Match(key, &c, now)
		if err != nil || ok {
			b.Fatal(ok, err)
		}
		if err := c.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestUnescape(t *testing.T) {
	// The allocation-free table agrees with the html package.
	for name, r := range commonEntities {
		ref := "&" + name + ";"
		if want := html.UnescapeString(ref); want != string(r) {
			t.Errorf("%s = %q, html says %q", ref, string(r), want)
		}
	}
	if len(commonEntities) != 96+15 {
		t.Errorf("entity table has %d entries", len(commonEntities))
	}
	tests := []string{
		"a &amp; b", "&lt;p&gt;", "caf&eacute; &Eacute;", "&#233;&#xE9;&#XE9;",
		"&hearts; &unknownentity; & alone &;", "&#0; &#xD800; &#99999999;", "tail &amp",
		"&frac12;&yuml;&nbsp;",
	}
	for _, s := range tests {
		got := string(appendUnescape(nil, []byte(s)))
		if want := html.UnescapeString(s); got != want {
			t.Errorf("appendUnescape(%q) = %q, want %q", s, got, want)
		}
	}
}

// Charsets beyond those mime.WordDecoder knows come from golang.org/x/text.
func TestCharsets(t *testing.T) {
	raw := crlf(`From: =?windows-1252?Q?=80uro_Desk?= <euro@example.com>
Subject: =?KOI8-R?B?8NLJ18XU?= world
To: x@example.com
Content-Type: text/plain; charset="koi8-r"
Content-Transfer-Encoding: 8bit

`) + "\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2!\r\n"
	m := &contentMsg{p: parse(t, raw), uid: 1}
	for _, tt := range []struct {
		key  *imap.SearchKey
		want bool
	}{
		{ks(imap.SearchFrom, "€uro desk"), true},
		{ks(imap.SearchSubject, "ПРИВЕТ WORLD"), true},
		{ks(imap.SearchBody, "привет, мир"), true},
		{ks(imap.SearchBody, "\xf0\xd2"), false},
	} {
		c := m.candidate(1, 1)
		got, err := Match(tt.key, c, now)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("%s %q: got %v, want %v", tt.key.Op, tt.key.Str, got, tt.want)
		}
		c.Release()
	}
}

// benchHeader is a delivered message's stored top-level header, as the
// scan verifies FROM..BCC candidates the full-text index proposes.
var benchHeader = []byte(crlf(`Return-Path: <anna.jones@example.org>
Received: from mx3.example.net (mx3.example.net [192.0.2.17])
	by mail.example with ESMTPS id 4A7F01C2
	for <b.smith@example.com>; Tue, 1 Dec 2026 10:00:00 +0000
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;
	h=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
	b=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR
Date: Tue, 1 Dec 2026 10:00:00 +0000
From: Anna Jones <anna.jones@example.org>
To: Bob Smith <b.smith@example.com>
Cc: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.net>, Carla Rossi <carla@corp.example>
Subject: Re: quarterly budget review and the project schedule
Message-ID: <20261201100000.4A7F01C2@example.org>
In-Reply-To: <20261130090000.11223344@example.com>
References: <20261129080000.55667788@example.com> <20261130090000.11223344@example.com>
MIME-Version: 1.0
User-Agent: ternbench/1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

`))

// BenchmarkMatchFromStored is SEARCH FROM on a stored header whose From
// lacks the name (it is in To): the verification of an index candidate
// that did not match.
func BenchmarkMatchFromStored(b *testing.B) {
	key := ks(imap.SearchFrom, "Smith")
	msg := &store.Message{UID: 1, Header: benchHeader}
	var c Candidate
	b.ReportAllocs()
	for b.Loop() {
		c.SeqNum, c.Msg = 1, msg
		ok, err := Match(key, &c, now)
		if err != nil || ok {
			b.Fatal(ok, err)
		}
		if err := c.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFieldHoldsAgreesWithMatch: FieldHolds on Extract's field lines
// gives Match's answer for FROM, TO, CC, BCC and SUBJECT with every needle
// ExactFieldNeedle accepts, on every message here: folded names and
// case, encoded words, comments, several fields of one name, an encoded
// word that decodes to a line break followed by a fake field, an empty
// field and the empty needle. Needles are every piece of up to 6 bytes
// of each message's folded header plus some whole values.
func TestFieldHoldsAgreesWithMatch(t *testing.T) {
	msgs := contentMailbox(t)
	for i, raw := range []string{
		"FROM: a@example.org\r\nfrom: (c) Bee <b (x)@ example.org>\r\nTo:\r\nSubject: s\r\nSUBJECT: second =?UTF-8?Q?Stra=C3=9Fe?=\r\n\r\nbody\r\n",
		"From: =?UTF-8?Q?x=0Ato:_evil@example.org?= <x@example.org>\r\nCc: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.org>,\r\n bob@example.org\r\nSubject: =?UTF-8?Q?a=0Asubject:_fake?=\r\n\r\nbody\r\n",
	} {
		msgs = append(msgs, &contentMsg{p: parse(t, raw), uid: uint32(10 + i)})
	}
	ops := map[imap.SearchKeyOp]string{imap.SearchFrom: "from", imap.SearchTo: "to", imap.SearchCc: "cc", imap.SearchBcc: "bcc", imap.SearchSubject: "subject"}
	needles := map[string]bool{"": true, "evil": true, "to: evil": true, "x\nto": true, "zoë": true, "b@example.org": true, "bee <b@example.org>": true,
		"fake": true, "straße": true, "second": true}
	for _, m := range msgs {
		end := bytes.Index(m.p.raw, []byte("\r\n\r\n"))
		hdr := Fold(string(m.p.raw[:end]))
		for i := range hdr {
			for n := 1; n <= 6 && i+n <= len(hdr); n++ {
				needles[string(hdr[i:i+n])] = true
			}
		}
	}
	checked := 0
	for _, m := range msgs {
		doc, err := Extract(bytes.NewReader(m.p.raw), m.p.root, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(doc.Fields, FieldLines(m.p.raw[:bytes.Index(m.p.raw, []byte("\r\n\r\n"))+2])) {
			t.Fatalf("uid %d: FieldLines differs from Extract's Fields %q", m.uid, doc.Fields)
		}
		for op, name := range ops {
			for needle := range needles {
				if !ExactFieldNeedle(Fold(needle)) {
					continue
				}
				c := m.candidate(1, 1)
				want, err := Match(ks(op, needle), c, now)
				if err != nil {
					t.Fatal(err)
				}
				c.Release()
				if got := FieldHolds(doc.Fields, name, Fold(needle)); got != want {
					t.Errorf("uid %d, %s %q: FieldHolds %v, Match %v (field lines %q)", m.uid, name, needle, got, want, doc.Fields)
				}
				checked++
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d comparisons", checked)
	}
	if ExactFieldNeedle([]byte("x\nto")) || ExactFieldNeedle([]byte("a\x00b")) {
		t.Error("ExactFieldNeedle accepts a line break or NUL")
	}
}
