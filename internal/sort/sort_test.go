package sort

import (
	"cmp"
	"fmt"
	"github.com/tern-imap/tern/internal/store"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/message"
)

func TestBaseSubject(t *testing.T) {
	cases := []struct {
		in    string
		base  string
		reply bool
	}{
		{"a", "a", false},
		{"", "", false},
		{"   ", "", false},
		{"Re: hello", "hello", true},
		{"RE: re: Fwd: hello", "hello", true},
		{"Re:hello", "hello", true},
		{"Re : hello", "hello", true},
		{"Re[2]: hello", "hello", true},
		{"Re [2] : hello", "hello", true},
		{"fw: hello", "hello", true},
		{"FWD: hello", "hello", true},
		{"hello (fwd)", "hello", true},
		{"hello (FWD) (fwd)  ", "hello", true},
		{"[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", true},
		{"Re: [FWD: c]", "c", true},
		{"[xyz]", "[xyz]", false},
		{"[xyz] hello", "hello", false},
		{"[xyz]  ", "[xyz]", false},
		{"[a][b] hello", "hello", false},
		{"[a] [b]", "[b]", false},
		{"b (a)", "b (a)", false},
		{"Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x", false},
		{"re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon", true},
		{"[fwd: hello]", "hello", true},
		{"hello\t \r\n world", "hello world", false},
		{"Rex: hello", "Rex: hello", false},
		{"Fwdx: hello", "Fwdx: hello", false},
		{"Re: ", "", true},
		{"[Re: x]", "[Re: x]", false},
		{"Re: Re: [list] Re: topic", "topic", true},
	}
	for _, c := range cases {
		base, reply := BaseSubject(c.in)
		if base != c.base || reply != c.reply {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", c.in, base, reply, c.base, c.reply)
		}
	}
}

