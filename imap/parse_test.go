package imap

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newTestReader(in string, opts ReaderOptions) *Reader {
	return NewReader(bufio.NewReader(strings.NewReader(in)), opts)
}

func parseOne(t *testing.T, in string) *Command {
	t.Helper()
	r := newTestReader(in, ReaderOptions{})
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatalf("ReadCommand(%q): %v", in, err)
	}
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Fatalf("ReadCommand(%q): trailing input, next err=%v", in, err)
	}
	return cmd
}

func set(rs ...uint32) NumSet {
	var s NumSet
	for i := 0; i < len(rs); i += 2 {
		s.Ranges = append(s.Ranges, NumRange{Start: rs[i], Stop: rs[i+1]})
	}
	return s
}

func setp(rs ...uint32) *NumSet { s := set(rs...); return &s }

func strp(s string) *string { return &s }

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestReadCommandValid(t *testing.T) {
	tests := []struct {
		in   string
		want Command
	}{
		{"a CAPABILITY\r\n", Command{Tag: "a", Name: "CAPABILITY"}},
		{"a1 noop\r\n", Command{Tag: "a1", Name: "NOOP"}},
		{"A001 Logout\n", Command{Tag: "A001", Name: "LOGOUT"}},
		{"x.y] STARTTLS\r\n", Command{Tag: "x.y]", Name: "STARTTLS"}},
		{"a IDLE\r\n", Command{Tag: "a", Name: "IDLE"}},
		{"a CHECK\r\n", Command{Tag: "a", Name: "CHECK"}},
		{"a CLOSE\r\n", Command{Tag: "a", Name: "CLOSE"}},
		{"a UNSELECT\r\n", Command{Tag: "a", Name: "UNSELECT"}},
		{"a NAMESPACE\r\n", Command{Tag: "a", Name: "NAMESPACE"}},
		{"a unauthenticate\r\n", Command{Tag: "a", Name: "UNAUTHENTICATE"}},
		{"A003 REPLACE 4 Drafts (\\Seen \\Draft) {3+}\r\nabc\r\n", Command{Tag: "A003", Name: "REPLACE",
			Args: &ReplaceArgs{Num: 4, Mailbox: "Drafts", Message: AppendMessage{Flags: []string{`\Seen`, `\Draft`}, Literal: []byte("abc")}}}},
		{"a UID REPLACE * Sent \"05-Jan-2015 10:00:00 +0100\" ~{2+}\r\na\x00\r\n", Command{Tag: "a", Name: "REPLACE", UID: true,
			Args: &ReplaceArgs{Num: 0, Mailbox: "Sent", Message: AppendMessage{Date: time.Date(2015, 1, 5, 10, 0, 0, 0, time.FixedZone("", 3600)),
				Literal: []byte("a\x00"), Binary: true}}}},
		{"a EXPUNGE\r\n", Command{Tag: "a", Name: "EXPUNGE"}},
		{"a UID EXPUNGE 3000:3002\r\n", Command{Tag: "a", Name: "EXPUNGE", UID: true, Args: &ExpungeArgs{Set: set(3000, 3002)}}},
		{"a AUTHENTICATE plain\r\n", Command{Tag: "a", Name: "AUTHENTICATE", Args: &AuthenticateArgs{Mechanism: "PLAIN"}}},
		{"a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n", Command{Tag: "a", Name: "AUTHENTICATE",
			Args: &AuthenticateArgs{Mechanism: "PLAIN", InitialResponse: []byte("\x00user\x00pass"), HasInitialResponse: true}}},
		{"a AUTHENTICATE EXTERNAL =\r\n", Command{Tag: "a", Name: "AUTHENTICATE",
			Args: &AuthenticateArgs{Mechanism: "EXTERNAL", InitialResponse: []byte{}, HasInitialResponse: true}}},
		{"a LOGIN fred \"pa ss\\\"w\\\\d\"\r\n", Command{Tag: "a", Name: "LOGIN", Args: &LoginArgs{Username: "fred", Password: `pa ss"w\d`}}},
		{"a LOGIN {4+}\r\nfr d {3+}\r\np\"s\r\n", Command{Tag: "a", Name: "LOGIN", Args: &LoginArgs{Username: "fr d", Password: `p"s`}}},
		{"a COMPRESS deflate\r\n", Command{Tag: "a", Name: "COMPRESS", Args: &CompressArgs{Mechanism: "DEFLATE"}}},
		{"a ENABLE CONDSTORE utf8=accept\r\n", Command{Tag: "a", Name: "ENABLE", Args: &EnableArgs{Capabilities: []string{"CONDSTORE", "UTF8=ACCEPT"}}}},
		{"a SELECT INBOX\r\n", Command{Tag: "a", Name: "SELECT", Args: &SelectArgs{Mailbox: "INBOX"}}},
		{"a EXAMINE \"Sent Items\" (CONDSTORE)\r\n", Command{Tag: "a", Name: "EXAMINE", Args: &SelectArgs{Mailbox: "Sent Items", CondStore: true}}},
		{"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n", Command{Tag: "A02", Name: "SELECT",
			Args: &SelectArgs{Mailbox: "INBOX", QResync: &QResyncParams{UIDValidity: 67890007, ModSeq: 20050715194045000,
				KnownUIDs: setp(41, 41, 43, 211, 214, 541)}}}},
		{"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541 (1:15,16 4,5)))\r\n", Command{Tag: "B04", Name: "SELECT",
			Args: &SelectArgs{Mailbox: "INBOX", QResync: &QResyncParams{UIDValidity: 67890007, ModSeq: 90060115194045000,
				KnownUIDs: setp(41, 211, 214, 541), SeqMatchSeq: setp(1, 15, 16, 16), SeqMatchUID: setp(4, 4, 5, 5)}}}},
		{"a SELECT INBOX (CONDSTORE QRESYNC (1 2))\r\n", Command{Tag: "a", Name: "SELECT",
			Args: &SelectArgs{Mailbox: "INBOX", CondStore: true, QResync: &QResyncParams{UIDValidity: 1, ModSeq: 2}}}},
		{"a SELECT INBOX (QRESYNC (1 2 (1 5)))\r\n", Command{Tag: "a", Name: "SELECT",
			Args: &SelectArgs{Mailbox: "INBOX", QResync: &QResyncParams{UIDValidity: 1, ModSeq: 2, SeqMatchSeq: setp(1, 1), SeqMatchUID: setp(5, 5)}}}},
		{"a CREATE foo/bar\r\n", Command{Tag: "a", Name: "CREATE", Args: &CreateArgs{Mailbox: "foo/bar"}}},
		{"t1 CREATE \"Important Messages\" (USE (\\Important))\r\n", Command{Tag: "t1", Name: "CREATE",
			Args: &CreateArgs{Mailbox: "Important Messages", SpecialUse: []string{`\Important`}}}},
		{"a DELETE &ZeVnLIqe-\r\n", Command{Tag: "a", Name: "DELETE", Args: &MailboxArgs{Mailbox: "&ZeVnLIqe-"}}},
		{"a SUBSCRIBE #news.comp.mail.mime\r\n", Command{Tag: "a", Name: "SUBSCRIBE", Args: &MailboxArgs{Mailbox: "#news.comp.mail.mime"}}},
		{"a UNSUBSCRIBE \"\"\r\n", Command{Tag: "a", Name: "UNSUBSCRIBE", Args: &MailboxArgs{Mailbox: ""}}},
		{"a RENAME blurdybloop sarasoop\r\n", Command{Tag: "a", Name: "RENAME", Args: &RenameArgs{Old: "blurdybloop", New: "sarasoop"}}},
		{"a LIST \"\" *\r\n", Command{Tag: "a", Name: "LIST", Args: &ListArgs{Reference: "", Patterns: []string{"*"}}}},
		{"a LIST ~/Mail/ %]x\r\n", Command{Tag: "a", Name: "LIST", Args: &ListArgs{Reference: "~/Mail/", Patterns: []string{"%]x"}}}},
		{"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" \"Sent*\") RETURN (CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
			Command{Tag: "a", Name: "LIST", Args: &ListArgs{SelectOptions: []string{"SUBSCRIBED", "RECURSIVEMATCH"}, Reference: "",
				Patterns: []string{"INBOX", "Sent*"}, ReturnOptions: []string{"CHILDREN", "SPECIAL-USE", "STATUS"}, StatusItems: []string{"MESSAGES", "UNSEEN"}}}},
		{"a LIST () \"\" % RETURN ()\r\n", Command{Tag: "a", Name: "LIST", Args: &ListArgs{SelectOptions: []string{}, Patterns: []string{"%"}, ReturnOptions: []string{}}}},
		{"a LSUB \"#news.\" \"comp.mail.*\"\r\n", Command{Tag: "a", Name: "LSUB", Args: &ListArgs{LSub: true, Reference: "#news.", Patterns: []string{"comp.mail.*"}}}},
		{"a STATUS blurdybloop (UIDNEXT messages)\r\n", Command{Tag: "a", Name: "STATUS", Args: &StatusArgs{Mailbox: "blurdybloop", Items: []string{"UIDNEXT", "MESSAGES"}}}},
		{"a COPY 2:4 MEETING\r\n", Command{Tag: "a", Name: "COPY", Args: &CopyArgs{Set: set(2, 4), Mailbox: "MEETING"}}},
		{"a UID MOVE 42:69 foo\r\n", Command{Tag: "a", Name: "MOVE", UID: true, Args: &CopyArgs{Set: set(42, 69), Mailbox: "foo"}}},
		{"a UID copy $ Trash\r\n", Command{Tag: "a", Name: "COPY", UID: true, Args: &CopyArgs{Set: NumSet{Saved: true}, Mailbox: "Trash"}}},
		{"a ID NIL\r\n", Command{Tag: "a", Name: "ID", Args: &IDArgs{}}},
		{"a ID (\"name\" \"sodr\" \"version\" NIL)\r\n", Command{Tag: "a", Name: "ID",
			Args: &IDArgs{Params: map[string]*string{"name": strp("sodr"), "version": nil}}}},
		{"a ID ()\r\n", Command{Tag: "a", Name: "ID", Args: &IDArgs{Params: map[string]*string{}}}},
		{"\r\n\r\na NOOP\r\n", Command{Tag: "a", Name: "NOOP"}},
	}
	for _, tt := range tests {
		got := parseOne(t, tt.in)
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%q:\n got  %#v\n want %#v", tt.in, got.Args, tt.want.Args)
		}
	}
}

