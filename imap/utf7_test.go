package imap

import (
	"errors"
	"testing"
	"unicode/utf8"
)

func TestMUTF7(t *testing.T) {
	tests := []struct{ dec, enc string }{
		{"", ""},
		{"INBOX", "INBOX"},
		{"&", "&-"},
		{"a&b", "a&-b"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"},
		{"😀", "&2D3eAA-"},
		{"a\tb", "a&AAk-b"},
		{"é&", "&AOk-&-"},
	}
	for _, tt := range tests {
		if got := EncodeMUTF7(tt.dec); got != tt.enc {
			t.Errorf("EncodeMUTF7(%q) = %q, want %q", tt.dec, got, tt.enc)
		}
		got, err := DecodeMUTF7(tt.enc)
		if err != nil || got != tt.dec {
			t.Errorf("DecodeMUTF7(%q) = %q, %v; want %q", tt.enc, got, err, tt.dec)
		}
	}
	if got := EncodeMUTF7("a\xffb"); got != "a&,,0-b" {
		t.Errorf("invalid UTF-8 encoded as %q", got)
	}
}

func TestMUTF7Invalid(t *testing.T) {
	for _, in := range []string{
		"&",             // unterminated
		"&AOk",          // unterminated
		"&AGE-",         // encodes printable "a"
		"&AOk-&AOk-",    // adjacent encoded runs
		"&AO!-",         // invalid base64
		"&AO/-",         // "/" is not modified base64
		"&AOl-",         // non-zero padding bits
		"&AO-",          // truncated unit
		"&2D0-",         // lone high surrogate
		"&3gA-",         // lone low surrogate
		"&2D3YPQ-",      // high followed by high
		"caf\xc3\xa9",   // raw 8-bit
		"a\x00b",        // control character
		"&AOkA6QDp-x&-", // valid, sanity (checked below)
	} {
		_, err := DecodeMUTF7(in)
		if in == "&AOkA6QDp-x&-" {
			if err != nil {
				t.Errorf("DecodeMUTF7(%q): %v", in, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrMUTF7) {
			t.Errorf("DecodeMUTF7(%q) err = %v, want ErrMUTF7", in, err)
		}
	}
}

func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "&-", "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "&AGE-", "&2D3eAA-", "Entw&APw-rfe", "&AOk-&AOk-", "台北"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if dec, err := DecodeMUTF7(s); err == nil {
			// Strict decoding means the encoding is canonical.
			if enc := EncodeMUTF7(dec); enc != s {
				t.Fatalf("DecodeMUTF7(%q) = %q, re-encodes as %q", s, dec, enc)
			}
		}
		if utf8.ValidString(s) {
			enc := EncodeMUTF7(s)
			dec, err := DecodeMUTF7(enc)
			if err != nil || dec != s {
				t.Fatalf("round trip %q -> %q -> %q, %v", s, enc, dec, err)
			}
		}
	})
}
