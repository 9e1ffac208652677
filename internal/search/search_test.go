package search

import (
	"io"

	"github.com/tern-imap/tern/internal/message"
	"testing"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// Key constructors keep the test tables readable.
func k(op imap.SearchKeyOp) *imap.SearchKey { return &imap.SearchKey{Op: op} }
func ks(op imap.SearchKeyOp, s string) *imap.SearchKey {
	return &imap.SearchKey{Op: op, Str: s}
}
func kn(op imap.SearchKeyOp, n uint64) *imap.SearchKey { return &imap.SearchKey{Op: op, Num: n} }
func kd(op imap.SearchKeyOp, y int, m time.Month, d int) *imap.SearchKey {
	return &imap.SearchKey{Op: op, Date: time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}
func kset(op imap.SearchKeyOp, ranges ...uint32) *imap.SearchKey {
	key := &imap.SearchKey{Op: op}
	for i := 0; i+1 < len(ranges); i += 2 {
		key.Set.Ranges = append(key.Set.Ranges, imap.NumRange{Start: ranges[i], Stop: ranges[i+1]})
	}
	return key
}
func and(ch ...*imap.SearchKey) *imap.SearchKey {
	return &imap.SearchKey{Op: imap.SearchAnd, Children: ch}
}
func or(a, b *imap.SearchKey) *imap.SearchKey {
	return &imap.SearchKey{Op: imap.SearchOr, Children: []*imap.SearchKey{a, b}}
}
func not(a *imap.SearchKey) *imap.SearchKey {
	return &imap.SearchKey{Op: imap.SearchNot, Children: []*imap.SearchKey{a}}
}

var (
	cet = time.FixedZone("CET", 3600)
	pst = time.FixedZone("PST", -8*3600)
)

// mailbox is a small mailbox of five messages with varied metadata.
func mailbox() []*Candidate {
	msgs := []*store.Message{
		{UID: 3, ModSeq: 10, Flags: []string{`\Seen`}, Size: 1000,
			// 23:30 on 1 Mar in PST is already 2 Mar in UTC.
			InternalDate: time.Date(2024, 3, 1, 23, 30, 0, 0, pst),
			SentDate:     time.Date(2024, 2, 28, 9, 0, 0, 0, cet),
			SaveDate:     time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC),
			EmailID:      "Mabc", ThreadID: "T1"},
		{UID: 7, ModSeq: 20, Flags: []string{`\Answered`, `\Flagged`, `$Forwarded`}, Size: 2000,
			// 00:30 on 2 Mar in CET is still 1 Mar in UTC.
			InternalDate: time.Date(2024, 3, 2, 0, 30, 0, 0, cet),
			SentDate:     time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
			EmailID:      "Mdef", ThreadID: "T1"},
		{UID: 8, ModSeq: 30, Flags: []string{`\Deleted`, `\Draft`, `\Seen`}, Size: 3000,
			InternalDate: time.Date(2024, 3, 3, 12, 0, 0, 0, time.UTC),
			// no Date: header: SENT* use the internal date
			SaveDate: time.Date(2024, 3, 3, 12, 0, 0, 0, time.UTC),
			EmailID:  "Mghi", ThreadID: "T2"},
		{UID: 12, ModSeq: 40, Flags: nil, Size: 4000,
			InternalDate: time.Date(2024, 3, 4, 12, 0, 0, 0, time.UTC),
			SentDate:     time.Date(2024, 3, 4, 8, 0, 0, 0, time.UTC),
			SaveDate:     time.Date(2024, 3, 6, 12, 0, 0, 0, time.UTC),
			EmailID:      "Mjkl", ThreadID: "T3"},
		{UID: 20, ModSeq: 50, Flags: []string{`\Seen`, `Junk`}, Size: 5000,
			InternalDate: time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC),
			SentDate:     time.Date(2024, 3, 5, 8, 0, 0, 0, time.UTC),
			SaveDate:     time.Date(2024, 3, 7, 12, 0, 0, 0, time.UTC),
			EmailID:      "Mmno", ThreadID: "T3"},
	}
	var cs []*Candidate
	for i, m := range msgs {
		cs = append(cs, &Candidate{
			SeqNum: uint32(i + 1),
			Msg:    m,
			Recent: m.UID >= 12, // the last two are \Recent
			MaxSeq: uint32(len(msgs)),
			MaxUID: 20,
			Saved:  []uint32{7, 12},
		})
	}
	return cs
}

