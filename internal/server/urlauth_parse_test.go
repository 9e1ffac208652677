package server

import (
	"strings"
	"testing"
)

// FuzzParseAuthURL: any input parses without panicking, and what parses
// as a full URL has a rump that is a prefix of it, ending in the access
// identifier, followed by ":mechanism:token".
func FuzzParseAuthURL(f *testing.F) {
	for _, s := range []string{
		"imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred:internal:91354a473744909de610943775f92038",
		"imap://a;AUTH=*@h/Work/Sub;UIDVALIDITY=7/;UID=3/;PARTIAL=1.2;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=authuser:INTERNAL:0123456789abcdef0123456789abcdef",
		"imap://a@h/%C3%A9/;uid=1;urlauth=user+b%40c:internal:0123456789abcdef0123456789abcdef01",
		"imap://a@h/INBOX/;uid=1;urlauth=anonymous",
		"imap://a@h/\u023a\u023a/;uid=1;urlauth=anonymous",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, full := range []bool{false, true} {
			u, ok := parseAuthURL(raw, full)
			if !ok {
				continue
			}
			if !strings.HasPrefix(raw, u.rump) || u.user == "" || u.uid == 0 || u.access == "" {
				t.Fatalf("%q (full %v): %+v", raw, full, u)
			}
			rest := raw[len(u.rump):]
			if full != (rest != "") || (full && !strings.HasSuffix(strings.ToLower(rest), ":"+strings.ToLower(u.mech)+":"+u.token)) {
				t.Fatalf("%q (full %v): rump %q, rest %q", raw, full, u.rump, rest)
			}
		}
	})
}
