package sqlite

import (
	"reflect"
	"testing"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

func TestToRanges(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want []uidRange
	}{
		{nil, nil},
		{[]uint32{5}, []uidRange{{5, 5}}},
		{[]uint32{3, 1, 2, 2, 7, 9, 8, 3}, []uidRange{{1, 3}, {7, 9}}},
		{[]uint32{4294967295, 4294967294, 1}, []uidRange{{1, 1}, {4294967294, 4294967295}}},
	} {
		if got := toRanges(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("toRanges(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestUIDConditions runs the two shapes of uidMatch and of uidIn against
// a table holding UIDs up to the largest possible one.
func TestUIDConditions(t *testing.T) {
	db, err := sqldb.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE messages(mailbox_id INTEGER, uid INTEGER, PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID`); err != nil {
		t.Fatal(err)
	}
	have := map[uint32]bool{}
	for _, u := range []uint32{1, 2, 3, 5, 8, 9, 10, 100, 1000, 2147483647, 2147483648, 4294967294, 4294967295} {
		have[u] = true
		for mb := 1; mb <= 2; mb++ {
			if _, err := db.Exec(`INSERT INTO messages VALUES(?, ?)`, mb, u); err != nil {
				t.Fatal(err)
			}
		}
	}
	query := func(q string, args ...any) []uint32 {
		t.Helper()
		rows, err := db.Query(q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []uint32
		for rows.Next() {
			var u uint32
			if err := rows.Scan(&u); err != nil {
				t.Fatal(err)
			}
			out = append(out, u)
		}
		return out
	}
	for _, uids := range [][]uint32{
		{1}, {2, 3}, {4, 5, 6, 7, 8}, {1, 3, 5}, {9, 10, 100, 4294967295}, {4294967294, 4294967295},
		{7}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 999, 1000, 1001},
		{5, 2147483646, 2147483647, 2147483648, 2147483649}, {1, 2147483648}, {3, 2147483647},
	} {
		var want []uint32
		for _, u := range uids {
			if have[u] {
				want = append(want, u)
			}
		}
		rs := toRanges(uids)
		from, cond, args := uidMatch(rs)
		got := query(`SELECT m.uid FROM `+from+`messages m WHERE m.mailbox_id = ?1 AND `+cond+` ORDER BY m.uid`, append([]any{2}, args...)...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("uidMatch(%v) = %v, want %v", rs, got, want)
		}
		cond, args = uidIn("uid", rs, 2)
		got = query(`SELECT uid FROM messages WHERE mailbox_id = ?1 AND `+cond+` ORDER BY uid`, append([]any{2}, args...)...)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("uidIn(%v) = %v, want %v", rs, got, want)
		}
	}
}