func TestReadCommandAppend(t *testing.T) {
	date := time.Date(1994, time.February, 7, 21, 52, 25, 0, time.FixedZone("", -8*3600))
	msg := "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nSubject: x\r\n\r\nHello\r\n"
	tests := []struct {
		in   string
		want *AppendArgs
	}{
		{"A003 APPEND saved-messages (\\Seen) {" + itoa(len(msg)) + "}\r\n" + msg + "\r\n",
			&AppendArgs{Mailbox: "saved-messages", Messages: []AppendMessage{{Flags: []string{`\Seen`}, Literal: []byte(msg)}}}},
		{"a APPEND INBOX () \" 7-Feb-1994 21:52:25 -0800\" {" + itoa(len(msg)) + "+}\r\n" + msg + "\r\n",
			&AppendArgs{Mailbox: "INBOX", Messages: []AppendMessage{{Flags: []string{}, Date: date, Literal: []byte(msg)}}}},
		{"a APPEND INBOX \"07-Feb-1994 21:52:25 -0800\" ~{3}\r\na\x00b\r\n",
			&AppendArgs{Mailbox: "INBOX", Messages: []AppendMessage{{Date: date, Literal: []byte("a\x00b"), Binary: true}}}},
		{"a APPEND INBOX UTF8 (~{2+}\r\nhi)\r\n",
			&AppendArgs{Mailbox: "INBOX", Messages: []AppendMessage{{Literal: []byte("hi"), Binary: true, UTF8: true}}}},
		{"a APPEND Drafts (\\Draft $MDNSent) {1}\r\nx (\\Seen) {1+}\r\ny {0}\r\n\r\n",
			&AppendArgs{Mailbox: "Drafts", Messages: []AppendMessage{
				{Flags: []string{`\Draft`, "$MDNSent"}, Literal: []byte("x")},
				{Flags: []string{`\Seen`}, Literal: []byte("y")},
				{Literal: []byte{}}}}},
	}
	for _, tt := range tests {
		continues := 0
		r := newTestReader(tt.in, ReaderOptions{Continue: func() error { continues++; return nil }})
		cmd, err := r.ReadCommand()
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		got := cmd.Args.(*AppendArgs)
		for i := range got.Messages {
			if d := got.Messages[i].Date; !d.IsZero() {
				if !d.Equal(tt.want.Messages[i].Date) || d.Format(time.RFC3339) != tt.want.Messages[i].Date.Format(time.RFC3339) {
					t.Errorf("%q: date %v, want %v", tt.in, d, tt.want.Messages[i].Date)
				}
				got.Messages[i].Date = tt.want.Messages[i].Date
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q:\n got  %#v\n want %#v", tt.in, got, tt.want)
		}
		wantCont := strings.Count(tt.in, "}\r\n") - strings.Count(tt.in, "+}\r\n")
		if continues != wantCont {
			t.Errorf("%q: Continue called %d times, want %d", tt.in, continues, wantCont)
		}
		if _, err := r.ReadCommand(); err != io.EOF {
			t.Errorf("%q: trailing input: %v", tt.in, err)
		}
	}
}

func itoa(n int) string { return NumSet{Ranges: []NumRange{{uint32(n), uint32(n)}}}.String() }

func TestReadCommandFetch(t *testing.T) {
	hdr := func(part []int, spec string, fields ...string) Section {
		return Section{Part: part, Specifier: spec, Fields: fields}
	}
	tests := []struct {
		in   string
		want *FetchArgs
	}{
		{"a FETCH 1 ALL\r\n", &FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}}}},
		{"a FETCH 1 fast\r\n", &FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}}}},
		{"a FETCH 1 FULL\r\n", &FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}, {Kind: FetchBody}}}},
		{"a FETCH 2:4 BODY[]\r\n", &FetchArgs{Set: set(2, 4), Items: []FetchItem{{Kind: FetchBodySection}}}},
		{"a FETCH * uid\r\n", &FetchArgs{Set: set(0, 0), Items: []FetchItem{{Kind: FetchUID}}}},
		{"a FETCH 1 PREVIEW\r\n", &FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchPreview}}}},
		{"a FETCH 1 preview (lazy)\r\n", &FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchPreview, Lazy: true}}}},
		{"a FETCH 1 (UID PREVIEW (LAZY) PREVIEW FLAGS)\r\n", &FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchUID},
			{Kind: FetchPreview, Lazy: true}, {Kind: FetchPreview}, {Kind: FetchFlags}}}},
		{"a FETCH 1 PREVIEW (CHANGEDSINCE 7)\r\n", &FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchPreview}}, ChangedSince: 7, HasChangedSince: true}},
		{"a FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE RFC822 RFC822.HEADER RFC822.TEXT MODSEQ EMAILID THREADID SAVEDATE)\r\n",
			&FetchArgs{Set: set(1, 1), Items: []FetchItem{{Kind: FetchUID}, {Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size},
				{Kind: FetchEnvelope}, {Kind: FetchBody}, {Kind: FetchBodyStructure}, {Kind: FetchRFC822}, {Kind: FetchRFC822Header},
				{Kind: FetchRFC822Text}, {Kind: FetchModSeq}, {Kind: FetchEmailID}, {Kind: FetchThreadID}, {Kind: FetchSaveDate}}}},
		{"a FETCH 1 (BODY[1.2.HEADER.FIELDS (From To)]<0.100> BODY.PEEK[] body[header.fields.not (\"X-A\" {3}\r\nX-B)] BODY[3.MIME] BODY[TEXT]<5.7> BODY[4.1])\r\n",
			&FetchArgs{Set: set(1, 1), Items: []FetchItem{
				{Kind: FetchBodySection, Section: hdr([]int{1, 2}, "HEADER.FIELDS", "From", "To"), Partial: &Partial{0, 100}},
				{Kind: FetchBodySection, Peek: true},
				{Kind: FetchBodySection, Section: hdr(nil, "HEADER.FIELDS.NOT", "X-A", "X-B")},
				{Kind: FetchBodySection, Section: hdr([]int{3}, "MIME")},
				{Kind: FetchBodySection, Section: hdr(nil, "TEXT"), Partial: &Partial{5, 7}},
				{Kind: FetchBodySection, Section: hdr([]int{4, 1}, "")}}}},
		{"a UID FETCH 1:* (BINARY.PEEK[1]<0.10> BINARY[] BINARY.SIZE[1.2]) (CHANGEDSINCE 12345 VANISHED)\r\n",
			&FetchArgs{Set: set(1, 0), Items: []FetchItem{
				{Kind: FetchBinarySection, Peek: true, Section: hdr([]int{1}, ""), Partial: &Partial{0, 10}},
				{Kind: FetchBinarySection},
				{Kind: FetchBinarySize, Section: hdr([]int{1, 2}, "")}},
				ChangedSince: 12345, HasChangedSince: true, Vanished: true}},
		{"a FETCH 1:* FLAGS (CHANGEDSINCE 9223372036854775807)\r\n", &FetchArgs{Set: set(1, 0), Items: []FetchItem{{Kind: FetchFlags}}, ChangedSince: 1<<63 - 1, HasChangedSince: true}},
	}
	for _, tt := range tests {
		cmd := parseOne(t, tt.in)
		if cmd.Name != "FETCH" || !reflect.DeepEqual(cmd.Args, tt.want) {
			t.Errorf("%q:\n got  %#v\n want %#v", tt.in, cmd.Args, tt.want)
		}
	}
}

