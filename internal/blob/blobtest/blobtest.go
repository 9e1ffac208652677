// Package blobtest is the conformance suite every blob.Store passes.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
)

// Key is the content key of data.
func Key(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// Run runs the suite; open returns an empty store for each test.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutOpen", testPutOpen},
		{"Missing", testMissing},
		{"PutTwice", testPutTwice},
		{"Delete", testDelete},
		{"Empty", testEmpty},
		{"Large", testLarge},
		{"List", testList},
		{"BadKeys", testBadKeys},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func put(t *testing.T, s blob.Store, data []byte) string {
	t.Helper()
	k := Key(data)
	if err := s.Put(context.Background(), k, data); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return k
}

// readAll reads an object through ReadAt, in pieces of n bytes.
func readAll(t *testing.T, o blob.Object, n int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, n)
	for off := int64(0); ; {
		k, err := o.ReadAt(buf, off)
		out = append(out, buf[:k]...)
		off += int64(k)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("ReadAt at %d: %v", off, err)
		}
		if k == 0 {
			t.Fatalf("ReadAt at %d: no bytes, no error", off)
		}
	}
}

// Check asserts that s holds data under its key, read whole and in
// pieces at offsets.
func Check(t *testing.T, s blob.Store, data []byte) {
	t.Helper()
	k := Key(data)
	o, err := s.Open(context.Background(), k)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer o.Close()
	if o.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d", o.Size(), len(data))
	}
	if got := readAll(t, o, 4096); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, not the %d put", len(got), len(data))
	}
	if len(data) > 10 {
		mid := make([]byte, 5)
		if _, err := o.ReadAt(mid, int64(len(data)/2)); err != nil && err != io.EOF {
			t.Fatalf("ReadAt middle: %v", err)
		}
		if !bytes.Equal(mid, data[len(data)/2:len(data)/2+5]) {
			t.Fatalf("ReadAt middle: %q", mid)
		}
	}
	if n, err := s.Stat(context.Background(), k); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat: %d, %v; want %d", n, err, len(data))
	}
}

func testPutOpen(t *testing.T, s blob.Store) {
	data := []byte("Subject: hello\r\n\r\nbody\r\n")
	put(t, s, data)
	Check(t, s, data)
}

func testMissing(t *testing.T, s blob.Store) {
	ctx := context.Background()
	k := Key([]byte("never put"))
	if _, err := s.Open(ctx, k); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open of a missing key: %v", err)
	}
	if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat of a missing key: %v", err)
	}
	if err := s.Delete(ctx, k); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

func testPutTwice(t *testing.T, s blob.Store) {
	data := []byte("the same bytes twice")
	put(t, s, data)
	put(t, s, data)
	Check(t, s, data)
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	a, b := []byte("first"), []byte("second")
	ka := put(t, s, a)
	put(t, s, b)
	if err := s.Delete(ctx, ka); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, ka); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after Delete: %v", err)
	}
	Check(t, s, b)
	put(t, s, a) // back again
	Check(t, s, a)
}

func testEmpty(t *testing.T, s blob.Store) {
	put(t, s, nil)
	Check(t, s, []byte{})
}

func testLarge(t *testing.T, s blob.Store) {
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i * 7 >> 3)
	}
	put(t, s, data)
	Check(t, s, data)
}

func testList(t *testing.T, s blob.Store) {
	ctx := context.Background()
	want := map[string]int64{}
	for i := range 5 {
		d := fmt.Appendf(nil, "object %d %s", i, bytes.Repeat([]byte("x"), i))
		want[put(t, s, d)] = int64(len(d))
	}
	gone := put(t, s, []byte("deleted"))
	if err := s.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	got := map[string]int64{}
	err := s.List(ctx, func(k string, size int64, mod time.Time) error {
		if mod.Before(start) || mod.After(time.Now().Add(time.Hour)) {
			t.Errorf("%s: modified %v", k, mod)
		}
		got[k] = size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List: %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := s.List(ctx, func(string, int64, time.Time) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("List whose callback fails: %v", err)
	}
}

func testBadKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range []string{"", "../../etc/passwd", Key(nil)[:63] + "/", Key(nil)[:63] + "G", "AB" + Key(nil)[2:]} {
		if err := s.Put(ctx, k, []byte("x")); err == nil {
			t.Errorf("Put(%q) accepted", k)
		}
		if _, err := s.Open(ctx, k); err == nil || errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(%q): %v", k, err)
		}
		if err := s.Delete(ctx, k); err == nil {
			t.Errorf("Delete(%q) accepted", k)
		}
	}
}

// testConcurrent: writers of the same key at once all succeed and leave
// one complete object.
func testConcurrent(t *testing.T, s blob.Store) {
	data := bytes.Repeat([]byte("concurrent "), 20000)
	k := Key(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- s.Put(context.Background(), k, data) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	Check(t, s, data)
}
