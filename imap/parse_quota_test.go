package imap

import (
	"reflect"
	"testing"
)

func TestParseQuota(t *testing.T) {
	for in, want := range map[string]*Command{
		"a GETQUOTA \"\"\r\n":           {Tag: "a", Name: "GETQUOTA", Args: &QuotaArgs{Root: ""}},
		"a getquota root\r\n":           {Tag: "a", Name: "GETQUOTA", Args: &QuotaArgs{Root: "root"}},
		"b GETQUOTAROOT INBOX\r\n":      {Tag: "b", Name: "GETQUOTAROOT", Args: &QuotaRootArgs{Mailbox: "INBOX"}},
		"b GETQUOTAROOT \"A b\"\r\n":    {Tag: "b", Name: "GETQUOTAROOT", Args: &QuotaRootArgs{Mailbox: "A b"}},
		"b GETQUOTAROOT {3}\r\nx/y\r\n": {Tag: "b", Name: "GETQUOTAROOT", Args: &QuotaRootArgs{Mailbox: "x/y"}},
	} {
		if got := parseOne(t, in); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %+v (%+v), want %+v", in, got, got.Args, want.Args)
		}
	}
	for _, in := range []string{"a GETQUOTA\r\n", "a GETQUOTAROOT\r\n", "a GETQUOTA x y\r\n", "a GETQUOTAROOT (x)\r\n"} {
		r := newTestReader(in, ReaderOptions{})
		if cmd, err := r.ReadCommand(); err == nil {
			t.Errorf("%q parsed as %+v", in, cmd)
		}
	}
}
