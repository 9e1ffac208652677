package message

import "testing"

func TestAddressSearchText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"user-from@domain.org", "user-from@domain.org"},
		{"RealFrom <user-from@domain.org>", "RealFrom <user-from@domain.org>"},
		// Comments and white space inside the address go; a comment is
		// the name when there is no display name.
		{"<user-from (comment)@ (comment) domain.org>", "comment <user-from@domain.org>"},
		{"user-from@domain.org (RealFrom)", "RealFrom <user-from@domain.org>"},
		{"user-from\r\n @domain.org", "user-from@domain.org"},
		{"a@x.org, \"Quoted, Name\" <b@y.org>", "a@x.org, Quoted, Name <b@y.org>"},
		{"=?utf-8?q?J=C3=B6rg?= <j@x.org>", "Jörg <j@x.org>"},
		{"groupname: groupuser1@domain.org, groupuser2@domain.org;,\r\n  groupname2: groupuser3@domain.org;",
			"groupname: groupuser1@domain.org, groupuser2@domain.org;, groupname2: groupuser3@domain.org;"},
		{"groupname:;", "groupname:;"},
		{"undisclosed-recipients:;, x@y.org", "undisclosed-recipients:;, x@y.org"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := AddressSearchText(tt.in); got != tt.want {
			t.Errorf("AddressSearchText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