func TestReadCommandStore(t *testing.T) {
	tests := []struct {
		in   string
		want *StoreArgs
	}{
		{"a STORE 2:4 +FLAGS (\\Deleted)\r\n", &StoreArgs{Set: set(2, 4), Op: StoreAdd, Flags: []string{`\Deleted`}}},
		{"a STORE 1 -flags.silent \\Seen $Junk\r\n", &StoreArgs{Set: set(1, 1), Op: StoreRemove, Silent: true, Flags: []string{`\Seen`, "$Junk"}}},
		{"a STORE 1 FLAGS ()\r\n", &StoreArgs{Set: set(1, 1), Op: StoreReplace, Flags: []string{}}},
		{"a UID STORE 7,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)\r\n",
			&StoreArgs{Set: set(7, 7, 9, 9), Op: StoreAdd, Silent: true, Flags: []string{`\Deleted`}, UnchangedSince: 320162338, HasUnchangedSince: true}},
		{"a STORE 1 (UNCHANGEDSINCE 0) FLAGS (a)\r\n", &StoreArgs{Set: set(1, 1), Flags: []string{"a"}, HasUnchangedSince: true}},
	}
	for _, tt := range tests {
		cmd := parseOne(t, tt.in)
		if cmd.Name != "STORE" || !reflect.DeepEqual(cmd.Args, tt.want) {
			t.Errorf("%q:\n got  %#v\n want %#v", tt.in, cmd.Args, tt.want)
		}
	}
}