// now is 2024-03-05 12:00:00 UTC.
var now = time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC)

// run returns the UIDs matching key.
func run(t *testing.T, cs []*Candidate, key *imap.SearchKey) []uint32 {
	t.Helper()
	var uids []uint32
	for _, c := range cs {
		ok, err := Match(key, c, now)
		if err != nil {
			t.Fatalf("Match(%v, uid %d): %v", key.Op, c.Msg.UID, err)
		}
		if ok {
			uids = append(uids, c.Msg.UID)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
	return uids
}

func eqUIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMatchMetadata(t *testing.T) {
	savedSeq := &imap.SearchKey{Op: imap.SearchSeqSet, Set: imap.NumSet{Saved: true}}
	savedUID := &imap.SearchKey{Op: imap.SearchUID, Set: imap.NumSet{Saved: true}}
	tests := []struct {
		name string
		key  *imap.SearchKey
		want []uint32
	}{
		{"ALL", k(imap.SearchAll), []uint32{3, 7, 8, 12, 20}},
		{"ANSWERED", k(imap.SearchAnswered), []uint32{7}},
		{"UNANSWERED", k(imap.SearchUnanswered), []uint32{3, 8, 12, 20}},
		{"DELETED", k(imap.SearchDeleted), []uint32{8}},
		{"UNDELETED", k(imap.SearchUndeleted), []uint32{3, 7, 12, 20}},
		{"DRAFT", k(imap.SearchDraft), []uint32{8}},
		{"UNDRAFT", k(imap.SearchUndraft), []uint32{3, 7, 12, 20}},
		{"FLAGGED", k(imap.SearchFlagged), []uint32{7}},
		{"UNFLAGGED", k(imap.SearchUnflagged), []uint32{3, 8, 12, 20}},
		{"SEEN", k(imap.SearchSeen), []uint32{3, 8, 20}},
		{"UNSEEN", k(imap.SearchUnseen), []uint32{7, 12}},
		{"RECENT", k(imap.SearchRecent), []uint32{12, 20}},
		{"NEW", k(imap.SearchNew), []uint32{12}},
		{"OLD", k(imap.SearchOld), []uint32{3, 7, 8}},
		{"KEYWORD case-insensitive", ks(imap.SearchKeyword, "$FORWARDED"), []uint32{7}},
		{"KEYWORD junk", ks(imap.SearchKeyword, "junk"), []uint32{20}},
		{"KEYWORD absent", ks(imap.SearchKeyword, "NonJunk"), nil},
		{"UNKEYWORD", ks(imap.SearchUnkeyword, "Junk"), []uint32{3, 7, 8, 12}},

		{"SEQSET 2,4:*", kset(imap.SearchSeqSet, 2, 2, 4, 0), []uint32{7, 12, 20}},
		{"SEQSET *", kset(imap.SearchSeqSet, 0, 0), []uint32{20}},
		{"SEQSET reversed 3:1", kset(imap.SearchSeqSet, 3, 1), []uint32{3, 7, 8}},
		{"SEQSET beyond", kset(imap.SearchSeqSet, 9, 9), nil},
		{"UID 7:12", kset(imap.SearchUID, 7, 12), []uint32{7, 8, 12}},
		{"UID 100:* is the last", kset(imap.SearchUID, 100, 0), []uint32{20}},
		{"UID 4:6 gap", kset(imap.SearchUID, 4, 6), nil},
		{"SEQSET $", savedSeq, []uint32{7, 12}},
		{"UID $", savedUID, []uint32{7, 12}},

		// Internal date day in its own zone: uid 3 is 1 Mar, uid 7 is 2 Mar.
		{"BEFORE 2-Mar", kd(imap.SearchBefore, 2024, 3, 2), []uint32{3}},
		{"ON 1-Mar", kd(imap.SearchOn, 2024, 3, 1), []uint32{3}},
		{"ON 2-Mar", kd(imap.SearchOn, 2024, 3, 2), []uint32{7}},
		{"SINCE 2-Mar", kd(imap.SearchSince, 2024, 3, 2), []uint32{7, 8, 12, 20}},
		{"SINCE 6-Mar", kd(imap.SearchSince, 2024, 3, 6), nil},
		// Sent date: uid 8 has none and falls back to its internal date.
		{"SENTBEFORE 1-Mar", kd(imap.SearchSentBefore, 2024, 3, 1), []uint32{3}},
		{"SENTON 3-Mar", kd(imap.SearchSentOn, 2024, 3, 3), []uint32{8}},
		{"SENTON 28-Feb", kd(imap.SearchSentOn, 2024, 2, 28), []uint32{3}},
		{"SENTSINCE 4-Mar", kd(imap.SearchSentSince, 2024, 3, 4), []uint32{12, 20}},
		// Save date: uid 7 has none and never matches.
		{"SAVEDBEFORE 6-Mar", kd(imap.SearchSaveDateBefore, 2024, 3, 6), []uint32{3, 8}},
		{"SAVEDON 6-Mar", kd(imap.SearchSaveDateOn, 2024, 3, 6), []uint32{12}},
		{"SAVEDSINCE 6-Mar", kd(imap.SearchSaveDateSince, 2024, 3, 6), []uint32{12, 20}},
		{"SAVEDATESUPPORTED", k(imap.SearchSaveDateSupported), []uint32{3, 7, 8, 12, 20}},

		{"LARGER 2000", kn(imap.SearchLarger, 2000), []uint32{8, 12, 20}},
		{"SMALLER 2000", kn(imap.SearchSmaller, 2000), []uint32{3}},
		{"SMALLER 1", kn(imap.SearchSmaller, 1), nil},
		{"MODSEQ 30", kn(imap.SearchModSeq, 30), []uint32{8, 12, 20}},
		{"MODSEQ 1", kn(imap.SearchModSeq, 1), []uint32{3, 7, 8, 12, 20}},
		// now is 5 Mar 12:00 UTC: uid 12 is exactly one day old.
		{"OLDER 86400", kn(imap.SearchOlder, 86400), []uint32{3, 7, 8}},
		{"YOUNGER 86400", kn(imap.SearchYounger, 86400), []uint32{12, 20}},
		{"YOUNGER 1", kn(imap.SearchYounger, 1), []uint32{20}},
		{"OLDER huge", kn(imap.SearchOlder, 1<<63), nil},
		{"EMAILID", ks(imap.SearchEmailID, "Mghi"), []uint32{8}},
		{"EMAILID is exact", ks(imap.SearchEmailID, "mghi"), nil},
		{"THREADID", ks(imap.SearchThreadID, "T3"), []uint32{12, 20}},

		{"AND", and(k(imap.SearchSeen), kn(imap.SearchLarger, 1500)), []uint32{8, 20}},
		{"empty AND", and(), []uint32{3, 7, 8, 12, 20}},
		{"OR", or(k(imap.SearchFlagged), k(imap.SearchDeleted)), []uint32{7, 8}},
		{"NOT", not(k(imap.SearchSeen)), []uint32{7, 12}},
		{"NOT NOT", not(not(k(imap.SearchSeen))), []uint32{3, 8, 20}},
		{"nested", or(and(k(imap.SearchSeen), not(k(imap.SearchDeleted))),
			and(k(imap.SearchRecent), kset(imap.SearchUID, 12, 12))), []uint32{3, 12, 20}},
		{"OR of NOTs", or(not(k(imap.SearchSeen)), not(k(imap.SearchUndeleted))), []uint32{7, 8, 12}},
		{"OLDER NOT YOUNGER complement", and(kn(imap.SearchOlder, 3600), kn(imap.SearchYounger, 3600)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, mailbox(), tt.key)
			if !eqUIDs(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchErrors(t *testing.T) {
	c := mailbox()[0]
	if _, err := Match(k(imap.SearchAll), &Candidate{}, now); err == nil {
		t.Error("Match without Msg: want error")
	}
	if _, err := Match(k("XBOGUS"), c, now); err == nil {
		t.Error("unknown key: want error")
	}
	if _, err := Match(ks(imap.SearchBody, "x"), c, now); err == nil {
		t.Error("content key without Open: want error")
	}
	// A failing metadata key under AND spares the content key entirely.
	ok, err := Match(and(ks(imap.SearchBody, "x"), k(imap.SearchDeleted)), c, now)
	if err != nil || ok {
		t.Errorf("AND short-circuit: got %v, %v; want false, nil", ok, err)
	}
	ok, err = Match(or(ks(imap.SearchBody, "x"), k(imap.SearchSeen)), c, now)
	if err != nil || !ok {
		t.Errorf("OR short-circuit: got %v, %v; want true, nil", ok, err)
	}
}

func TestWant(t *testing.T) {
	tests := []struct {
		key       *imap.SearchKey
		want      store.Want
		needsBody bool
	}{
		{k(imap.SearchAll), 0, false},
		{kset(imap.SearchUID, 1, 5), 0, false},
		{k(imap.SearchRecent), 0, false},
		{k(imap.SearchNew), store.WantFlags, false},
		{k(imap.SearchSeen), store.WantFlags, false},
		{kn(imap.SearchModSeq, 5), store.WantFlags, false},
		{kd(imap.SearchSentOn, 2024, 1, 1), store.WantDates, false},
		{kn(imap.SearchYounger, 5), store.WantDates, false},
		{kn(imap.SearchLarger, 5), store.WantSize, false},
		{ks(imap.SearchThreadID, "T"), store.WantIDs, false},
		{ks(imap.SearchSubject, "x"), store.WantHeader, true},
		{not(and(k(imap.SearchSeen), or(kn(imap.SearchSmaller, 3), ks(imap.SearchText, "x")))),
			store.WantFlags | store.WantSize | store.WantHeader, true},
	}
	for _, tt := range tests {
		if got := Want(tt.key); got != tt.want {
			t.Errorf("Want(%v) = %b, want %b", tt.key.Op, got, tt.want)
		}
		if got := NeedsBody(tt.key); got != tt.needsBody {
			t.Errorf("NeedsBody(%v) = %v, want %v", tt.key.Op, got, tt.needsBody)
		}
	}
	if !UsesModSeq(or(k(imap.SearchSeen), not(kn(imap.SearchModSeq, 3)))) || UsesModSeq(k(imap.SearchSeen)) {
		t.Error("UsesModSeq wrong")
	}
	saved := &imap.SearchKey{Op: imap.SearchUID, Set: imap.NumSet{Saved: true}}
	if !UsesSaved(and(k(imap.SearchSeen), saved)) || UsesSaved(kset(imap.SearchUID, 1, 2)) {
		t.Error("UsesSaved wrong")
	}
}

func TestFold(t *testing.T) {
	tests := []struct{ a, b string }{
		{"Hello", "hELLO"},
		{"Grüße", "GRÜẞE"},     // capital sharp s
		{"ΣΊΣΥΦΟΣ", "σίσυφος"}, // final sigma folds with sigma
		{"Kelvin \u212A", "kelvin k"},
		{"ſ", "S"}, // long s
	}
	for _, tt := range tests {
		a := string(foldAppendString(nil, tt.a))
		b := string(foldAppend(nil, []byte(tt.b)))
		if a != b {
			t.Errorf("fold(%q)=%q, fold(%q)=%q", tt.a, a, tt.b, b)
		}
	}
	// Invalid UTF-8 is kept byte for byte.
	if got := string(foldAppendString(nil, "A\xffB")); got != "a\xffb" {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

func BenchmarkMatchFlags(b *testing.B) {
	cs := mailbox()
	key := and(or(k(imap.SearchSeen), k(imap.SearchFlagged)), not(k(imap.SearchDeleted)),
		ks(imap.SearchKeyword, "junk"), kset(imap.SearchUID, 1, 0), kn(imap.SearchLarger, 10))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Match(key, cs[i%len(cs)], now); err != nil {
			b.Fatal(err)
		}
	}
}

// Header keys are answered from the header the store kept at delivery,
// without opening the message.
func TestHeaderKeysUseStoredHeader(t *testing.T) {
	c := &Candidate{
		Msg: &store.Message{UID: 1, Header: []byte("From: Alice <alice@example.org>\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n\r\n")},
		Open: func() (io.ReaderAt, *message.Part, error) {
			t.Fatal("message opened for a header key")
			return nil, nil, nil
		},
	}
	for _, key := range []*imap.SearchKey{ks(imap.SearchFrom, "alice@example"), ks(imap.SearchSubject, "CAFÉ")} {
		ok, err := Match(key, c, time.Now())
		if err != nil || !ok {
			t.Fatalf("Match(%v) = %v, %v", key.Op, ok, err)
		}
		c.Release()
	}
}
