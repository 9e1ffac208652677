package message

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
)

const nulMsg = "From: a@b.org\r\nSubject: nul\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain text\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\r\n\r\n" +
	"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\x00ner\r\n\r\ninner body\r\n" +
	"--b--\r\n"

func TestNULFlags(t *testing.T) {
	_, root := parse(t, []byte(nulMsg))
	// Recorded flags agree with scanning each range.
	var check func(p *Part)
	check = func(p *Part) {
		raw := []byte(nulMsg)
		if want := bytes.IndexByte(raw[p.HeaderStart:p.HeaderEnd], 0) >= 0; p.HeaderNUL != want {
			t.Errorf("part at %d: HeaderNUL = %v, want %v", p.HeaderStart, p.HeaderNUL, want)
		}
		if want := bytes.IndexByte(raw[p.BodyStart:p.BodyEnd], 0) >= 0; p.BodyNUL != want {
			t.Errorf("part at %d: BodyNUL = %v, want %v", p.HeaderStart, p.BodyNUL, want)
		}
		for _, c := range p.Children {
			check(c)
		}
	}
	check(root)
	if !root.BodyNUL || root.HeaderNUL || root.Children[0].BodyNUL || !root.Children[1].BodyNUL ||
		!root.Children[2].BodyNUL || !root.Children[2].Children[0].HeaderNUL || root.Children[2].Children[0].BodyNUL {
		t.Errorf("unexpected flags: root %+v", *root)
	}

	tests := []struct {
		part []int
		spec string
		nul  bool
		leaf bool
	}{
		{nil, "", true, false},
		{nil, "HEADER", false, false},
		{nil, "TEXT", true, false},
		{[]int{1}, "", false, false},
		{[]int{2}, "", true, true},
		{[]int{2}, "MIME", false, false},
		{[]int{3}, "", true, false},
		{[]int{3}, "HEADER", true, false},
		{[]int{3}, "HEADER.FIELDS", true, false},
		{[]int{3}, "TEXT", false, false},
		{[]int{3, 1}, "", false, false},
		{[]int{9}, "", false, false},
	}
	for _, tt := range tests {
		nul, leaf := SectionNUL(root, tt.part, tt.spec)
		if nul != tt.nul || (leaf != nil) != tt.leaf {
			t.Errorf("SectionNUL(%v, %q) = %v, %v; want %v, leaf %v", tt.part, tt.spec, nul, leaf, tt.nul, tt.leaf)
		}
		// The flags must agree with the section's bytes.
		r, _, err := Section(bytes.NewReader([]byte(nulMsg)), root, tt.part, tt.spec, []string{"Subject"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		if got := bytes.IndexByte(b, 0) >= 0; got != nul {
			t.Errorf("SectionNUL(%v, %q) = %v but the section has NUL: %v", tt.part, tt.spec, nul, got)
		}
	}

	// A message without NUL has no flags set; a single-part binary message's
	// part 1 is a leaf.
	_, plain := parse(t, []byte("Subject: x\r\n\r\nhello\r\n"))
	if nul, _ := SectionNUL(plain, nil, ""); nul || plain.BodyNUL || plain.HeaderNUL {
		t.Error("NUL flags on a message without NUL")
	}
	single := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\r\n\r\n"
	_, sroot := parse(t, []byte(single))
	if nul, leaf := SectionNUL(sroot, []int{1}, ""); !nul || leaf != sroot {
		t.Errorf("single part: SectionNUL = %v, %v", nul, leaf)
	}
	if nul, leaf := SectionNUL(sroot, nil, "TEXT"); !nul || leaf != nil {
		t.Errorf("single part TEXT: SectionNUL = %v, %v", nul, leaf)
	}
}

func TestNULFlagsRoundTrip(t *testing.T) {
	info, err := Parse([]byte(nulMsg))
	if err != nil {
		t.Fatal(err)
	}
	root, err := DecodeParts(info.Parts)
	if err != nil {
		t.Fatal(err)
	}
	again := EncodeParts(root)
	if !bytes.Equal(again, info.Parts) {
		t.Error("part tree does not round-trip")
	}
	// A tree stored before the flags existed (flag bits clear) still decodes.
	root.Children[1].BodyNUL = false
	old, err := DecodeParts(EncodeParts(root))
	if err != nil || old.Children[1].BodyNUL {
		t.Errorf("decode without flags: %v, %+v", err, old)
	}
}

func TestBase64Body(t *testing.T) {
	_, root := parse(t, []byte(nulMsg))
	got, err := Base64Body(bytes.NewReader([]byte(nulMsg)), root.Children[1])
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "AC3kDQo=" { // \x00-\xe4\r\n: the last CRLF belongs to the delimiter
		t.Errorf("Base64Body = %q", got)
	}
	// Long bodies wrap at 76 characters with CRLF, no trailing line break.
	body := strings.Repeat("\x00\x01\x02", 100)
	msg := "Content-Transfer-Encoding: binary\r\n\r\n" + body
	_, r2 := parse(t, []byte(msg))
	got, err = Base64Body(strings.NewReader(msg), r2)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(got), "\r\n")
	for i, l := range lines {
		if len(l) > 76 || (i < len(lines)-1 && len(l) != 76) {
			t.Errorf("line %d has %d characters", i, len(l))
		}
	}
	dec, err := base64.StdEncoding.DecodeString(strings.Join(lines, ""))
	if err != nil || string(dec) != body {
		t.Errorf("Base64Body does not decode back: %v", err)
	}
}