func TestSubjectKeyDecodes(t *testing.T) {
	for in, want := range map[string]string{
		"=?iso-8859-1?q?RE:_C?=":    "C",
		"=?us-ascii?b?UmU6IGM=?=":   "C",
		"Re: =?utf-8?q?b?=":         "B",
		"=?iso-8859-1?q?_?=":        "",
		"=?utf-8?q?=C3=A9t=C3=A9?=": "éTé",
	} {
		if got, _ := SubjectKey(in); got != want {
			t.Errorf("SubjectKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// env builds an IMAP ENVELOPE the way delivery stores it, by parsing a
// real header.
func env(t *testing.T, header string) []byte {
	t.Helper()
	raw := strings.ReplaceAll(header, "\n", "\r\n") + "\r\nbody\r\n"
	info, err := message.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return info.Envelope
}

func sortNums(items []Item, crit []Criterion) string {
	var parts []string
	for _, i := range Sort(items, crit) {
		parts = append(parts, fmt.Sprint(i+1))
	}
	return strings.Join(parts, " ")
}

var base = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

func TestSortAddresses(t *testing.T) {
	items := []Item{
		{Envelope: env(t, "From: user2@domain2.org\nTo: foo bar <user2@domain2.org>\nCc: user2@domain2.org (foo bar)\n"), InternalDate: base},
		{Envelope: env(t, "From: user2@domain1.org\nTo: user2@domain1.org\nCc: user2: blah@domain1.org;\n"), InternalDate: base.Add(time.Hour)},
		{Envelope: env(t, "From: user1@domain1.org\nTo: user1@domain1.org\nCc: user1@domain1.org\n"), InternalDate: base.Add(2 * time.Hour)},
	}
	for _, k := range []Key{From, To, Cc} {
		if got := sortNums(items, []Criterion{{Key: k}}); got != "3 1 2" {
			t.Errorf("key %d: %s", k, got)
		}
		if got := sortNums(items, []Criterion{{Key: k, Reverse: true}}); got != "1 2 3" {
			t.Errorf("reverse key %d: %s", k, got)
		}
		if got := sortNums(items, []Criterion{{Key: k}, {Key: Arrival, Reverse: true}}); got != "3 2 1" {
			t.Errorf("key %d reverse arrival: %s", k, got)
		}
	}
}

func TestSortDisplay(t *testing.T) {
	tos := []string{"foo bar <a@b.c>", "b@c.d", "d", "=?iso-8859-1?q?foo_aar?= <e@f.g>", "=?iso-8859-1?q?foo_car?= <f@g.h>",
		"a: xx@xx.org, yy@yy.org;", "z: aa@aa.org, bb@bb.org;", "empty:;"}
	var items []Item
	for _, to := range tos {
		items = append(items, Item{Envelope: env(t, "From: "+to+"\nTo: "+to+"\n")})
	}
	if got := sortNums(items, []Criterion{{Key: DisplayTo}}); got != "6 2 3 8 4 1 5 7" {
		t.Errorf("DISPLAYTO: %s", got)
	}
	if got := sortNums(items, []Criterion{{Key: DisplayTo, Reverse: true}}); got != "7 5 1 4 8 3 2 6" {
		t.Errorf("REVERSE DISPLAYTO: %s", got)
	}
	if got := sortNums(items[:5], []Criterion{{Key: DisplayFrom}}); got != "2 3 4 1 5" {
		t.Errorf("DISPLAYFROM: %s", got)
	}
}

func TestSortSubjectDateSize(t *testing.T) {
	subjects := []string{"a", "C", "b", "_", "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b (a)", "Re: [FWD: c]", "[xyz]", "",
		"=?iso-8859-1?q?_?=", "Re: =?utf-8?q?b?=", "=?iso-8859-1?q?RE:_C?=", "=?us-ascii?b?UmU6IGM=?=", "Ad: Re: Ad: Re: Ad: x",
		"re: [fwd: [fwd: re: [fwd: babylon]]]"}
	var items []Item
	for i, s := range subjects {
		h := "From: a@b\n"
		if s != "" {
			h += "Subject: " + s + "\n"
		}
		items = append(items, Item{Envelope: env(t, h), Size: int64(100 - i%4), InternalDate: base})
	}
	if got := sortNums(items, []Criterion{{Key: Subject}}); got != "9 10 1 14 3 5 11 6 15 2 7 12 13 8 4" {
		t.Errorf("SUBJECT: %s", got)
	}
	if got := sortNums(items, []Criterion{{Key: Subject, Reverse: true}}); got != "4 8 2 7 12 13 15 6 3 5 11 14 1 9 10" {
		t.Errorf("REVERSE SUBJECT: %s", got)
	}
	// DATE uses the sent date, else the internal date, compared in UTC.
	est := time.FixedZone("EST", -5*3600)
	dated := []Item{
		{SentDate: base.In(est), InternalDate: base.Add(9 * time.Hour)},
		{InternalDate: base.Add(-time.Hour)},
		{SentDate: base.Add(-2 * time.Hour), InternalDate: base.Add(5 * time.Hour)},
		{SentDate: base, InternalDate: base, Size: 5},
	}
	if got := sortNums(dated, []Criterion{{Key: Date}}); got != "3 2 1 4" {
		t.Errorf("DATE: %s", got)
	}
	if got := sortNums(dated, []Criterion{{Key: Date}, {Key: Size, Reverse: true}}); got != "3 2 4 1" {
		t.Errorf("DATE REVERSE SIZE: %s", got)
	}
	if got := sortNums(dated, []Criterion{{Key: Arrival}}); got != "2 4 3 1" {
		t.Errorf("ARRIVAL: %s", got)
	}
}

func threadString(th []*Thread) string {
	return string(AppendThreads(nil, th, func(i int) uint32 { return uint32(i + 1) }))
}

type tmsg struct {
	id, irt, refs, subject string
	date                   time.Time
}

func threadItems(t *testing.T, ms []tmsg) []Item {
	var items []Item
	for _, m := range ms {
		h := "From: a@b\n"
		if m.subject != "" {
			h += "Subject: " + m.subject + "\n"
		}
		it := Item{Envelope: env(t, h), InternalDate: m.date, MessageID: m.id}
		if m.irt != "" {
			it.InReplyTo = strings.Fields(m.irt)
		}
		if m.refs != "" {
			it.References = strings.Fields(m.refs)
		}
		items = append(items, it)
	}
	return items
}

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func TestReferences(t *testing.T) {
	cases := []struct {
		name string
		msgs []tmsg
		want string
	}{
		{"loop broken by own references", []tmsg{
			{id: "a@b", date: at(7200)},
			{id: "b@b", refs: "a@b c@b", date: at(0)},
			{id: "c@b", refs: "b@b", date: at(3602)},
		}, "(3 2)(1)"},
		{"after expunge", []tmsg{
			{id: "b@b", refs: "a@b c@b", date: at(0)},
			{id: "c@b", refs: "b@b", date: at(3602)},
		}, "(2 1)"},
		{"duplicate ids", []tmsg{{id: "a@b"}, {id: "a@b"}}, "(1)(2)"},
		{"duplicate ids, same subject", []tmsg{{id: "a@b", subject: "foo", date: at(0)}, {id: "a@b", subject: "Re: foo", date: at(1)}}, "(1 2)"},
		{"dummy promoted, subject merge", []tmsg{{id: "a@b", subject: "foo", date: at(0)}, {id: "b@b", refs: "c@b", subject: "Re: foo", date: at(1)}}, "(1 2)"},
		{"in-reply-to", []tmsg{
			{id: "1@b", date: at(7200)}, {id: "2@b", irt: "1@b"}, {id: "3@b", irt: "1@b"}, {id: "4@b", irt: "2@b"},
		}, "(1 (2 4)(3))"},
		{"dummy roots", []tmsg{{id: "3@b", irt: "1@b"}, {id: "4@b", irt: "2@b"}}, "(1)(2)"},
		{"dummy root with two children", []tmsg{{id: "3@b", irt: "1@b"}, {id: "4@b", irt: "2@b"}, {id: "5@b", irt: "2@b"}}, "(1)((2)(3))"},
		{"no ids, common reference", []tmsg{{refs: "a@b", date: at(0)}, {refs: "a@b", date: at(1)}}, "((1)(2))"},
		{"duplicate reply", []tmsg{
			{id: "a@b"}, {id: "b@b", refs: "a@b"}, {id: "c@b", refs: "b@b"}, {id: "b@b", refs: "a@b"},
		}, "(1 (2 3)(4))"},
		{"duplicate reply after expunge", []tmsg{{id: "a@b"}, {id: "c@b", refs: "b@b"}, {id: "b@b", refs: "a@b"}}, "(1 3 2)"},
		// Subject gathering: neither is a reply: both under a new dummy.
		{"same subject, no replies", []tmsg{{id: "x@y", subject: "topic", date: at(5)}, {id: "z@y", subject: "topic", date: at(1)}}, "((2)(1))"},
		// Children are sorted by date, the roots by their first message.
		{"sorted by date", []tmsg{
			{id: "r@x", date: at(50)}, {id: "c1@x", irt: "r@x", date: at(90)}, {id: "c2@x", irt: "r@x", date: at(60)},
			{id: "s@x", date: at(10)},
		}, "(4)(1 (3)(2))"},
	}
	for _, c := range cases {
		got := threadString(References(threadItems(t, c.msgs)))
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

// TestReferencesRFCExample is the shape of the example in RFC 5256 §4:
// (166)(167)(168)(169)(170)(171)(172)(173)(174)(175)(176)...(3 6 (4 23)(44 7 96)).
func TestReferencesNested(t *testing.T) {
	ms := []tmsg{
		{id: "3", date: at(1)},
		{id: "4", refs: "3 6", date: at(3)},
		{id: "6", refs: "3", date: at(2)},
		{id: "7", refs: "3 6 44", date: at(6)},
		{id: "23", refs: "3 6 4", date: at(4)},
		{id: "44", refs: "3 6", date: at(5)},
		{id: "96", refs: "3 6 44 7", date: at(7)},
	}
	got := string(AppendThreads(nil, References(threadItems(t, ms)), func(i int) uint32 {
		return []uint32{3, 4, 6, 7, 23, 44, 96}[i]
	}))
	if want := "(3 6 (4 23)(44 7 96))"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestOrderedSubject(t *testing.T) {
	subjects := []string{"a", "C", "b", "_", "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b (a)", "Re: [FWD: c]", "[xyz]", "",
		"=?iso-8859-1?q?_?=", "Re: =?utf-8?q?b?=", "=?iso-8859-1?q?RE:_C?=", "=?us-ascii?b?UmU6IGM=?=", "Ad: Re: Ad: Re: Ad: x",
		"re: [fwd: [fwd: re: [fwd: babylon]]]"}
	var ms []tmsg
	for _, s := range subjects {
		ms = append(ms, tmsg{subject: s, date: base})
	}
	if got, want := threadString(OrderedSubject(threadItems(t, ms))), "(1)(2 (7)(12)(13))(3 (5)(11))(4)(6)(8)(9 10)(14)(15)"; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	ms = []tmsg{
		{subject: "a", date: at(10)}, {subject: "b", date: at(9)}, {subject: "a", date: at(8)}, {subject: "b", date: at(7)},
		{subject: "a", date: at(30)}, {subject: "b", date: at(29)}, {subject: "a", date: at(28)}, {subject: "b", date: at(27)},
	}
	if got, want := threadString(OrderedSubject(threadItems(t, ms))), "(4 (2)(8)(6))(3 (1)(7)(5))"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestParseEnvelopeLiteral(t *testing.T) {
	e, err := parseEnvelope([]byte("(NIL {6}\r\nR\xc3\xa9: x ((\"N\\\"q\" NIL \"m\" \"h\")) NIL NIL NIL NIL NIL NIL NIL)"))
	if err != nil {
		t.Fatal(err)
	}
	if e.subject != "R\xc3\xa9: x" || e.from.name != `N"q` || e.from.mailbox != "m" || !e.hasFrom || e.hasTo {
		t.Fatalf("%+v", e)
	}
	if _, err := parseEnvelope([]byte("(NIL")); err == nil {
		t.Fatal("truncated envelope parsed")
	}
}

func BenchmarkSort10k(b *testing.B) {
	var items []Item
	for i := 0; i < 10000; i++ {
		h := fmt.Sprintf("From: \"User %d\" <user%d@example.org>\nTo: list@example.org\nSubject: Re: [list] topic %d\nMessage-ID: <%d@x>\nReferences: <%d@x>\n", i%97, i%89, i%113, i, i/3)
		info, err := message.Parse([]byte(strings.ReplaceAll(h, "\n", "\r\n") + "\r\nbody\r\n"))
		if err != nil {
			b.Fatal(err)
		}
		items = append(items, Item{Envelope: info.Envelope, InternalDate: base.Add(time.Duration(i%1000) * time.Second),
			MessageID: info.MessageID, References: info.References})
	}
	b.Run("subject,from", func(b *testing.B) {
		for b.Loop() {
			Sort(items, []Criterion{{Key: Subject}, {Key: DisplayFrom}})
		}
	})
	b.Run("arrival", func(b *testing.B) {
		for b.Loop() {
			Sort(items, []Criterion{{Key: Arrival}})
		}
	})
	b.Run("reverse-date", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Sort(items, []Criterion{{Key: Date, Reverse: true}})
		}
	})
	b.Run("references", func(b *testing.B) {
		for b.Loop() {
			References(items)
		}
	})
}

// TestSortByNumberAgrees: the compact path for one numeric criterion
// orders exactly as RFC 5256 asks (the key, reversed if asked, ties by
// sequence number ascending), checked against a plain stable sort, on
// keys with many ties.
func TestSortByNumberAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	items := make([]Item, 2000)
	for i := range items {
		items[i] = Item{InternalDate: base.Add(time.Duration(r.IntN(50)) * time.Second), Size: int64(r.IntN(40)), Relevancy: uint8(1 + r.IntN(5))}
		if r.IntN(3) > 0 {
			items[i].SentDate = base.Add(time.Duration(r.IntN(50)) * time.Minute)
		}
	}
	for _, key := range []Key{Arrival, Date, Size, Relevancy} {
		for _, rev := range []bool{false, true} {
			c := Criterion{Key: key, Reverse: rev}
			want := make([]int, len(items))
			for i := range want {
				want[i] = i
			}
			slices.SortStableFunc(want, func(a, b int) int {
				r := cmp.Compare(numberKey(&items[a], key), numberKey(&items[b], key))
				if rev {
					r = -r
				}
				return r
			})
			if got := Sort(items, []Criterion{c}); !slices.Equal(got, want) {
				t.Fatalf("%+v: order differs from the stable sort", c)
			}
		}
	}
}

// BenchmarkReferencesSubjectGroups: THREAD=REFERENCES of 50,000 messages
// with no references, in groups of ten that share a subject (not
// replies): step 5 of RFC 5256 joins each group under a dummy, 5,000
// times, and looked the group's place up by a scan of all the roots.
func BenchmarkReferencesSubjectGroups(b *testing.B) {
	var items []Item
	for i := range 50000 {
		h := fmt.Sprintf("From: a@example.org\nSubject: topic %d\nMessage-ID: <%d@x>\n", i/10, i)
		info, err := message.Parse([]byte(strings.ReplaceAll(h, "\n", "\r\n") + "\r\nbody\r\n"))
		if err != nil {
			b.Fatal(err)
		}
		items = append(items, Item{Envelope: info.Envelope, InternalDate: base.Add(time.Duration(i) * time.Second), MessageID: info.MessageID})
	}
	for b.Loop() {
		if n := len(References(items)); n != 5000 {
			b.Fatalf("%d threads, want 5000", n)
		}
	}
}

// BenchmarkReferences100k: THREAD=REFERENCES as the server runs it, on
// 100,000 messages whose ids and base subjects come cached (Keys,
// Subject), in threads of about three messages with a subject each.
func BenchmarkReferences100k(b *testing.B) {
	items := make([]Item, 100000)
	for i := range items {
		id := fmt.Sprintf("%d@x", i)
		var refs []string
		if i%3 != 0 {
			refs = []string{fmt.Sprintf("%d@x", i-i%3)}
		}
		items[i] = Item{InternalDate: base.Add(time.Duration(i) * time.Second),
			Keys:    ThreadKeysOf(id, nil, refs, nil),
			Subject: store.SubjectKey{Key: fmt.Sprintf("discussion of topic number %d", i/3), Reply: i%3 != 0, Known: true}}
	}
	b.ReportAllocs()
	for b.Loop() {
		References(items)
	}
}
