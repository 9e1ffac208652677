package imap

import (
	"reflect"
	"testing"
)

func TestParseACL(t *testing.T) {
	for in, want := range map[string]*Command{
		"a SETACL INBOX/Drafts Chris +cda\r\n": {Tag: "a", Name: "SETACL", Args: &ACLArgs{Mailbox: "INBOX/Drafts", Identifier: "Chris", Rights: "+cda"}},
		"a setacl \"A b\" anyone \"\"\r\n":     {Tag: "a", Name: "SETACL", Args: &ACLArgs{Mailbox: "A b", Identifier: "anyone", Rights: ""}},
		"b DELETEACL INBOX Fred\r\n":           {Tag: "b", Name: "DELETEACL", Args: &ACLArgs{Mailbox: "INBOX", Identifier: "Fred"}},
		"c GETACL {3}\r\nx/y\r\n":              {Tag: "c", Name: "GETACL", Args: &ACLArgs{Mailbox: "x/y"}},
		"d LISTRIGHTS ~/Mail/saved smith\r\n":  {Tag: "d", Name: "LISTRIGHTS", Args: &ACLArgs{Mailbox: "~/Mail/saved", Identifier: "smith"}},
		"e MYRIGHTS INBOX\r\n":                 {Tag: "e", Name: "MYRIGHTS", Args: &ACLArgs{Mailbox: "INBOX"}},
		"f SETQUOTA \"\" (STORAGE 512)\r\n":    {Tag: "f", Name: "SETQUOTA", Args: &SetQuotaArgs{Root: "", Resources: []QuotaLimit{{"STORAGE", 512}}}},
		"f setquota x (storage 1 Message 2)\r\n": {Tag: "f", Name: "SETQUOTA", Args: &SetQuotaArgs{Root: "x",
			Resources: []QuotaLimit{{"STORAGE", 1}, {"MESSAGE", 2}}}},
		"f SETQUOTA x ()\r\n": {Tag: "f", Name: "SETQUOTA", Args: &SetQuotaArgs{Root: "x"}},
	} {
		if got := parseOne(t, in); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v (%+v), want %+v", in, got, got.Args, want.Args)
		}
	}
	for _, in := range []string{
		"a SETACL INBOX bob\r\n", "a DELETEACL INBOX\r\n", "a GETACL\r\n", "a MYRIGHTS INBOX x\r\n",
		"a LISTRIGHTS INBOX\r\n", "a SETQUOTA x\r\n", "a SETQUOTA x (STORAGE)\r\n", "a SETQUOTA x (STORAGE -1)\r\n",
		"a SETQUOTA x (STORAGE 99999999999999999999)\r\n", "a SETQUOTA x (STORAGE 1\r\n",
		"a SETQUOTA x (A 1 B 2 C 3 D 4 E 5 F 6 G 7 H 8 I 9 J 10 K 11 L 12 M 13 N 14 O 15 P 16 Q 17)\r\n",
	} {
		r := newTestReader(in, ReaderOptions{})
		if cmd, err := r.ReadCommand(); err == nil {
			t.Errorf("%q parsed as %+v", in, cmd)
		}
	}
}
