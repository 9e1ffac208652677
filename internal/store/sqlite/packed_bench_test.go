package sqlite

import (
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPackFile: the cost of packing a message with a base64
// attachment at APPEND (size is the attachment's bytes before encoding).
func BenchmarkPackFile(b *testing.B) {
	for _, size := range []int{20 << 10, 360 << 10} {
		r := rand.New(rand.NewPCG(1, 2))
		msg := attachmentMessage("hello\r\n", attachment{bin: randomBytes(r, size), line: 76, eol: "\r\n"})
		b.Run(FormatBytes(int64(len(msg))), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if packFile(msg) == nil {
					b.Fatal("not packed")
				}
			}
		})
	}
}

// BenchmarkPackedRead: reading a whole message with a base64 attachment
// from its packed file (encoding it again), against reading the same
// message from a plain file.
func BenchmarkPackedRead(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	msg := attachmentMessage("hello\r\n", attachment{bin: randomBytes(r, 360<<10), line: 76, eol: "\r\n"})
	dir := b.TempDir()
	packedPath, plainPath := filepath.Join(dir, "p"), filepath.Join(dir, "f")
	if err := os.WriteFile(packedPath, packFile(msg), 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(plainPath, msg, 0o600); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	readAll := func(b *testing.B, ra io.ReaderAt) {
		for off := int64(0); off < int64(len(msg)); off += int64(len(buf)) {
			n := min(int64(len(buf)), int64(len(msg))-off)
			if _, err := ra.ReadAt(buf[:n], off); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("packed", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			p, err := openPacked(packedPath)
			if err != nil {
				b.Fatal(err)
			}
			readAll(b, p)
			p.Close()
		}
	})
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			f, err := os.Open(plainPath)
			if err != nil {
				b.Fatal(err)
			}
			readAll(b, f)
			f.Close()
		}
	})
}
