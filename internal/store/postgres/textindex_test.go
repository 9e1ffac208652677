package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/pgtest"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store"
)

// pendingGone polls SearchText until no message of the mailbox is
// pending (the background indexer got to them) or fails after a generous
// deadline (this is not a timing assertion).
func pendingGone(t *testing.T, a store.Account, id int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := a.SearchText(context.Background(), id, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("x")}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still pending after 30 s: %v", res.Pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTextIndexerBackground: two nodes with background indexers share
// the queue: every message gets its text once, a body delivered to two
// users is extracted once, and the text goes with the body's last
// message; a body expunged before its turn leaves nothing queued.
func TestTextIndexerBackground(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	var nodes []*Store
	for range 2 {
		s, err := Open(ctx, url, Options{Logger: quietLogger(), TextIndexer: true, textIndexDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		nodes = append(nodes, s)
	}
	for _, u := range []string{"ann", "bo"} {
		if err := nodes[0].CreateUser(ctx, u, "h"); err != nil {
			t.Fatal(err)
		}
	}
	ann, err := nodes[0].Account(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	bo, err := nodes[1].Account(ctx, "bo")
	if err != nil {
		t.Fatal(err)
	}
	defer bo.Close()
	shared := []byte("Subject: to both\r\n\r\nthe shared zebra\r\n")
	var msgs []store.NewMessage
	for i := range 150 {
		msgs = append(msgs, store.NewMessage{Body: fmt.Appendf(nil, "Subject: m%d\r\n\r\nbody %d %s\r\n", i, i, []string{"apple", "pear"}[i%2])})
	}
	if _, err := ann.Append(ctx, "INBOX", append(msgs, store.NewMessage{Body: shared})); err != nil {
		t.Fatal(err)
	}
	if _, err := bo.Append(ctx, "INBOX", []store.NewMessage{{Body: shared}}); err != nil {
		t.Fatal(err)
	}
	annBox, _ := ann.Mailbox(ctx, "INBOX")
	boBox, _ := bo.Mailbox(ctx, "INBOX")
	pendingGone(t, ann, annBox.ID)
	pendingGone(t, bo, boBox.ID)
	if n := countRows(t, nodes[0], "body_text"); n != 151 {
		t.Fatalf("%d texts for 151 distinct bodies", n)
	}
	res, err := ann.SearchText(ctx, annBox.ID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("pear")}, {Fields: store.TextBody, Needle: []byte("zebra")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hits[0]) != 75 || len(res.Covered) != 151 || !slices.Equal(res.Hits[1], []uint32{151}) {
		t.Fatalf("pear: %d hits, covered %d, zebra %v", len(res.Hits[0]), len(res.Covered), res.Hits[1])
	}
	// ann's copy of the shared body goes, bo's keeps its text.
	if _, err := ann.Expunge(ctx, annBox.ID, []uint32{151}, false); err != nil {
		t.Fatal(err)
	}
	if res, err = bo.SearchText(ctx, boBox.ID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("zebra")}}); err != nil || !slices.Equal(res.Hits[0], []uint32{1}) || len(res.Pending) != 0 {
		t.Fatalf("bo's zebra after ann's expunge: %+v %v", res, err)
	}
	if _, err := bo.Expunge(ctx, boBox.ID, []uint32{1}, false); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, nodes[0], "body_text"); n != 151 {
		t.Fatalf("%d texts after the shared body's last message went, want 151 (the body pending deletion keeps its text)", n)
	}
	if n, err := nodes[0].CollectBlobs(ctx, 0); err != nil || n != 1 {
		t.Fatalf("collector deleted %d bodies (%v), want 1", n, err)
	}
	if n := countRows(t, nodes[0], "body_text"); n != 150 {
		t.Fatalf("%d texts after the collector took the unused body, want 150", n)
	}
	if n := countRows(t, nodes[0], "text_queue"); n != 0 {
		t.Fatalf("%d bodies left queued", n)
	}
}

// TestTextBytesExact: the stored text is the extracted text byte for
// byte, NUL separators and bytes that are not UTF-8 included, so an
// indexed answer equals bytes.Contains on search.Extract's text for
// needles cut from it at random.
func TestTextBytesExact(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "é", "\xff", "\xc3", " ", "\r\n", "ß", "€", "\x01"}
	word := func() string {
		var w string
		for range 1 + rng.IntN(6) {
			w += alphabet[rng.IntN(len(alphabet))]
		}
		return w
	}
	var bodies [][]byte
	for i := range 40 {
		var msg []byte
		if i%3 == 0 { // two text parts: NUL between them in the text
			msg = fmt.Appendf(nil, "Subject: %s\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n%s\r\n--XX\r\nContent-Type: text/plain\r\n\r\n%s\r\n--XX--\r\n",
				word(), word()+word(), word()+word())
		} else {
			msg = fmt.Appendf(nil, "From: %s <x@example.org>\r\nSubject: %s\r\n\r\n%s %s %s\r\n", word(), word(), word(), word(), word())
		}
		bodies = append(bodies, msg)
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	docs := make([]search.Doc, len(bodies))
	for i, b := range bodies {
		info, err := message.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		root, err := message.DecodeParts(info.Parts)
		if err != nil {
			t.Fatal(err)
		}
		if docs[i], err = search.Extract(bytes.NewReader(b), root, nil); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := a.Mailbox(ctx, "INBOX")
	var qs []store.TextQuery
	for range 60 {
		d := docs[rng.IntN(len(docs))]
		text := [][]byte{d.Header, d.Body, d.MIME}[rng.IntN(3)]
		if len(text) == 0 {
			continue
		}
		i := rng.IntN(len(text))
		j := min(len(text), i+1+rng.IntN(4))
		if bytes.IndexByte(text[i:j], 0) >= 0 {
			continue // a needle never holds NUL
		}
		qs = append(qs, store.TextQuery{Fields: store.TextHeader | store.TextBody | store.TextMIME, Needle: bytes.Clone(text[i:j])})
	}
	qs = append(qs, store.TextQuery{Fields: store.TextBody, Needle: []byte("\xff")}, store.TextQuery{Fields: store.TextBody, Needle: []byte("a b")})
	// Needles across a part boundary, the NUL replaced by what a stored
	// text might have put there instead: none may match.
	for _, d := range docs {
		if k := bytes.IndexByte(d.Body, 0); k >= 0 {
			for _, sep := range []string{" ", "\n", "\x01", "\ufffd", ""} {
				n := slices.Concat(d.Body[max(0, k-3):k], []byte(sep), d.Body[k+1:min(len(d.Body), k+4)])
				qs = append(qs, store.TextQuery{Fields: store.TextBody, Needle: n})
			}
		}
	}
	// One-field queries alone are the mailbox index's (index/lines.go).
	if _, err := a.SearchText(ctx, inbox.ID, []store.TextQuery{{Fields: store.TextFrom, Needle: []byte("a")}}); !errors.Is(err, store.ErrNoTextIndex) {
		t.Fatalf("one-field search: %v, want ErrNoTextIndex", err)
	}
	res, err := a.SearchText(ctx, inbox.ID, qs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pending) != 0 {
		t.Fatalf("pending after indexing: %v", res.Pending)
	}
	for qi, q := range qs {
		var want []uint32
		for i, d := range docs {
			texts := [][]byte{d.Header, d.Body, d.MIME}
			if q.Fields == store.TextBody {
				texts = [][]byte{d.Body}
			}
			if slices.ContainsFunc(texts, func(t []byte) bool { return bytes.Contains(t, q.Needle) }) {
				want = append(want, uint32(i+1))
			}
		}
		if !slices.Equal(res.Hits[qi], want) {
			t.Errorf("needle %q: hits %v, want %v", q.Needle, res.Hits[qi], want)
		}
	}
}

// TestTextExtractFails: a body whose text cannot be extracted (its part
// tree damaged here) stays queued, marked failed: the indexer does not
// take it again, its message stays pending (the scan reads it), tern
// check finds nothing wrong, and a rebuild tries it again.
func TestTextExtractFails(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	for i := range 3 {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: fmt.Appendf(nil, "Subject: s\r\n\r\nword %d\r\n", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE contents SET parts = '\xff01' WHERE id = (SELECT content_id FROM messages WHERE uid = 2)`); err != nil {
		t.Fatal(err)
	}
	failed := func() int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM text_queue WHERE failed`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, rebuild := range []bool{false, true} {
		if err := s.IndexText(ctx, "u", rebuild, nil); err != nil {
			t.Fatal(err)
		}
		if n := failed(); n != 1 {
			t.Fatalf("rebuild %v: %d bodies marked failed, want 1", rebuild, n)
		}
		inbox, _ := a.Mailbox(ctx, "INBOX")
		res, err := a.SearchText(ctx, inbox.ID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("word")}})
		if err != nil || !slices.Equal(res.Pending, []uint32{2}) || !slices.Equal(res.Hits[0], []uint32{1, 3}) {
			t.Fatalf("rebuild %v: %+v %v", rebuild, res, err)
		}
		if p, err := s.Check(ctx, false); err != nil || len(p) != 0 {
			t.Fatalf("check: %q %v", p, err)
		}
	}
}

// TestTextBlobUnreadable: a body whose object the blob store cannot give
// is the store's problem, not the mail's: it stays queued, unmarked, to
// be tried again, the other bodies are extracted, indexing reports the
// failure, and the body is extracted once its object is back.
func TestTextBlobUnreadable(t *testing.T) {
	ctx := context.Background()
	blobs := fileBlobs(t, t.TempDir())
	s := openBlobNode(t, pgtest.NewDatabase(t), blobs)
	a := newUser(t, s)
	msg := []byte("Subject: s\r\n\r\nkept words\r\n")
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg}, {Body: []byte("Subject: t\r\n\r\nother words\r\n")}}); err != nil {
		t.Fatal(err)
	}
	key := blobKey(bodyHash(msg))
	if err := blobs.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err == nil {
		t.Fatal("indexing a body whose object is gone succeeded")
	}
	var failed bool
	if err := s.pool.QueryRow(ctx, `SELECT failed FROM text_queue`).Scan(&failed); err != nil || failed {
		t.Fatalf("queue row after the failure: failed %v, %v", failed, err)
	}
	if n := countRows(t, s, "body_text"); n != 1 {
		t.Fatalf("%d texts beside the unreadable body, want the other one", n)
	}
	if err := blobs.Put(ctx, key, msg); err != nil {
		t.Fatal(err)
	}
	if err := s.IndexText(ctx, "u", false, nil); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, "body_text"); n != 2 {
		t.Fatalf("%d texts once the object is back", n)
	}
}
