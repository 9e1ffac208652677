package imap

import (
	"reflect"
	"testing"
)

func TestParseContextReturn(t *testing.T) {
	cmd := parseOne(t, "a SEARCH RETURN (UPDATE CONTEXT PARTIAL 4:2 COUNT) SEEN\r\n")
	a := cmd.Args.(*SearchArgs)
	if !reflect.DeepEqual(a.Return, []string{"UPDATE", "CONTEXT", "PARTIAL", "COUNT"}) || !a.HasReturn {
		t.Errorf("return = %q", a.Return)
	}
	if *a.Partial != (PartialRange{Lo: 2, Hi: 4}) || a.Partial.String() != "2:4" {
		t.Errorf("partial = %+v", a.Partial)
	}
	cmd = parseOne(t, "a UID SORT RETURN (PARTIAL -1:-100) (ARRIVAL) UTF-8 ALL\r\n")
	s := cmd.Args.(*SortArgs)
	if *s.Partial != (PartialRange{Lo: 1, Hi: 100, FromEnd: true}) || s.Partial.String() != "-1:-100" {
		t.Errorf("partial = %+v", s.Partial)
	}
	cmd = parseOne(t, "a CANCELUPDATE \"x1\" {2}\r\nx2\r\n")
	if got := cmd.Args.(*CancelUpdateArgs).Tags; !reflect.DeepEqual(got, []string{"x1", "x2"}) {
		t.Errorf("tags = %q", got)
	}
	for _, in := range []string{
		"a SEARCH RETURN (PARTIAL 1) ALL\r\n", "a SEARCH RETURN (PARTIAL 1:*) ALL\r\n",
		"a SEARCH RETURN (PARTIAL *:1) ALL\r\n", "a SEARCH RETURN (PARTIAL 0:1) ALL\r\n",
		"a SEARCH RETURN (PARTIAL -1:2) ALL\r\n", "a SEARCH RETURN (PARTIAL) ALL\r\n",
		"a CANCELUPDATE\r\n",
	} {
		r := newTestReader(in, ReaderOptions{})
		if cmd, err := r.ReadCommand(); err == nil {
			t.Errorf("%q parsed as %+v", in, cmd)
		}
	}
}

func TestParseCatenate(t *testing.T) {
	cmd := parseOne(t, "a APPEND INBOX (\\Seen) catenate (url \"/INBOX/;UID=1\" text {3+}\r\nabc UTF8 (~{2+}\r\nde)) {1+}\r\nx\r\n")
	a := cmd.Args.(*AppendArgs)
	if len(a.Messages) != 2 {
		t.Fatalf("messages = %+v", a.Messages)
	}
	want := []CatenatePart{{IsURL: true, URL: "/INBOX/;UID=1"}, {Text: []byte("abc")}, {Text: []byte("de")}}
	if m := a.Messages[0]; !reflect.DeepEqual(m.Parts, want) || !reflect.DeepEqual(m.Flags, []string{`\Seen`}) || m.Literal != nil {
		t.Errorf("message 1 = %+v", m)
	}
	if m := a.Messages[1]; m.Parts != nil || string(m.Literal) != "x" {
		t.Errorf("message 2 = %+v", m)
	}
	for _, in := range []string{
		"a APPEND INBOX CATENATE ()\r\n", "a APPEND INBOX CATENATE (URL)\r\n",
		"a APPEND INBOX CATENATE (TEXT \"abc\")\r\n", "a APPEND INBOX CATENATE (FOO \"x\")\r\n",
		"a APPEND INBOX CATENATE URL \"x\"\r\n",
	} {
		r := newTestReader(in, ReaderOptions{})
		if cmd, err := r.ReadCommand(); err == nil {
			t.Errorf("%q parsed as %+v", in, cmd)
		}
	}
}