func key(op SearchKeyOp, children ...*SearchKey) *SearchKey {
	return &SearchKey{Op: op, Children: children}
}

func TestReadCommandSearch(t *testing.T) {
	tests := []struct {
		in   string
		want *SearchArgs
	}{
		{"a SEARCH ALL\r\n", &SearchArgs{Key: key(SearchAll)}},
		{"A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n", &SearchArgs{Key: key(SearchAnd,
			key(SearchFlagged), &SearchKey{Op: SearchSince, Date: day(1994, 2, 1)}, key(SearchNot, &SearchKey{Op: SearchFrom, Str: "Smith"}))}},
		{"a SEARCH OR (FROM a TO b) NOT SEEN\r\n", &SearchArgs{Key: key(SearchOr,
			key(SearchAnd, &SearchKey{Op: SearchFrom, Str: "a"}, &SearchKey{Op: SearchTo, Str: "b"}), key(SearchNot, key(SearchSeen)))}},
		{"a SEARCH ((DELETED))\r\n", &SearchArgs{Key: key(SearchDeleted)}},
		{"a UID SEARCH 1:100 UID 5,* $\r\n", &SearchArgs{Key: key(SearchAnd, &SearchKey{Op: SearchSeqSet, Set: set(1, 100)},
			&SearchKey{Op: SearchUID, Set: set(5, 5, 0, 0)}, &SearchKey{Op: SearchSeqSet, Set: NumSet{Saved: true}})}},
		{"a SEARCH RETURN (MIN MAX COUNT ALL SAVE) CHARSET utf-8 TEXT \"x\"\r\n", &SearchArgs{
			Return: []string{"MIN", "MAX", "COUNT", "ALL", "SAVE"}, HasReturn: true, Charset: "utf-8", Key: &SearchKey{Op: SearchText, Str: "x"}}},
		// RFC 6203 §3 and §4 examples.
		{"A1 SEARCH FUZZY (SUBJECT \"IMAP break\")\r\n", &SearchArgs{Key: key(SearchFuzzy, &SearchKey{Op: SearchSubject, Str: "IMAP break"})}},
		{"A2 SEARCH FUZZY SUBJECT work FROM user@example.com\r\n", &SearchArgs{Key: key(SearchAnd,
			key(SearchFuzzy, &SearchKey{Op: SearchSubject, Str: "work"}), &SearchKey{Op: SearchFrom, Str: "user@example.com"})}},
		{"B1 SEARCH RETURN (RELEVANCY ALL) FUZZY TEXT \"Helo\"\r\n", &SearchArgs{Return: []string{"RELEVANCY", "ALL"}, HasReturn: true,
			Key: key(SearchFuzzy, &SearchKey{Op: SearchText, Str: "Helo"})}},
		{"a SEARCH RETURN () 1:*\r\n", &SearchArgs{Return: []string{}, HasReturn: true, Key: &SearchKey{Op: SearchSeqSet, Set: set(1, 0)}}},
		{"a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338\r\n", &SearchArgs{Key: &SearchKey{Op: SearchModSeq, Num: 620162338}}},
		{"a SEARCH MODSEQ 0\r\n", &SearchArgs{Key: &SearchKey{Op: SearchModSeq}}},
		{"a SEARCH HEADER Message-ID {5}\r\n<a@b>\r\n", &SearchArgs{Key: &SearchKey{Op: SearchHeader, Field: "Message-ID", Str: "<a@b>"}}},
		{"a SEARCH KEYWORD $Forwarded UNKEYWORD foo\r\n", &SearchArgs{Key: key(SearchAnd, &SearchKey{Op: SearchKeyword, Str: "$Forwarded"}, &SearchKey{Op: SearchUnkeyword, Str: "foo"})}},
		{"a SEARCH LARGER 100 SMALLER 5000 OLDER 3600 YOUNGER 60\r\n", &SearchArgs{Key: key(SearchAnd, &SearchKey{Op: SearchLarger, Num: 100},
			&SearchKey{Op: SearchSmaller, Num: 5000}, &SearchKey{Op: SearchOlder, Num: 3600}, &SearchKey{Op: SearchYounger, Num: 60})}},
		{"a SEARCH EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9\r\n", &SearchArgs{Key: key(SearchAnd,
			&SearchKey{Op: SearchEmailID, Str: "M6d99ac3275bb4e"}, &SearchKey{Op: SearchThreadID, Str: "T64b478a75b7ea9"})}},
		{"a SEARCH SAVEDBEFORE \"29-Feb-2024\" SAVEDON 1-jan-2000 SAVEDSINCE 31-Dec-1999 SAVEDATESUPPORTED\r\n", &SearchArgs{Key: key(SearchAnd,
			&SearchKey{Op: SearchSaveDateBefore, Date: day(2024, 2, 29)}, &SearchKey{Op: SearchSaveDateOn, Date: day(2000, 1, 1)},
			&SearchKey{Op: SearchSaveDateSince, Date: day(1999, 12, 31)}, key(SearchSaveDateSupported))}},
		{"a SEARCH ANSWERED DELETED DRAFT RECENT NEW OLD UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN BEFORE 1-Jan-2020 ON 2-Jan-2020 SENTBEFORE 3-Jan-2020 SENTON 4-Jan-2020 SENTSINCE 5-Jan-2020 BCC x CC y BODY z SUBJECT w\r\n",
			&SearchArgs{Key: key(SearchAnd, key(SearchAnswered), key(SearchDeleted), key(SearchDraft), key(SearchRecent), key(SearchNew), key(SearchOld),
				key(SearchUnanswered), key(SearchUndeleted), key(SearchUndraft), key(SearchUnflagged), key(SearchUnseen),
				&SearchKey{Op: SearchBefore, Date: day(2020, 1, 1)}, &SearchKey{Op: SearchOn, Date: day(2020, 1, 2)},
				&SearchKey{Op: SearchSentBefore, Date: day(2020, 1, 3)}, &SearchKey{Op: SearchSentOn, Date: day(2020, 1, 4)},
				&SearchKey{Op: SearchSentSince, Date: day(2020, 1, 5)}, &SearchKey{Op: SearchBcc, Str: "x"}, &SearchKey{Op: SearchCc, Str: "y"},
				&SearchKey{Op: SearchBody, Str: "z"}, &SearchKey{Op: SearchSubject, Str: "w"})}},
		// ISO-8859-1 "café" converted to UTF-8.
		{"a SEARCH CHARSET ISO-8859-1 SUBJECT {4}\r\ncaf\xe9\r\n", &SearchArgs{Charset: "ISO-8859-1", Key: &SearchKey{Op: SearchSubject, Str: "café"}}},
		{"a SEARCH CHARSET \"US-ASCII\" subject \"caf\"\r\n", &SearchArgs{Charset: "US-ASCII", Key: &SearchKey{Op: SearchSubject, Str: "caf"}}},
	}
	for _, tt := range tests {
		cmd := parseOne(t, tt.in)
		if cmd.Name != "SEARCH" || !reflect.DeepEqual(cmd.Args, tt.want) {
			t.Errorf("%q:\n got  %+v\n want %+v", tt.in, cmd.Args, tt.want)
		}
	}
}

