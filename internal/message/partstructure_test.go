package message

import (
	"bytes"
	"strings"
	"testing"
)

// PartStructure of a part equals that part's entry in the message's
// BODYSTRUCTURE.
func TestPartStructure(t *testing.T) {
	raw := []byte(strings.ReplaceAll(`From: a@x
Content-Type: multipart/mixed; boundary=A

--A
Content-Type: text/plain; charset=utf-8

one
--A
Content-Type: message/rfc822

Subject: inner
Content-Type: multipart/alternative; boundary=B

--B
Content-Type: text/html
Content-Transfer-Encoding: base64

PGI+
--B--
--A
Content-Type: multipart/digest; boundary=C

--C

Subject: digested

d
--C--
--A--
`, "\n", "\r\n"))
	info, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	root, err := DecodeParts(info.Parts)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(raw)
	whole, err := PartStructure(r, root, nil)
	if err != nil || !bytes.Equal(whole, info.BodyStructure) {
		t.Fatalf("whole message: %s, %v; want %s", whole, err, info.BodyStructure)
	}
	for _, tc := range []struct {
		path []int
		want string
	}{
		{[]int{1}, `("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 3 0 NIL NIL NIL NIL)`},
		{[]int{2, 1}, `("text" "html" ("charset" "us-ascii") NIL NIL "base64" 4 0 NIL NIL NIL NIL)`},
		{[]int{3, 1}, `("message" "rfc822" NIL NIL NIL "7bit" `},
	} {
		got, err := PartStructure(r, root, tc.path)
		if err != nil || !bytes.HasPrefix(got, []byte(tc.want)) || !bytes.Contains(info.BodyStructure, got) {
			t.Errorf("part %v: %s, %v; want %s (and within %s)", tc.path, got, err, tc.want, info.BodyStructure)
		}
	}
	if got, err := PartStructure(r, root, []int{9}); got != nil || err != nil {
		t.Errorf("missing part: %s, %v", got, err)
	}
}
