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
	f.Add([]byte(`(N00""(())N00N00N00N00N00N00N00)`)) // an address list a skip accepts and an address parse does not
	f.Fuzz(func(t *testing.T, b []byte) {
		full, ferr := parseEnvelope(b) // must not panic
		// Threading's subject-only parse accepts exactly the same
		// envelopes and finds the same subject.
		if subj, serr := parseEnvelopeFields(b, false); subj.subject != full.subject || (serr == nil) != (ferr == nil) {
			t.Fatalf("subject-only parse: %q, %v; full parse: %q, %v", subj.subject, serr, full.subject, ferr)
		}
		Sort([]Item{{Envelope: b}, {Envelope: b}}, []Criterion{{Key: Subject}, {Key: DisplayTo}, {Key: Cc}})
	})
}