// TestReadCommandErrors checks that bad commands give a non-fatal
// ParseError carrying the tag and that the reader resynchronises on the
// next line.
func TestReadCommandErrors(t *testing.T) {
	tests := []struct {
		in  string
		tag string
		msg string // substring of Msg
	}{
		{"a FOO\r\n", "a", "unknown command"},
		{"a UID SELECT x\r\n", "a", "unknown UID command"},
		{"+ NOOP\r\n", "", "invalid tag"},
		{"\x00 NOOP\r\n", "", "invalid tag"},
		{"a NOOP extra\r\n", "a", "end of line"},
		{"a UNAUTHENTICATE x\r\n", "a", "end of line"},
		{"a UID UNAUTHENTICATE\r\n", "a", "unknown UID command"},
		{"a REPLACE 0 INBOX {1+}\r\nx\r\n", "a", "zero"},
		{"a REPLACE 1:2 INBOX {1+}\r\nx\r\n", "a", "SP"},
		{"a REPLACE 1 INBOX\r\n", "a", "SP"},
		{"a REPLACE 1 INBOX x\r\n", "a", "literal"},
		{"a REPLACE 1 INBOX {1+}\r\nx {1+}\r\ny\r\n", "a", "end of line"},
		{"a LOGIN x\r\n", "a", "SP"},
		{"a LOGIN \"x\r\n", "a", "unterminated"},
		{"a LOGIN \"x\\n\" y\r\n", "a", "escape"},
		{"a LOGIN \"x\x00\" y\r\n", "a", "NUL"},
		{"a LOGIN {2+}\r\na\x00 y\r\n", "a", "NUL"},
		{"a FETCH 0 FLAGS\r\n", "a", "nz-number"},
		{"a FETCH 4294967296 FLAGS\r\n", "a", "out of range"},
		{"a FETCH 1:2: FLAGS\r\n", "a", "sequence set"},
		{"a FETCH 1 (FLAGS ALL)\r\n", "a", "unknown fetch item"},
		{"a FETCH 1 BODY[1.]\r\n", "a", "specifier"},
		{"a FETCH 1 BODY[0]\r\n", "a", "zero"},
		{"a FETCH 1 BODY[MIME]\r\n", "a", "MIME"},
		{"a FETCH 1 BODY[HEADER]<1.0>\r\n", "a", "zero"},
		{"a FETCH 1 BINARY[HEADER]\r\n", "a", "number"},
		{"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n", "a", "out of range"},
		{"a FETCH 1 FLAGS (FOO)\r\n", "a", "modifier"},
		{"a STORE 1 FLAGS \\*\r\n", "a", `\*`},
		{"a STORE 1 XFLAGS x\r\n", "a", "FLAGS"},
		{"a SEARCH FOO\r\n", "a", "unknown search key"},
		{"a SEARCH BEFORE 30-Feb-2020\r\n", "a", "date"},
		{"a SEARCH BEFORE 1-Foo-2020\r\n", "a", "date"},
		{"a SEARCH OR ALL\r\n", "a", "SP"},
		{"a SEARCH CHARSET KOI9-Q ALL\r\n", "a", "[BADCHARSET (UTF-8 US-ASCII)]"},
		{"a SEARCH RETURN (FOO) ALL\r\n", "a", "return option"},
		{"a SEARCH EMAILID a+b\r\n", "a", "object id"},
		{"a SEARCH MODSEQ \"/x\" all 5\r\n", "a", "entry"},
		{"a SELECT x (FOO)\r\n", "a", "select parameter"},
		{"a SELECT x (QRESYNC (0 1))\r\n", "a", "zero"},
		{"a SELECT x (QRESYNC (1 1 1:*))\r\n", "a", "not allowed"},
		{"a LIST (RECURSIVEMATCH) \"\" *\r\n", "a", "RECURSIVEMATCH"},
		{"a LIST \"\" * RETURN (FOO)\r\n", "a", "return option"},
		{"a STATUS x (FOO)\r\n", "a", "status item"},
		{"a STATUS x ()\r\n", "a", "empty"},
		{"a APPEND x \"1-Jan-2000 99:00:00 +0000\" {1}\r\n", "a", "date-time"},
		{"a APPEND x\r\n", "a", "SP"},
		{"a AUTHENTICATE PLAIN !!\r\n", "a", "initial response"},
		{"a AUTHENTICATE PLAIN AAA\r\n", "a", "base64"},
		{"a ENABLE\r\n", "a", "capability"},
		{"a COMPRESS\r\n", "a", "SP"},
		{"a COMPRESS \r\n", "a", "compression mechanism"},
		{"a ID (\"a\")\r\n", "a", "SP"},
		{"a COPY {1}\r\n", "a", "sequence set"}, // no continuation is sent for the literal
	}
	for _, tt := range tests {
		continues := 0
		r := newTestReader(tt.in+"b NOOP\r\n", ReaderOptions{Continue: func() error { continues++; return nil }})
		cmd, err := r.ReadCommand()
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%q: got cmd %+v err %v, want ParseError", tt.in, cmd, err)
			continue
		}
		if pe.Fatal || pe.Tag != tt.tag || !strings.Contains(pe.Msg, tt.msg) {
			t.Errorf("%q: got %+v, want tag %q msg containing %q", tt.in, pe, tt.tag, tt.msg)
		}
		cmd, err = r.ReadCommand()
		if err != nil || cmd.Tag != "b" || cmd.Name != "NOOP" {
			t.Errorf("%q: not resynchronised: %+v %v", tt.in, cmd, err)
		}
	}
}

