package sqlite

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// TestSplitBodyReadAt: a body read from its stored header and the rest
// gives, at every offset and length, what the two bytes joined give.
func TestSplitBodyReadAt(t *testing.T) {
	for _, c := range []struct{ head, rest string }{
		{"Subject: x\r\n\r\n", "body\r\n"},
		{"", "whole message\r\n"},
		{"Subject: only a header\r\n\r\n", ""},
		{"", ""},
	} {
		b := &splitBody{head: []byte(c.head), rest: []byte(c.rest)}
		whole := bytes.NewReader([]byte(c.head + c.rest))
		if b.Size() != whole.Size() {
			t.Fatalf("%q+%q: Size %d, want %d", c.head, c.rest, b.Size(), whole.Size())
		}
		for off := int64(0); off <= whole.Size()+1; off++ {
			for n := 0; n <= int(whole.Size())+2; n++ {
				got, want := make([]byte, n), make([]byte, n)
				gn, gerr := b.ReadAt(got, off)
				wn, werr := whole.ReadAt(want, off)
				if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) {
					t.Fatalf("%q+%q ReadAt(%d bytes, %d) = %d %q %v, want %d %q %v",
						c.head, c.rest, n, off, gn, got[:gn], gerr, wn, want[:wn], werr)
				}
				if gerr != nil && !errors.Is(gerr, io.EOF) {
					t.Fatalf("ReadAt error %v, want io.EOF", gerr)
				}
			}
		}
	}
	if _, err := (&splitBody{}).ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("negative offset read without error")
	}
}

// TestDriverBytesNotReused: driverBytes keeps the slice the sqlite driver
// gives a BLOB column instead of copying it, which is right only while the
// driver gives every row a slice of its own. If a driver upgrade reused
// one buffer, the first rows' values would change here.
func TestDriverBytesNotReused(t *testing.T) {
	db, err := sqldb.Open(dsn(filepath.Join(t.TempDir(), "t.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{bytes.Repeat([]byte("a"), 5000), bytes.Repeat([]byte("b"), 5000), []byte("c"), nil}
	for i, b := range want {
		if _, err := db.Exec(`INSERT INTO t(id, b) VALUES(?, ?)`, i, b); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query(`SELECT b FROM t ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []driverBytes
	for rows.Next() {
		var b driverBytes
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	// A second query over the same connection, to overwrite any buffer
	// the driver might keep.
	var other driverBytes
	if err := db.QueryRow(`SELECT zeroblob(5000)`).Scan(&other); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("row %d changed after later rows were read: %.20q..., want %.20q...", i, got[i], want[i])
		}
	}
}
