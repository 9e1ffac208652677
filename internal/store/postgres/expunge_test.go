package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/storetest"
)

// TestExpungeSQLRefusesMiscount: the expunge statement fails, changing
// nothing, when it deletes another number of messages than it was told
// (which the user's row lock rules out): a mismatch must not commit
// tombstones, usage or a HIGHESTMODSEQ for messages that were not there.
func TestExpungeSQLRefusesMiscount(t *testing.T) {
	ctx := context.Background()
	s, a := openUser(t)
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: storetest.Msg(1)}, {Body: storetest.Msg(2)}})
	if err != nil {
		t.Fatal(err)
	}
	before := highest(t, a)
	var user int64
	if err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE name = 'u'`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	expunge := func(uids []int64, n int64) error {
		_, err := s.pool.Exec(ctx, expungeSQL(len(uids)), res.MailboxID, uids, uids, int64(before+1), -n, int64(-100), user, uids, n)
		return err
	}
	uid1, missing := int64(res.UIDs[0]), int64(res.UIDs[1])+10
	var pe *pgconn.PgError
	if err := expunge([]int64{uid1, missing}, 2); !errors.As(err, &pe) || pe.Code != "22012" {
		t.Fatalf("expunge of a present and a missing UID: %v, want a division by zero", err)
	}
	st, err := a.Status(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 2 || st.HighestModSeq != before {
		t.Fatalf("after the refused expunge: %d messages, HIGHESTMODSEQ %d (was %d)", st.Messages, st.HighestModSeq, before)
	}
	if err := expunge([]int64{uid1}, 1); err != nil {
		t.Fatalf("expunge of one present UID: %v", err)
	}
	if st, err = a.Status(ctx, "INBOX"); err != nil || st.Messages != 1 || st.HighestModSeq != before+1 {
		t.Fatalf("after the expunge: %+v, %v", st, err)
	}
}