func TestBadCommandSkipsNonSyncLiteral(t *testing.T) {
	// The error is found before the literal; its data, sent without
	// waiting, must be skipped along with the rest of the command.
	in := "a BOGUS {5+}\r\n12345 more {3+}\r\nxyz\r\nb NOOP\r\n"
	r := newTestReader(in, ReaderOptions{})
	if _, err := r.ReadCommand(); err == nil {
		t.Fatal("expected error")
	}
	cmd, err := r.ReadCommand()
	if err != nil || cmd.Tag != "b" {
		t.Fatalf("got %+v %v", cmd, err)
	}
}

func TestLiteralLimits(t *testing.T) {
	// Synchronizing literal too big: nothing was sent, the rest of the line
	// is dropped, no continuation requested.
	called := false
	r := newTestReader("a APPEND INBOX {100}\r\nb NOOP\r\n", ReaderOptions{MaxLiteral: 10, Continue: func() error { called = true; return nil }})
	_, err := r.ReadCommand()
	var pe *ParseError
	if !errors.As(err, &pe) || !pe.TooBig || pe.Fatal || pe.Tag != "a" {
		t.Fatalf("got %v (%+v)", err, pe)
	}
	if called {
		t.Error("Continue called for rejected literal")
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "b" {
		t.Fatalf("after TOOBIG: %+v %v", cmd, err)
	}

	// Non-synchronizing literal too big: fatal.
	r = newTestReader("a APPEND INBOX {100+}\r\n"+strings.Repeat("x", 100)+"\r\n", ReaderOptions{MaxLiteral: 10})
	_, err = r.ReadCommand()
	if !errors.As(err, &pe) || !pe.TooBig || !pe.Fatal {
		t.Fatalf("got %v", err)
	}

	// The sum of MULTIAPPEND literals is bounded too.
	r = newTestReader("a APPEND INBOX {6+}\r\n123456 {6+}\r\n123456\r\n", ReaderOptions{MaxLiteral: 10})
	_, err = r.ReadCommand()
	if !errors.As(err, &pe) || !pe.TooBig {
		t.Fatalf("got %v", err)
	}

	// A string literal may not exceed MaxLine.
	r = newTestReader("a LOGIN {100}\r\n", ReaderOptions{MaxLine: 50})
	_, err = r.ReadCommand()
	if !errors.As(err, &pe) || !pe.TooBig || pe.Fatal {
		t.Fatalf("got %v", err)
	}

	// A huge announced literal allocates only what arrives.
	r = newTestReader("a APPEND INBOX {60000000+}\r\nabc", ReaderOptions{})
	_, err = r.ReadCommand()
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v", err)
	}
}

