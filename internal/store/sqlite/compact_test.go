package sqlite

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// compactMsg is a message of about 6 KiB (kept in mail.db) with a word
// of its own for SEARCH.
func compactMsg(i int) []byte {
	// Random punctuation on each line: the body and its text do not
	// compress, so they take the pages the test frees, and add no words
	// to the vocabulary (which keeps every word it saw).
	const symbols = "!#$%&()*+,-./:;<=>?@[]^_{|}~"
	r := rand.New(rand.NewPCG(uint64(i), 1))
	var filler strings.Builder
	for range 250 {
		fmt.Fprintf(&filler, "line %d of filler text ", i)
		for range 24 {
			filler.WriteByte(symbols[r.IntN(len(symbols))])
		}
		filler.WriteString("\r\n")
	}
	return fmt.Appendf(nil, "From: a@example.org\r\nSubject: compact %d\r\n\r\nmarker%05dx\r\n%s", i, i, filler.String())
}

// compactState is what compaction must not change: UIDs, modseqs and
// flags, every body, and the answers of two searches.
type compactState struct {
	msgs   []store.Message
	bodies map[uint32]string
	search store.TextResult
}

func readCompactState(t *testing.T, a store.Account, box int64, uids []uint32) compactState {
	t.Helper()
	ctx := context.Background()
	st := compactState{bodies: map[uint32]string{}}
	err := a.Fetch(ctx, box, uids, store.WantFlags|store.WantSize, func(m *store.Message) error {
		st.msgs = append(st.msgs, store.Message{UID: m.UID, ModSeq: m.ModSeq, Flags: m.Flags, Size: m.Size})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.msgs {
		b, err := a.OpenBody(ctx, box, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		st.bodies[m.UID] = string(data)
	}
	st.search, err = a.SearchText(ctx, box, []store.TextQuery{
		{Fields: store.TextBody, Needle: []byte("marker00290x")},
		{Fields: store.TextBody, Needle: []byte("filler text")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func pragmaInt(t *testing.T, u *userDB, pragma string) int64 {
	t.Helper()
	var n int64
	if err := u.db.QueryRow(`PRAGMA ` + pragma).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCompact: after most of a user's mail is expunged (and its text
// purged from the index), Compact shrinks mail.db, leaves no free page,
// and every remaining message reads back as before.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openInline(t, dir, nil)
	defer s.Close()
	a := newUser(t, s)
	var all, keep, drop []uint32
	for i := 0; i < 300; i += 50 {
		var msgs []store.NewMessage
		for j := i; j < i+50; j++ {
			msgs = append(msgs, store.NewMessage{Body: compactMsg(j)})
		}
		res, err := a.Append(ctx, "INBOX", msgs)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, res.UIDs...)
	}
	for i, uid := range all {
		if i%10 == 0 {
			keep = append(keep, uid)
		} else {
			drop = append(drop, uid)
		}
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.StoreFlags(ctx, inbox.ID, keep[:len(keep)/2], store.FlagsAdd, []string{`\Seen`, "$Compacted"}, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, inbox.ID, drop, false); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil { // purges the expunged text
		t.Fatal(err)
	}

	// The scan connections (a Fetch of more than one batch) read the
	// checkpointed file through a memory map made before the file shrinks;
	// they must not read past its new end (a SIGBUS would end the tests).
	u := s.users[1]
	if _, err := u.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	before := readCompactState(t, a, inbox.ID, all)
	if mapped, seen := mailDBMapped(t, u); seen && !mapped {
		t.Fatal("the scan before compaction did not map mail.db")
	}
	if len(before.msgs) != len(keep) || len(before.search.Hits[0]) != 1 || len(before.search.Hits[1]) != len(keep) || len(before.search.Pending) != 0 {
		t.Fatalf("before compaction: %d messages, search %+v", len(before.msgs), before.search)
	}
	version := pragmaInt(t, u, "user_version")
	pages := pragmaInt(t, u, "page_count")
	if free := pragmaInt(t, u, "freelist_count"); free < 100 {
		t.Fatalf("only %d free pages before compaction", free)
	}

	res, err := s.Compact(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	size, err := u.dbBytes()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mail.db and log: %d -> %d bytes", res.Before, res.After)
	if res.User != "u" || res.After != size || res.After*2 > res.Before {
		t.Fatalf("Compact = %+v (now %d bytes); want at least halved", res, size)
	}
	if free := pragmaInt(t, u, "freelist_count"); free != 0 {
		t.Fatalf("%d free pages after compaction", free)
	}
	if n := pragmaInt(t, u, "page_count"); n*2 > pages {
		t.Fatalf("%d pages after compaction, %d before; want at most half", n, pages)
	}
	if v := pragmaInt(t, u, "user_version"); v != version {
		t.Fatalf("user_version %d after compaction, was %d", v, version)
	}
	if after := readCompactState(t, a, inbox.ID, all); !reflect.DeepEqual(after, before) {
		t.Fatalf("messages changed by compaction:\nbefore %+v\nafter  %+v", before.msgs, after.msgs)
	}
	if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
		t.Fatalf("check after compaction: %q, %v", p, err)
	}
	// The account keeps working.
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: compactMsg(1000)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctx, "nobody"); err == nil {
		t.Fatal("Compact of an unknown user succeeded")
	}
}
