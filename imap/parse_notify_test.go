package imap

import (
	"reflect"
	"testing"
)

func TestParseNotify(t *testing.T) {
	for in, want := range map[string]*NotifyArgs{
		"a NOTIFY NONE\r\n": {None: true},
		"a notify set (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (PERSONAL (messagenew messageexpunge MailboxName SubscriptionChange))\r\n": {Groups: []NotifyGroup{
			{Filter: "SELECTED", Events: []NotifyEvent{
				{Name: "MessageNew", Fetch: []FetchItem{{Kind: FetchUID}, {Kind: FetchFlags}}},
				{Name: "MessageExpunge"}, {Name: "FlagChange"}}},
			{Filter: "PERSONAL", Events: []NotifyEvent{{Name: "MessageNew"}, {Name: "MessageExpunge"}, {Name: "MailboxName"}, {Name: "SubscriptionChange"}}},
		}},
		"a NOTIFY SET STATUS (mailboxes \"a b\" (MessageNew MessageExpunge)) (subtree (INBOX x) NONE) (Inboxes (Foo))\r\n": {Status: true, Groups: []NotifyGroup{
			{Filter: "MAILBOXES", Mailboxes: []string{"a b"}, Events: []NotifyEvent{{Name: "MessageNew"}, {Name: "MessageExpunge"}}},
			{Filter: "SUBTREE", Mailboxes: []string{"INBOX", "x"}},
			{Filter: "INBOXES", Events: []NotifyEvent{{Name: "Foo"}}},
		}},
		"a NOTIFY SET (selected-delayed (MessageNew (BODY.PEEK[HEADER.FIELDS (From)])))\r\n": {Groups: []NotifyGroup{
			{Filter: "SELECTED-DELAYED", Events: []NotifyEvent{{Name: "MessageNew", Fetch: []FetchItem{{Kind: FetchBodySection, Peek: true, Section: Section{Specifier: "HEADER.FIELDS", Fields: []string{"From"}}}}}}},
		}},
	} {
		got := parseOne(t, in)
		if got.Name != "NOTIFY" || !reflect.DeepEqual(got.Args, want) {
			t.Errorf("%q: got %+v (%+v), want %+v", in, got, got.Args, want)
		}
	}
	for _, in := range []string{
		"a NOTIFY\r\n", "a NOTIFY SET\r\n", "a NOTIFY SET STATUS\r\n", "a NOTIFY ALL\r\n",
		"a NOTIFY SET (SELECTED)\r\n", "a NOTIFY SET (BOGUS (MessageNew))\r\n",
		"a NOTIFY SET (SUBTREE (MessageNew))\r\n", "a NOTIFY SET (PERSONAL ())\r\n",
		"a NOTIFY SET (PERSONAL (FlagChange (UID)))\r\n", "a NOTIFY SET (PERSONAL (MessageNew)\r\n",
		"a NOTIFY SET (PERSONAL ALL)\r\n", "a NOTIFY NONE x\r\n",
	} {
		r := newTestReader(in, ReaderOptions{})
		if cmd, err := r.ReadCommand(); err == nil {
			t.Errorf("%q parsed as %+v", in, cmd)
		}
	}
}
