package search

import (
	"fmt"
	"testing"
	"time"

	"github.com/tern-imap/tern/imap"
)

// The address headers of Dovecot imaptest's search-addresses mailbox.
var addrMsgs = []string{
	"From: user-from@domain.org\nTo: user-to@domain.org\nCc: user-cc@domain.org\nBcc: user-bcc@domain.org\n\nbody\n",
	"From: RealFrom <user-from@domain.org>\nTo: RealTo <user-to@domain.org>\nCc: RealCc <user-cc@domain.org>\nBcc: RealBcc <user-bcc@domain.org>\n\nbody2\n",
	"From: <user-from (comment)@ (comment) domain.org>\nTo: <user-to@domain.org>\nCc: <user-cc@domain.org>\nBcc: <user-bcc@domain.org>\n\nbody3\n",
	"From: user-from@domain.org (RealFrom)\nTo: user-to@domain.org (RealTo)\nCc: user-cc@domain.org (RealCc)\nBcc: user-bcc@domain.org (RealBcc)\n\nbody4\n",
	"From: user-from1@domain.org, user-from2@domain.org\nCc: user-cc@domain.org\n\nbody5\n",
	"From: RealFrom <user-from@domain.org>\nTo: groupname: groupuser1@domain.org, groupuser2@domain.org;,\n  groupname2: groupuser3@domain.org;\n\nbody6\n",
	"From: RealFrom <user-from@domain.org>\nTo: groupname:;\n\nbody7\n",
	// Folded inside the address, with a comment between local part and @.
	"From: Split <user-from\n (c) @domain.org>\n\nbody8\n",
}

func TestMatchAddresses(t *testing.T) {
	var msgs []*contentMsg
	for i, s := range addrMsgs {
		msgs = append(msgs, &contentMsg{p: parse(t, crlf(s)), uid: uint32(i + 1)})
	}
	tests := []struct {
		op   imap.SearchKeyOp
		s    string
		want []uint32
	}{
		{imap.SearchFrom, "user-from@domain.org", []uint32{1, 2, 3, 4, 6, 7, 8}},
		{imap.SearchTo, "user-to@domain.org", []uint32{1, 2, 3, 4}},
		{imap.SearchCc, "user-cc@domain.org", []uint32{1, 2, 3, 4, 5}},
		{imap.SearchBcc, "USER-BCC@domain.org", []uint32{1, 2, 3, 4}},
		{imap.SearchFrom, "realfrom", []uint32{2, 4, 6, 7}},
		{imap.SearchFrom, "realfrom <user-from@", []uint32{2, 4, 6, 7}},
		{imap.SearchBcc, "ealbc", []uint32{2, 4}},
		{imap.SearchFrom, "ser-fro", []uint32{1, 2, 3, 4, 5, 6, 7, 8}},
		{imap.SearchFrom, "user-from2", []uint32{5}},
		{imap.SearchTo, "groupname2", []uint32{6}},
		{imap.SearchTo, "groupuser3", []uint32{6}},
		{imap.SearchTo, "groupuser4", nil},
		{imap.SearchFrom, "", []uint32{1, 2, 3, 4, 5, 6, 7, 8}},
		{imap.SearchTo, "", []uint32{1, 2, 3, 4, 6, 7}},
		// Subject is not an address field: no normalization there.
		{imap.SearchSubject, "user-from@domain.org", nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %q", tt.op, tt.s), func(t *testing.T) {
			var got []uint32
			for i, m := range msgs {
				c := m.candidate(uint32(i+1), uint32(len(msgs)))
				ok, err := Match(ks(tt.op, tt.s), c, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					got = append(got, m.uid)
				}
				if err := c.Release(); err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
