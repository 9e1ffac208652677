package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// The generator makes deterministic, realistic messages: the same seed
// gives byte-identical messages, so both servers get the same mail.

var firstNames = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
	"Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yolanda",
	"Zoë", "Mónica", "Søren", "Łukasz", "Chloé"}
var lastNames = []string{"Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Tanaka",
	"Nguyen", "Okafor", "Silva", "Andersson", "Novak", "Ivanova", "Cohen", "Patel"}
var domains = []string{"example.com", "example.org", "example.net", "mail.example", "corp.example"}

// words is the vocabulary of bodies and subjects; search terms come from it.
var words = strings.Fields(`project meeting budget report quarterly review deadline schedule invoice
contract proposal release server database network backup migration upgrade security audit
customer support ticket feature roadmap design prototype benchmark latency throughput memory
storage cluster deployment rollout incident postmortem outage monitoring dashboard metrics alert
vacation holiday conference travel hotel flight agenda minutes summary draft final approved
pending urgent question answer thanks regards please attached document spreadsheet presentation
marketing sales revenue forecast hiring interview candidate onboarding training workshop lunch
coffee tomorrow yesterday morning afternoon evening weekend monday tuesday wednesday thursday friday
kernel compiler parser protocol mailbox message folder filter search index cache thread envelope
garden bicycle recipe weather football concert museum library birthday anniversary wedding`)

// searchWords are words that occur in some but not all messages.
var searchWords = []string{"postmortem", "invoice", "prototype", "anniversary", "migration", "bicycle", "throughput", "onboarding"}

type person struct{ name, addr string }

func (p person) String() string {
	return mimeWord(p.name) + " <" + p.addr + ">"
}

// mimeWord encodes s as an RFC 2047 word when it is not ASCII.
func mimeWord(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
		}
	}
	return s
}

func randPerson(r *rand.Rand) person {
	f := firstNames[r.IntN(len(firstNames))]
	l := lastNames[r.IntN(len(lastNames))]
	d := domains[r.IntN(len(domains))]
	local := strings.ToLower(asciiOnly(f) + "." + asciiOnly(l))
	return person{f + " " + l, local + "@" + d}
}

func asciiOnly(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c < 0x80 {
			b.WriteRune(c)
		} else {
			b.WriteByte('x')
		}
	}
	return b.String()
}

type threadRef struct {
	msgID, refs, subject string
}

// generator produces one mailbox's messages in order.
type generator struct {
	r      *rand.Rand
	seed   uint64
	n      int
	recent []threadRef
	base   time.Time
}

func newGenerator(seed uint64, stream uint64) *generator {
	return &generator{
		r:    rand.New(rand.NewPCG(seed, stream)),
		seed: seed,
		base: time.Date(2024, 1, 2, 8, 0, 0, 0, time.UTC),
	}
}

// kind of message, chosen with realistic frequencies.
func (g *generator) next() []byte {
	x := g.r.IntN(100)
	switch {
	case x < 55:
		return g.message(1024+g.r.IntN(6*1024), 0, false)
	case x < 80:
		return g.message(2048+g.r.IntN(8*1024), 0, true)
	case x < 97:
		return g.message(1024+g.r.IntN(4096), 10*1024+g.r.IntN(150*1024), g.r.IntN(2) == 0)
	default:
		return g.message(2048, 300*1024+g.r.IntN(400*1024), false)
	}
}

// sized returns a message of about size bytes (text plus, above 8 KiB,
// an attachment).
// maxPlainSize is the largest size sized makes a text/plain message of.
const maxPlainSize = 8 * 1024

func (g *generator) sized(size int) []byte {
	if size <= maxPlainSize {
		return g.message(size-900, 0, false)
	}
	return g.message(2048, (size-4096)*3/4, false)
}

