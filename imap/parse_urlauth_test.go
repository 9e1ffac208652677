package imap

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseURLAuth(t *testing.T) {
	const rump = "imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred"
	for in, want := range map[string]*Command{
		"a GENURLAUTH \"" + rump + "\" INTERNAL\r\n": {Tag: "a", Name: "GENURLAUTH",
			Args: &GenURLAuthArgs{Pairs: []GenURLAuthPair{{URL: rump, Mechanism: "INTERNAL"}}}},
		"a genurlauth x internal {1}\r\ny XSAMPLE\r\n": {Tag: "a", Name: "GENURLAUTH",
			Args: &GenURLAuthArgs{Pairs: []GenURLAuthPair{{URL: "x", Mechanism: "INTERNAL"}, {URL: "y", Mechanism: "XSAMPLE"}}}},
		"b RESETKEY\r\n":                      {Tag: "b", Name: "RESETKEY", Args: &ResetKeyArgs{}},
		"b RESETKEY INBOX\r\n":                {Tag: "b", Name: "RESETKEY", Args: &ResetKeyArgs{Mailbox: "INBOX", HasMailbox: true}},
		"b resetkey \"a b\" internal x-1\r\n": {Tag: "b", Name: "RESETKEY", Args: &ResetKeyArgs{Mailbox: "a b", HasMailbox: true, Mechanisms: []string{"INTERNAL", "X-1"}}},
		"c URLFETCH \"u1\" u2\r\n": {Tag: "c", Name: "URLFETCH",
			Args: &URLFetchArgs{URLs: []URLFetchURL{{URL: "u1"}, {URL: "u2"}}}},
		"c URLFETCH (\"u1\" binary BodyPartStructure) u2 (u3)\r\n": {Tag: "c", Name: "URLFETCH",
			Args: &URLFetchArgs{URLs: []URLFetchURL{{URL: "u1", Extended: true, Params: []string{"BINARY", "BODYPARTSTRUCTURE"}},
				{URL: "u2"}, {URL: "u3", Extended: true}}}},
	} {
		if got := parseOne(t, in); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v (%+v), want %+v", in, got, got.Args, want.Args)
		}
	}
	long := strings.Repeat("x", MaxURLLength+1)
	many := "a URLFETCH" + strings.Repeat(" u", MaxURLsPerCommand+1) + "\r\n"
	for _, in := range []string{
		"a GENURLAUTH\r\n", "a GENURLAUTH url\r\n", "a GENURLAUTH url INTERNAL url2\r\n",
		"a URLFETCH\r\n", "a URLFETCH (u\r\n", "a URLFETCH (u BINARY\r\n", "a URLFETCH ()\r\n",
		"a RESETKEY \r\n", "a URLFETCH \"" + long + "\"\r\n", many,
		"a URLFETCH (u A B C D E F G H I)\r\n",
	} {
		r := newTestReader(in, ReaderOptions{MaxLine: 64 << 10})
		if cmd, err := r.ReadCommand(); err == nil {
			t.Errorf("%.60q parsed as %+v", in, cmd)
		}
	}
}
