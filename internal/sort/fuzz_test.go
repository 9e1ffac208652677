package sort

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzBaseSubject(f *testing.F) {
	for _, s := range []string{"Re: [FWD: c]", "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "re: [fwd: [fwd: re: [fwd: babylon]]]", "[a] [b]", "[fwd:]", "Re[2] : x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base, _ := BaseSubject(s)
		if strings.HasPrefix(base, " ") || strings.HasSuffix(base, " ") {
			t.Fatalf("BaseSubject(%q) = %q: white space left at an end", s, base)
		}
		if utf8.ValidString(s) && !utf8.ValidString(base) {
			t.Fatalf("BaseSubject(%q) = %q: invalid UTF-8", s, base)
		}
		if len(base) > len(s) {
			t.Fatalf("BaseSubject(%q) = %q: grew", s, base)
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(`(NIL "s" (("n" NIL "m" "h")) NIL NIL NIL NIL NIL NIL NIL)`))
	f.Add([]byte("(NIL {3}\r\nabc ((NIL NIL \"g\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL NIL \"<a@b>\" NIL)"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseEnvelope(b) // must not panic
		Sort([]Item{{Envelope: b}, {Envelope: b}}, []Criterion{{Key: Subject}, {Key: DisplayTo}, {Key: Cc}})
	})
}