func (g *generator) paragraph(n int) string {
	var b strings.Builder
	col := 0
	for b.Len() < n {
		w := words[g.r.IntN(len(words))]
		if col+len(w) > 72 {
			b.WriteString("\r\n")
			col = 0
		} else if col > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

// message builds one message with a text body of about textLen bytes,
// an optional HTML alternative and an optional binary attachment of
// attLen bytes (before base64).
func (g *generator) message(textLen, attLen int, html bool) []byte {
	g.n++
	r := g.r
	from := randPerson(r)
	to := randPerson(r)
	date := g.base.Add(time.Duration(g.n)*47*time.Minute + time.Duration(r.IntN(3600))*time.Second)
	msgID := fmt.Sprintf("<%d.%d.%x@%s>", g.seed, g.n, r.Uint32(), domains[r.IntN(len(domains))])
	var subject, inReplyTo, refs string
	if len(g.recent) > 0 && r.IntN(100) < 35 {
		p := g.recent[r.IntN(len(g.recent))]
		subject = p.subject
		if !strings.HasPrefix(subject, "Re: ") {
			subject = "Re: " + subject
		}
		inReplyTo = p.msgID
		refs = strings.TrimSpace(p.refs + " " + p.msgID)
		if len(refs) > 900 { // keep References bounded like real clients do
			refs = refs[len(refs)-900:]
			refs = refs[strings.IndexByte(refs, '<'):]
		}
	} else {
		n := 3 + r.IntN(5)
		ws := make([]string, n)
		for i := range ws {
			ws[i] = words[r.IntN(len(words))]
		}
		ws[0] = strings.ToUpper(ws[0][:1]) + ws[0][1:]
		subject = strings.Join(ws, " ")
	}
	g.recent = append(g.recent, threadRef{msgID, refs, subject})
	if len(g.recent) > 50 {
		g.recent = g.recent[1:]
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", from.addr)
	fmt.Fprintf(&b, "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\r\n\tby mail.example with ESMTPS id %08X\r\n\tfor <%s>; %s\r\n",
		r.IntN(9), domains[r.IntN(len(domains))], r.IntN(9), domains[r.IntN(len(domains))], r.IntN(250)+1, r.Uint32(), to.addr, date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	if r.IntN(3) == 0 {
		fmt.Fprintf(&b, "Cc: %s, %s\r\n", randPerson(r), randPerson(r))
	}
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Message-ID: %s\r\n", msgID)
	if inReplyTo != "" {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", inReplyTo, refs)
	}
	b.WriteString("MIME-Version: 1.0\r\nUser-Agent: ternbench/1\r\n")
	text := "Hello " + to.name + ",\r\n\r\n" + g.paragraph(textLen) + "\r\n-- \r\n" + from.name + "\r\n"
	if attLen == 0 && !html {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(text)
		return b.Bytes()
	}
	outer := fmt.Sprintf("=_outer_%x", r.Uint64())
	inner := fmt.Sprintf("=_alt_%x", r.Uint64())
	textPart := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text
	if html {
		htmlBody := "<html><body><p>" + strings.ReplaceAll(text, "\r\n\r\n", "</p><p>") + "</p></body></html>\r\n"
		textPart = "Content-Type: multipart/alternative; boundary=\"" + inner + "\"\r\n\r\n" +
			"--" + inner + "\r\n" + textPart + "--" + inner + "\r\n" +
			"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + htmlBody +
			"--" + inner + "--\r\n"
	}
	if attLen == 0 {
		b.WriteString(textPart[:strings.Index(textPart, "\r\n\r\n")+2])
		b.WriteString("\r\n")
		b.WriteString(textPart[strings.Index(textPart, "\r\n\r\n")+4:])
		return b.Bytes()
	}
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\nThis is a multi-part message in MIME format.\r\n", outer)
	fmt.Fprintf(&b, "--%s\r\n%s", outer, textPart)
	names := []string{"report.pdf", "photo.jpg", "data.xlsx", "slides.pptx", "archive.zip"}
	types := []string{"application/pdf", "image/jpeg", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation", "application/zip"}
	k := r.IntN(len(names))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		outer, types[k], names[k], names[k])
	raw := make([]byte, attLen)
	for i := 0; i+8 <= len(raw); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", outer)
	return b.Bytes()
}
