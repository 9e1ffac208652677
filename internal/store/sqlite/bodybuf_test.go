package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// Bodies kept in mail.db are read into reused buffers: many open at once
// each read their own message, a body closed (twice, even) and others
// opened after it leave the ones still open intact, and one read of a
// compressed body leaves far less garbage than the body's size (before,
// the row's copy and its decompression: 1.4 times the body).
func TestInlineBodyBuffersReused(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	var msgs []store.NewMessage
	var want [][]byte
	for i := range 6 {
		var text strings.Builder
		fmt.Fprintf(&text, "Subject: message %d\r\n\r\n", i)
		for l := range 150 + 20*i {
			fmt.Fprintf(&text, "line %d of message %d, compressible text of everyday mail\r\n", l, i)
		}
		msgs = append(msgs, store.NewMessage{Body: []byte(text.String())})
		want = append(want, []byte(text.String()))
	}
	res, err := a.Append(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	read := func(b store.Body) []byte {
		t.Helper()
		got := make([]byte, b.Size())
		if _, err := b.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		return got
	}
	open := func(i int) store.Body {
		t.Helper()
		b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for round := range 3 {
		var bodies []store.Body
		for i := range msgs {
			bodies = append(bodies, open(i))
		}
		for i := 0; i < len(bodies); i += 2 { // every other one closed, twice
			bodies[i].Close()
			bodies[i].Close()
		}
		for i := 0; i < len(bodies); i += 2 { // reopened into the buffers just freed
			bodies[i] = open(i)
		}
		for i, b := range bodies {
			if got := read(b); !bytes.Equal(got, want[i]) {
				t.Fatalf("round %d: body of UID %d differs (%d bytes, want %d)", round, res.UIDs[i], len(got), len(want[i]))
			}
			b.Close()
		}
	}
	if raceEnabled {
		return // sync.Pool drops buffers at random under the race detector
	}
	last := len(msgs) - 1
	buf := make([]byte, len(want[last]))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 200
	for range runs {
		b := open(last)
		if _, err := b.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	runtime.ReadMemStats(&after)
	perRead := (after.TotalAlloc - before.TotalAlloc) / runs
	if perRead > uint64(len(want[last]))/2 {
		t.Errorf("one read of a %d-byte body allocated %d bytes", len(want[last]), perRead)
	}
}
