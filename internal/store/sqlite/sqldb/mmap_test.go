package sqldb

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fileMapped reports whether this process has path memory-mapped.
func fileMapped(t *testing.T, path string) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(maps)) {
		if strings.HasSuffix(strings.TrimRight(line, "\n"), " "+path) {
			return true
		}
	}
	return false
}

// TestMmapSizeMaps: a pool whose DSN asks for a memory map reads the
// file through one (the engine's memory has room for the map: without
// that the pragma is accepted and silently does nothing), a 1 GiB map
// included; a pool without the pragma reads with pread.
func TestMmapSizeMaps(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/maps")
	}
	for _, c := range []struct {
		pragma string
		mapped bool
	}{{"&_pragma=mmap_size(1073741824)", true}, {"&_pragma=mmap_size(0)", false}, {"", false}} {
		path := filepath.Join(t.TempDir(), "m.db")
		db, err := Open("file:" + path + "?_pragma=journal_mode(DELETE)" + c.pragma)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 200)
			INSERT INTO t SELECT i, randomblob(2000) FROM n`); err != nil {
			t.Fatal(err)
		}
		var total int64
		if err := db.QueryRow(`SELECT sum(length(v)) FROM t`).Scan(&total); err != nil || total != 400000 {
			t.Fatalf("%q: sum %d, %v", c.pragma, total, err)
		}
		if got := fileMapped(t, path); got != c.mapped {
			t.Errorf("DSN with %q: file mapped %v, want %v", c.pragma, got, c.mapped)
		}
		db.Close()
	}
}
