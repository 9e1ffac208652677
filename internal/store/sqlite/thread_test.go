package sqlite

import (
	"context"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// Message ids that are not valid UTF-8 keep their bytes: two different
// ones stay two threads (a JSON array would turn both into U+FFFD), and
// a reply finds the thread of the id it names.
func TestThreadIDsNotUTF8(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	msg := func(hdr string) store.NewMessage {
		return store.NewMessage{Body: []byte(hdr + "Subject: s\r\n\r\nbody\r\n")}
	}
	for _, m := range []store.NewMessage{
		msg("Message-ID: <\xff@x>\r\n"),
		msg("Message-ID: <\xfe@x>\r\n"),
		msg("Message-ID: <r@x>\r\nIn-Reply-To: <\xff@x>\r\n"),
		msg("Message-ID: <ok@x>\r\nReferences: <\xfe@x> <\x00@x>\r\n"),
	} {
		if _, err := a.Append(ctx, "INBOX", []store.NewMessage{m}); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := a.u.db.QueryContext(ctx, `SELECT thread_id FROM contents ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var tids []string
	for rows.Next() {
		var tid string
		if err := rows.Scan(&tid); err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	if len(tids) != 4 {
		t.Fatalf("%d contents", len(tids))
	}
	if tids[0] == tids[1] {
		t.Errorf("two different non-UTF-8 ids share thread %s", tids[0])
	}
	if tids[2] != tids[0] {
		t.Errorf("reply to <\\xff@x> in thread %s, want %s", tids[2], tids[0])
	}
	if tids[3] != tids[1] {
		t.Errorf("message referencing <\\xfe@x> in thread %s, want %s", tids[3], tids[1])
	}
}
