package server_test

import "testing"

// TestSearchAddressNormalized: FROM/TO/CC/BCC match the parsed addresses
// (comments and white space removed), not only the header text, as in
// Dovecot imaptest's search-addresses.
func TestSearchAddressNormalized(t *testing.T) {
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	c := ts.login("alice", "secret")
	for _, m := range []string{
		"From: user-from@domain.org\nTo: user-to@domain.org\n\nbody\n",
		"From: <user-from (comment)@ (comment) domain.org>\nCc: RealCc <user-cc@domain.org>\n\nbody3\n",
		"From: user-from@domain.org (RealFrom)\nBcc: groupname: groupuser1@domain.org;\n\nbody4\n",
		"From: other@domain.org\n\nbody5\n",
	} {
		c.appendMsg("INBOX", "", crlf(m))
	}
	c.ok("SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH FROM user-from@domain.org", "* SEARCH 1 2 3"},
		{"SEARCH FROM realfrom", "* SEARCH 3"},
		{"SEARCH CC \"realcc <user-cc@\"", "* SEARCH 2"},
		{"SEARCH BCC groupuser1@domain.org", "* SEARCH 3"},
		{"SEARCH NOT FROM user-from@domain.org", "* SEARCH 4"},
		{"UID SEARCH FROM \"USER-FROM@DOMAIN.ORG\"", "* SEARCH 1 2 3"},
	} {
		hasLine(t, c.ok(tc.cmd), tc.want)
	}
}
