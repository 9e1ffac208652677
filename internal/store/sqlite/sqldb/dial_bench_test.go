package sqldb

import (
	"path/filepath"
	"testing"
)

func BenchmarkDial(b *testing.B) {
	path := filepath.Join(b.TempDir(), "t.db")
	db, err := Open("file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)")
	if err != nil {
		b.Fatal(err)
	}
	db.Exec(`CREATE TABLE t(a)`)
	keep, _ := db.dial() // the file stays open in WAL mode
	defer keep.close()
	b.ReportAllocs()
	for b.Loop() {
		c, err := db.dial()
		if err != nil {
			b.Fatal(err)
		}
		c.close()
	}
}
