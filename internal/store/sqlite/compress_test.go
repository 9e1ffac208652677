package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// TestInlineBodyCompressed: a small body of text is kept S2-compressed
// in mail.db and read back byte for byte, whole and at any offset; the
// full-text index reads it; a body that does not compress (random bytes)
// is kept as it is; tern check finds nothing wrong with either, and
// reports a compressed row that is damaged, which OpenBody then refuses
// with an error instead of handing out wrong bytes.
func TestInlineBodyCompressed(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	ai, err := s.Account(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	defer ai.Close()
	a := ai.(*account)

	var text strings.Builder
	for i := range 150 {
		fmt.Fprintf(&text, "line %d of the quarterly report, nothing new under the sun\r\n", i)
	}
	text.WriteString("zanzibarquokka\r\n")
	header := "Subject: compressible\r\nFrom: a@example.org\r\n\r\n"
	plain := []byte(header + text.String())
	noise := make([]byte, 6000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	random := append([]byte("Subject: random\r\nContent-Type: application/octet-stream\r\n\r\n"), noise...)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: plain}, {Body: random}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	stored := func(uid uint32) (int, int) {
		t.Helper()
		var n, split int
		if err := u.db.QueryRowContext(ctx, `SELECT length(b.data), b.split FROM bodies b JOIN messages m ON m.content_id = b.content_id WHERE m.uid = ?`,
			uid).Scan(&n, &split); err != nil {
			t.Fatal(err)
		}
		return n, split
	}
	if n, split := stored(res.UIDs[0]); split != bodyHeaderless|bodyCompressed || n > len(plain)/3 {
		t.Errorf("text body kept as %d bytes (split %d), want at most %d, compressed and headerless", n, split, len(plain)/3)
	}
	if n, split := stored(res.UIDs[1]); split != bodyHeaderless || n != len(noise) {
		t.Errorf("random body kept as %d bytes (split %d), want %d as they are", n, split, len(noise))
	}
	for i, want := range [][]byte{plain, random} {
		b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, b.Size())
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("UID %d: body differs (%d bytes, %v)", res.UIDs[i], len(got), err)
		}
		part := make([]byte, 100)
		if _, err := b.ReadAt(part, int64(len(want)-300)); err != nil || !bytes.Equal(part, want[len(want)-300:len(want)-200]) {
			t.Fatalf("UID %d: ReadAt near the end %q, %v", res.UIDs[i], part, err)
		}
		b.Close()
	}
	if _, err := a.indexPending(ctx, 32, 0); err != nil {
		t.Fatal(err)
	}
	found, err := a.SearchText(ctx, res.MailboxID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("zanzibarquokka")}})
	if err != nil || len(found.Pending) != 0 || len(found.Hits[0]) != 1 || found.Hits[0][0] != res.UIDs[0] {
		t.Fatalf("SEARCH BODY in the compressed body: %+v, %v", found, err)
	}
	if problems, err := u.check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("tern check: %v, %v", problems, err)
	}

	if _, err := u.db.ExecContext(ctx, `UPDATE bodies SET data = x'ffffffff00' WHERE split & 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[0]); err == nil {
		t.Error("OpenBody of a damaged compressed body succeeded")
	}
	problems, err := u.check(ctx, false)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "damaged") {
		t.Fatalf("tern check of a damaged body: %v, %v", problems, err)
	}
}

// TestNewerSchemaRefused: a mail.db written by a newer tern (a higher
// user_version) is not opened: this tern could misread what it holds
// (compressed bodies, for one, look like mail to a tern before version 16).
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openInline(t, dir, nil)
	if err := s.CreateUser(ctx, "u", "h"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	setUserVersion(t, dir, 1, userSchemaVersion+1)
	s = openInline(t, dir, nil)
	defer s.Close()
	if a, err := s.Account(ctx, "u"); !errors.Is(err, errNewerSchema) {
		if err == nil {
			a.Close()
		}
		t.Fatalf("Account of a newer mail.db: %v, want errNewerSchema", err)
	}
}
