package postgres

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTakeOver: a body file of an earlier backup is hard-linked, or
// copied when linking fails (another filesystem); either way the new file
// holds the body and stands without the old one. A file whose size or
// content does not match is refused.
func TestTakeOver(t *testing.T) {
	prev, dest := t.TempDir(), t.TempDir()
	body := []byte(strings.Repeat("a body line\r\n", 100))
	sum := sha256.Sum256(body)
	key := hex.EncodeToString(sum[:])
	src := filepath.Join(prev, key)
	if err := os.WriteFile(src, body, 0o600); err != nil {
		t.Fatal(err)
	}
	size := int64(len(body))

	linked := filepath.Join(dest, "linked")
	if n, err := takeOver(src, linked, key, size); err != nil || n != size {
		t.Fatalf("takeOver: %d, %v", n, err)
	}
	if !sameFile(t, src, linked) {
		t.Fatal("not hard-linked")
	}

	linkFile = func(string, string) error { return errors.New("cross-device link") }
	defer func() { linkFile = os.Link }()
	copied := filepath.Join(dest, "copied")
	if n, err := takeOver(src, copied, key, size); err != nil || n != size {
		t.Fatalf("takeOver without links: %d, %v", n, err)
	}
	if sameFile(t, src, copied) {
		t.Fatal("linked although linking fails")
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{linked, copied} {
		if got, err := os.ReadFile(p); err != nil || string(got) != string(body) {
			t.Fatalf("%s after the source is gone: %v", p, err)
		}
	}

	// A damaged file of the same size, and a file of another size.
	damaged := append([]byte(nil), body...)
	damaged[10] ^= 1
	if err := os.WriteFile(src, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := takeOver(src, filepath.Join(dest, "damaged"), key, size); err == nil || !strings.Contains(err.Error(), "does not match its key") {
		t.Fatalf("takeOver of a damaged file: %v", err)
	}
	if _, err := takeOver(src, filepath.Join(dest, "short"), key, size-1); err == nil || !strings.Contains(err.Error(), "its manifest says") {
		t.Fatalf("takeOver of a file of another size: %v", err)
	}
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}