func TestContinueError(t *testing.T) {
	boom := errors.New("boom")
	r := newTestReader("a LOGIN {1}\r\nx y\r\n", ReaderOptions{Continue: func() error { return boom }})
	if _, err := r.ReadCommand(); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

func TestLineTooLong(t *testing.T) {
	r := newTestReader("a LOGIN "+strings.Repeat("x", 200)+" y\r\n", ReaderOptions{MaxLine: 100})
	_, err := r.ReadCommand()
	var pe *ParseError
	if !errors.As(err, &pe) || !pe.Fatal || pe.Tag != "a" {
		t.Fatalf("got %v", err)
	}
}

func TestDepthLimit(t *testing.T) {
	in := "a SEARCH " + strings.Repeat("(", 40) + "ALL" + strings.Repeat(")", 40) + "\r\nb NOOP\r\n"
	r := newTestReader(in, ReaderOptions{MaxDepth: 32})
	_, err := r.ReadCommand()
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(pe.Msg, "deep") {
		t.Fatalf("got %v", err)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "b" {
		t.Fatalf("got %+v %v", cmd, err)
	}
	// 32 levels are fine.
	in = "a SEARCH " + strings.Repeat("(", 32) + "ALL" + strings.Repeat(")", 32) + "\r\n"
	if cmd := parseOne(t, in); cmd.Args.(*SearchArgs).Key.Op != SearchAll {
		t.Fatal("bad key")
	}
	// Deep NOT chains are bounded.
	in = "a SEARCH " + strings.Repeat("NOT ", 5000) + "ALL\r\n"
	r = newTestReader(in, ReaderOptions{})
	if _, err := r.ReadCommand(); !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
}

func TestRangeLimit(t *testing.T) {
	in := "a FETCH " + strings.Repeat("1,", 20) + "1 FLAGS\r\n"
	r := newTestReader(in, ReaderOptions{MaxRanges: 10})
	var pe *ParseError
	if _, err := r.ReadCommand(); !errors.As(err, &pe) || !strings.Contains(pe.Msg, "too many") {
		t.Fatalf("got %v", err)
	}
}

func TestEOF(t *testing.T) {
	r := newTestReader("", ReaderOptions{})
	if _, err := r.ReadCommand(); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
	r = newTestReader("a NOOP", ReaderOptions{})
	if _, err := r.ReadCommand(); err != io.ErrUnexpectedEOF {
		t.Fatalf("partial: %v", err)
	}
	r = newTestReader("a LOGIN {5}\r\nab", ReaderOptions{})
	if _, err := r.ReadCommand(); err != io.ErrUnexpectedEOF {
		t.Fatalf("partial literal: %v", err)
	}
}

func TestReadLine(t *testing.T) {
	r := newTestReader("dGVzdA==\r\nDONE\nxx", ReaderOptions{MaxLine: 20})
	for _, want := range []string{"dGVzdA==", "DONE"} {
		b, err := r.ReadLine()
		if err != nil || string(b) != want {
			t.Fatalf("got %q %v want %q", b, err, want)
		}
	}
	if _, err := r.ReadLine(); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v", err)
	}
	r = newTestReader(strings.Repeat("x", 30)+"\r\n", ReaderOptions{MaxLine: 20})
	var pe *ParseError
	if _, err := r.ReadLine(); !errors.As(err, &pe) || !pe.Fatal {
		t.Fatalf("got %v", err)
	}
}

// TestNoBlockingPeek makes sure the parser never asks for bytes beyond the
// end of the command: a client sends one command and waits.
func TestNoBlockingPeek(t *testing.T) {
	for _, in := range []string{"a SEARCH ALL\r\n", "a SEARCH 1\r\n", "a NOOP\r\n", "a FETCH 1 FLAGS\r\n",
		"a SELECT INBOX\r\n", "a LIST \"\" *\r\n", "a AUTHENTICATE PLAIN\r\n", "a ENABLE X\r\n",
		"a APPEND INBOX {1+}\r\nx\r\n", "a STORE 1 +FLAGS x\r\n"} {
		pr, pw := io.Pipe()
		go func() { pw.Write([]byte(in)) }()
		r := NewReader(bufio.NewReader(pr), ReaderOptions{})
		done := make(chan error, 1)
		go func() { _, err := r.ReadCommand(); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("%q: ReadCommand blocked waiting for more input", in)
		}
		pw.Close()
	}
}

func TestHugeLiteralSizeIsFatal(t *testing.T) {
	r := newTestReader("a APPEND INBOX {99999999999999999999+}\r\nb NOOP\r\n", ReaderOptions{})
	_, err := r.ReadCommand()
	var pe *ParseError
	if !errors.As(err, &pe) || !pe.Fatal || !pe.TooBig {
		t.Fatalf("got %v", err)
	}
	r = newTestReader("a APPEND INBOX {99999999999999999999}\r\nb NOOP\r\n", ReaderOptions{})
	_, err = r.ReadCommand()
	if !errors.As(err, &pe) || pe.Fatal || !pe.TooBig {
		t.Fatalf("got %v", err)
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Tag != "b" {
		t.Fatalf("got %+v %v", cmd, err)
	}
}

func TestParseMultiSearch(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want *MultiSearchArgs
	}{
		{"a ESEARCH ALL\r\n", &MultiSearchArgs{Search: &SearchArgs{Key: &SearchKey{Op: SearchAll}}}},
		{"a ESEARCH IN (personal subtree-one Work mailboxes (INBOX \"A B\") SELECTED) RETURN (COUNT) BODY x\r\n", &MultiSearchArgs{
			Sources: []SearchSource{{Filter: "personal"}, {Filter: "subtree-one", Mailboxes: []string{"Work"}},
				{Filter: "mailboxes", Mailboxes: []string{"INBOX", "A B"}}, {Filter: "selected"}},
			Search: &SearchArgs{Return: []string{"COUNT"}, HasReturn: true, Key: &SearchKey{Op: SearchBody, Str: "x"}}}},
	} {
		cmd, err := NewReader(bufio.NewReader(strings.NewReader(tt.in)), ReaderOptions{}).ReadCommand()
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if cmd.Name != "ESEARCH" || !reflect.DeepEqual(cmd.Args, tt.want) {
			t.Errorf("%q: got %+v", tt.in, cmd.Args)
		}
	}
	for _, in := range []string{"a ESEARCH IN (everything) ALL\r\n", "a ESEARCH IN () ALL\r\n", "a ESEARCH IN (subtree) ALL\r\n"} {
		if _, err := NewReader(bufio.NewReader(strings.NewReader(in)), ReaderOptions{}).ReadCommand(); err == nil {
			t.Errorf("%q: parsed", in)
		}
	}
}
