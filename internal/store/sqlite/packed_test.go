package sqlite

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-imap/tern/internal/store"
)

// base64Lines encodes bin as lines of line characters, each ending in eol.
func base64Lines(bin []byte, line int, eol string) string {
	enc := base64.StdEncoding.EncodeToString(bin)
	var b strings.Builder
	for len(enc) > 0 {
		k := min(line, len(enc))
		b.WriteString(enc[:k] + eol)
		enc = enc[k:]
	}
	return b.String()
}

// randomBytes is n bytes from r.
func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// attachmentMessage is a multipart message with a text part and one
// base64 part per attachment (its bytes, line length and line end).
func attachmentMessage(text string, atts ...attachment) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nSubject: with attachments\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n--xx\r\nContent-Type: text/plain\r\n\r\n")
	b.WriteString(text)
	for _, a := range atts {
		b.WriteString("\r\n--xx\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
		b.WriteString(a.encoded())
	}
	b.WriteString("\r\n--xx--\r\n")
	return []byte(b.String())
}

type attachment struct {
	bin  []byte
	line int
	eol  string
	raw  string // used as it is instead, when set
}

func (a attachment) encoded() string {
	if a.raw != "" {
		return a.raw
	}
	return base64Lines(a.bin, a.line, a.eol)
}

// readPackedBack packs body into a file and reads it back through
// openPacked, whole and in random pieces, failing t on any difference.
// It returns the packed file's length (0 if body was not packed).
func readPackedBack(t *testing.T, body []byte, r *rand.Rand, reads int) int {
	t.Helper()
	packed := packFile(body)
	if packed == nil {
		return 0
	}
	path := filepath.Join(t.TempDir(), "p")
	if err := os.WriteFile(path, packed, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := openPacked(path)
	if err != nil {
		t.Fatalf("openPacked: %v", err)
	}
	defer p.Close()
	if p.Size() != int64(len(body)) {
		t.Fatalf("packed size %d, want %d", p.Size(), len(body))
	}
	whole := make([]byte, len(body))
	if n, err := p.ReadAt(whole, 0); n != len(body) || err != nil || !bytes.Equal(whole, body) {
		t.Fatalf("whole read: %d bytes, %v, equal %v", n, err, bytes.Equal(whole, body))
	}
	for range reads {
		off := r.IntN(len(body))
		n := r.IntN(min(len(body)-off, 5000) + 1)
		if r.IntN(10) == 0 {
			n = len(body) - off
		}
		got := make([]byte, n)
		k, err := p.ReadAt(got, int64(off))
		if k != n || err != nil || !bytes.Equal(got, body[off:off+n]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; equal %v", n, off, k, err, bytes.Equal(got, body[off:off+n]))
		}
	}
	past := make([]byte, 10)
	if k, err := p.ReadAt(past, int64(len(body)-4)); k != 4 || err == nil {
		t.Fatalf("ReadAt across the end = %d, %v; want 4 and EOF", k, err)
	}
	return len(packed)
}

// TestPackedBodies: messages whose base64 attachments are in the shape an
// encoder writes are packed to about three quarters, and read back byte
// for byte at any offset; runs that would not come back the same (LF line
// ends, a last line with stray bits or unpadded, lines of mixed length,
// no CRLF at the very end) are kept as they are, and still read back.
func TestPackedBodies(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	text := strings.Repeat("See the attached files.\r\n", 20)
	cases := []struct {
		name   string
		body   []byte
		packed bool // expect packing to save a quarter of the attachments
	}{
		{"76 columns, every padding", attachmentMessage(text,
			attachment{bin: randomBytes(r, 30000), line: 76, eol: "\r\n"},
			attachment{bin: randomBytes(r, 30001), line: 76, eol: "\r\n"},
			attachment{bin: randomBytes(r, 30002), line: 76, eol: "\r\n"}), true},
		{"64 and 72 columns, a last line of full length", attachmentMessage(text,
			attachment{bin: randomBytes(r, 48*400), line: 64, eol: "\r\n"},
			attachment{bin: randomBytes(r, 54*300), line: 72, eol: "\r\n"}), true},
		{"LF line ends", attachmentMessage(text,
			attachment{bin: randomBytes(r, 30000), line: 76, eol: "\n"}), false},
		{"one line longer than RFC 5322 allows", attachmentMessage(text,
			attachment{bin: randomBytes(r, 30000), line: 40000, eol: "\r\n"}), false},
		{"stray bits in a last line", attachmentMessage(text, attachment{
			raw: base64Lines(randomBytes(r, 57*500), 76, "\r\n") + "QR==\r\n"}), true},
		{"lines of mixed length", attachmentMessage(text, attachment{
			raw: base64Lines(randomBytes(r, 6000), 76, "\r\n") + base64Lines(randomBytes(r, 6000), 64, "\r\n") +
				base64Lines(randomBytes(r, 6000), 76, "\r\n")}), true},
		{"no CRLF at the end", append(attachmentMessage(text), []byte(base64Lines(randomBytes(r, 20000), 76, "\r\n")+"QUJD")...), true},
		{"text only", []byte(strings.Repeat("Subject: x\r\n\r\n"+text, 100)), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := readPackedBack(t, c.body, r, 300)
			if c.packed && (n == 0 || float64(n) > 0.8*float64(len(c.body))) {
				t.Fatalf("packed to %d of %d bytes, want at most 80 %%", n, len(c.body))
			}
			if !c.packed && n != 0 {
				t.Fatalf("packed to %d bytes, want it kept as it is", n)
			}
		})
	}
}

// TestPackedDamageRefused: a packed file cut short, grown, or with a
// bad magic is refused when opened, not read as a wrong message.
func TestPackedDamageRefused(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	packed := packFile(attachmentMessage("x\r\n", attachment{bin: randomBytes(r, 40000), line: 76, eol: "\r\n"}))
	if packed == nil {
		t.Fatal("not packed")
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"cut":   packed[:len(packed)-1],
		"grown": append(bytes.Clone(packed), 'x'),
		"magic": append([]byte("X"), packed[1:]...),
		"table": packed[:len(packMagic)+1],
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if p, err := openPacked(path); err == nil {
			p.Close()
			t.Errorf("%s: opened a damaged packed file", name)
		}
	}
}

// FuzzPackBody: whatever a body is, packing it either declines or gives a
// file that reads back as exactly the body.
func FuzzPackBody(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 1))
	f.Add(attachmentMessage("hi\r\n", attachment{bin: randomBytes(r, 5000), line: 76, eol: "\r\n"}), uint16(0))
	f.Add([]byte(base64Lines(randomBytes(r, 4000), 16, "\r\n")+"AB==\r\n"), uint16(5))
	f.Fuzz(func(t *testing.T, body []byte, seed uint16) {
		if len(body) == 0 || len(body) > 8192 {
			return
		}
		// Fuzzed inputs are small: repeat the input's lines into runs
		// long enough to be worth packing.
		body = bytes.Repeat(body, 1+6*packMinSaving/len(body))
		readPackedBack(t, body, rand.New(rand.NewPCG(uint64(seed), 0)), 20)
	})
}

// blobOfUID is the blob name of the content of the message with uid
// (the test users have one mailbox).
func blobOfUID(t *testing.T, u *userDB, uid uint32) string {
	t.Helper()
	var blob string
	if err := u.db.QueryRowContext(context.Background(), `SELECT c.blob FROM contents c JOIN messages m ON m.content_id = c.id WHERE m.uid = ?`,
		uid).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	return blob
}

// TestPackedBodyStored: a large message with base64 attachments appended
// to the store is kept in a packed file (its blob name says so) about a
// quarter smaller, served byte for byte by OpenBody, indexed for search
// through the packed file, and passes tern check; a packed file cut short
// is reported by tern check and refused by OpenBody.
func TestPackedBodyStored(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	r := rand.New(rand.NewPCG(5, 6))
	msg := attachmentMessage("the invoice for the harbourmaster is attached\r\n",
		attachment{bin: randomBytes(r, 60000), line: 76, eol: "\r\n"})
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	blob := blobOfUID(t, u, res.UIDs[0])
	fi, err := os.Stat(u.blobPath(blob))
	if err != nil || !isPacked(blob) || float64(fi.Size()) > 0.8*float64(len(msg)) {
		t.Fatalf("body file %q: %v, packed %v, want a packed file under 80 %% of %d bytes", blob, err, isPacked(blob), len(msg))
	}
	b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, b.Size())
	if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("OpenBody: %d bytes, %v, equal %v", len(got), err, bytes.Equal(got, msg))
	}
	if _, ok := b.(interface{ OSFile() *os.File }); ok {
		t.Error("a packed body offers its file for sendfile")
	}
	b.Close()
	if _, _, err := a.indexPending(ctx, 32, 0); err != nil {
		t.Fatal(err)
	}
	found, err := a.SearchText(ctx, res.MailboxID, []store.TextQuery{{Fields: store.TextBody, Needle: []byte("harbourmaster")}})
	if err != nil || len(found.Pending) != 0 || len(found.Hits[0]) != 1 {
		t.Fatalf("SEARCH BODY in the packed message: %+v, %v", found, err)
	}
	if problems, err := u.check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("tern check: %v, %v", problems, err)
	}

	if err := os.Truncate(u.blobPath(blob), fi.Size()-10); err != nil {
		t.Fatal(err)
	}
	if _, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[0]); err == nil {
		t.Error("OpenBody of a packed file cut short succeeded")
	}
	problems, err := u.check(ctx, false)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], fmt.Sprintf("body file %s", blob)) {
		t.Fatalf("tern check of a packed file cut short: %v, %v", problems, err)
	}
}

// unpackStored stores the body file of uid (whose message is msg) as
// schema 18 did, the message as it is under a hex name, and returns that
// name.
func unpackStored(t *testing.T, u *userDB, uid uint32, msg []byte) string {
	t.Helper()
	packedName, oldName := blobOfUID(t, u, uid), randomHex(16)
	if err := os.MkdirAll(filepath.Dir(u.blobPath(oldName)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(u.blobPath(oldName), msg, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := u.db.Exec(`UPDATE contents SET blob = ? WHERE blob = ?`, oldName, packedName); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(u.blobPath(packedName)); err != nil {
		t.Fatal(err)
	}
	return oldName
}

// TestCompactPacksStoredFiles: body files written before schema version
// 19 (unpacked) are packed by Compact where that saves space; the message
// reads the same, the unpacked file is gone, a file that does not pack
// stays as it is, and tern check finds nothing wrong.
func TestCompactPacksStoredFiles(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	r := rand.New(rand.NewPCG(8, 9))
	withAttachment := attachmentMessage("see attached\r\n", attachment{bin: randomBytes(r, 50000), line: 76, eol: "\r\n"})
	textOnly := []byte("Subject: long\r\n\r\n" + strings.Repeat("a line of plain text, nothing to decode\r\n", 1000))
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: withAttachment}, {Body: textOnly}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	blobOf := func(uid uint32) string { return blobOfUID(t, u, uid) }
	plainName := blobOf(res.UIDs[1])
	oldName := unpackStored(t, u, res.UIDs[0], withAttachment)

	got, err := s.Compact(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if got.FilesPacked != 1 || got.FilesSaved < int64(len(withAttachment))/5 {
		t.Fatalf("Compact = %+v; want one file packed, a fifth of %d bytes saved", got, len(withAttachment))
	}
	if now := blobOf(res.UIDs[0]); !isPacked(now) {
		t.Fatalf("blob %q after Compact, want a packed one", now)
	}
	if _, err := os.Stat(u.blobPath(oldName)); !os.IsNotExist(err) {
		t.Fatalf("the unpacked file is still there: %v", err)
	}
	if now := blobOf(res.UIDs[1]); now != plainName {
		t.Fatalf("the text-only file was renamed %q -> %q", plainName, now)
	}
	for i, want := range [][]byte{withAttachment, textOnly} {
		b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, b.Size())
		if _, err := b.ReadAt(body, 0); err != nil || !bytes.Equal(body, want) {
			t.Fatalf("UID %d after Compact: %v, equal %v", res.UIDs[i], err, bytes.Equal(body, want))
		}
		b.Close()
	}
	if problems, err := u.check(ctx, false); err != nil || len(problems) != 0 {
		t.Fatalf("tern check: %v, %v", problems, err)
	}
}

// TestEncodeBase64: the table encoder writes what encoding/base64 does,
// for every length up to a few steps of eight bytes and a long one.
func TestEncodeBase64(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	for _, n := range append([]int{57 * 1000}, func() (ns []int) {
		for n := 0; n <= 60; n += 3 {
			ns = append(ns, n)
		}
		return ns
	}()...) {
		src := randomBytes(r, n)
		dst := make([]byte, n/3*4)
		encodeBase64(dst, src)
		if want := base64.StdEncoding.EncodeToString(src); string(dst) != want {
			t.Fatalf("%d bytes: %q, want %q", n, dst, want)
		}
	}
}

// TestAppendRun: a run of base64 lines comes out as encoding/base64
// writes it line by line, for line lengths from the shortest packed to
// the longest, whole runs and runs with a short last line, and lengths
// below and above what the SIMD encoder takes at once.
func TestAppendRun(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	for _, line := range []int{packMinLine, 64, 76, packMaxLine} {
		perLine := line / 4 * 3
		for _, n := range []int{1, 2, perLine - 1, perLine, perLine + 1, 2 * perLine, 7*perLine + 5, 1000 * perLine, 1000*perLine + 2} {
			bin := randomBytes(r, n)
			var want []byte
			for rest := bin; len(rest) > 0; {
				k := min(perLine, len(rest))
				want = append(base64.StdEncoding.AppendEncode(want, rest[:k]), '\r', '\n')
				rest = rest[k:]
			}
			got := appendRun([]byte("x"), bin, line)
			if string(got[1:]) != string(want) || got[0] != 'x' {
				t.Fatalf("line %d, %d bytes: the run differs from encoding/base64's lines", line, n)
			}
			if int64(len(want)) != encodedRunSize(int64(n), line) {
				t.Fatalf("line %d, %d bytes: encodedRunSize %d, want %d", line, n, encodedRunSize(int64(n), line), len(want))
			}
		}
	}
}

// TestKeepBase64: with Options.KeepBase64 a message with a base64
// attachment is written as it came, and Compact leaves it so.
func TestKeepBase64(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, t.TempDir(), Options{KeepBase64: true})
	defer s.Close()
	a := newUser(t, s)
	r := rand.New(rand.NewPCG(10, 11))
	msg := attachmentMessage("kept\r\n", attachment{bin: randomBytes(r, 50000), line: 76, eol: "\r\n"})
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg}}); err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	blob := func() string {
		t.Helper()
		var b string
		if err := u.db.QueryRowContext(ctx, `SELECT blob FROM contents`).Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := blob(); isPacked(b) {
		t.Fatalf("body file %q packed with KeepBase64", b)
	}
	if got, err := s.Compact(ctx, "u"); err != nil || got.FilesPacked != 0 || isPacked(blob()) {
		t.Fatalf("Compact with KeepBase64 = %+v, %v; want nothing packed", got, err)
	}
}

// TestPackedSegmentLimit: a body of more base64 runs than a reader takes
// segments is packed only as far as the reader can read it back (was: a
// 34 MB message of 32,800 small runs was packed into a file every read
// refused).
func TestPackedSegmentLimit(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	block := base64Lines(randomBytes(r, 57*12), 16, "\r\n") + "-\r\n" // a run of 1,026 bytes, then a raw line
	body := []byte(strings.Repeat(block, packMaxSegments/2+32))
	if n := readPackedBack(t, body, r, 20); n == 0 {
		t.Fatal("not packed at all")
	}
}

// TestBackupPackedBodies: a backup copies packed body files and checks
// them by the message size their table gives (was: refused, the file's
// length is not the message's), and the restored store serves the same
// bytes and passes tern check.
func TestBackupPackedBodies(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	s, accts := newStoreWithUsers(t, data, "alice")
	r := rand.New(rand.NewPCG(14, 15))
	msg := attachmentMessage("backup me\r\n", attachment{bin: randomBytes(r, 60000), line: 76, eol: "\r\n"})
	res, err := accts["alice"].Append(ctx, "INBOX", []store.NewMessage{{Body: msg}})
	if err != nil {
		t.Fatal(err)
	}
	if !isPacked(blobOfUID(t, s.users[1], res.UIDs[0])) {
		t.Fatal("the body file is not packed")
	}
	dest, restored := filepath.Join(root, "backup"), filepath.Join(root, "restored")
	m, err := Backup(ctx, data, dest, BackupOptions{})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if u := m.Users[0]; u.Bodies != 1 || u.BodyBytes >= int64(len(msg)) {
		t.Fatalf("manifest user %+v; want one body file, its bytes below the message's %d", u, len(msg))
	}
	if _, err := Restore(ctx, dest, restored, RestoreOptions{Logger: quietLogger()}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	rs := openTest(t, restored, nil)
	defer rs.Close()
	ra, err := rs.Account(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	b, err := ra.OpenBody(ctx, res.MailboxID, res.UIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, b.Size())
	if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("restored body: %v, equal %v", err, bytes.Equal(got, msg))
	}
	b.Close()
	if problems, err := rs.Check(ctx, false); err != nil || len(problems) > 0 {
		t.Fatalf("check of the restored store: %q %v", problems, err)
	}
}

// TestStaleTextOfPackedMessage: tern check compares the full-text index's
// text of a packed message with the message (was: the message could not
// be opened there and the check passed over it).
func TestStaleTextOfPackedMessage(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	r := rand.New(rand.NewPCG(16, 17))
	msg := attachmentMessage("indexed text\r\n", attachment{bin: randomBytes(r, 60000), line: 76, eol: "\r\n"})
	if _, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.indexPending(ctx, 32, 0); err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	if _, err := u.db.ExecContext(ctx, `UPDATE fts_text SET hdr = 'tampered'`); err != nil {
		t.Fatal(err)
	}
	problems, err := u.check(ctx, false)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0], "differs") {
		t.Fatalf("tern check of a tampered index row of a packed message: %q, %v", problems, err)
	}
}

// TestOpenBodyAfterRepack: a reader that looked up a body file's name
// just before compaction packed it under a new name finds the message in
// the new file: OpenBody (the compaction done between its lookup and its
// open), and the indexer through renamedBlob.
func TestOpenBodyAfterRepack(t *testing.T) {
	ctx := context.Background()
	s := openInline(t, t.TempDir(), nil)
	defer s.Close()
	a := newUser(t, s)
	r := rand.New(rand.NewPCG(18, 19))
	msg := attachmentMessage("moved\r\n", attachment{bin: randomBytes(r, 60000), line: 76, eol: "\r\n"})
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	var id int64
	var oldName, newName string
	repack := func() {
		oldName, newName = blobOfUID(t, u, res.UIDs[0]), randomHex(16)+packedSuffix
		if err := os.MkdirAll(filepath.Dir(u.blobPath(newName)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(u.blobPath(oldName), u.blobPath(newName)); err != nil {
			t.Fatal(err)
		}
		if err := u.db.QueryRowContext(ctx, `UPDATE contents SET blob = ? WHERE blob = ? RETURNING id`, newName, oldName).Scan(&id); err != nil {
			t.Fatal(err)
		}
	}
	testBeforeOpenBlob = repack
	b, err := a.OpenBody(ctx, res.MailboxID, res.UIDs[0])
	testBeforeOpenBlob = nil
	if err != nil {
		t.Fatalf("OpenBody across a repack: %v", err)
	}
	got := make([]byte, b.Size())
	if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("OpenBody across a repack read %v, equal %v", err, bytes.Equal(got, msg))
	}
	b.Close()

	repack()
	blob := oldName
	if !u.renamedBlob(ctx, id, &blob, fmt.Errorf("open: %w", os.ErrNotExist)) || blob != newName {
		t.Fatalf("renamedBlob: %q, want %q", blob, newName)
	}
	if u.renamedBlob(ctx, id, &blob, fmt.Errorf("open: %w", os.ErrNotExist)) {
		t.Fatal("renamedBlob reports a rename when the name is current")
	}
}

// TestRepackSyncsBeforeRemoving: under FsyncOptimized, compaction makes
// the rename of a packed content durable (syncs the log) after its commit
// and before it removes the unpacked file, so a power failure cannot
// leave the row naming a removed file.
func TestRepackSyncsBeforeRemoving(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, t.TempDir(), Options{Fsync: FsyncOptimized})
	defer s.Close()
	a := newUser(t, s)
	r := rand.New(rand.NewPCG(20, 21))
	msg := attachmentMessage("durable\r\n", attachment{bin: randomBytes(r, 50000), line: 76, eol: "\r\n"})
	res, err := a.Append(ctx, "INBOX", []store.NewMessage{{Body: msg}})
	if err != nil {
		t.Fatal(err)
	}
	u := s.users[1]
	oldName := unpackStored(t, u, res.UIDs[0], msg)
	synced := false // a log sync after the rename committed, the old file still there
	testSyncLog = func() {
		var now string
		if err := u.db.QueryRow(`SELECT c.blob FROM contents c JOIN messages m ON m.content_id = c.id WHERE m.uid = ?`, res.UIDs[0]).Scan(&now); err != nil {
			return
		}
		if _, err := os.Stat(u.blobPath(oldName)); err == nil && now != oldName {
			synced = true
		}
	}
	defer func() { testSyncLog = nil }()
	if got, err := s.Compact(ctx, "u"); err != nil || got.FilesPacked != 1 {
		t.Fatalf("Compact = %+v, %v", got, err)
	}
	if !synced {
		t.Fatal("the unpacked file was removed without a log sync after the rename's commit")
	}
}

// FuzzPackBlocks: bodies built from blocks the fuzzer chooses (base64
// runs of any line length and line end, odd last lines, text, stray CR
// and LF) pack to files that read back exactly, or are not packed.
func FuzzPackBlocks(f *testing.F) {
	f.Add([]byte{0, 18, 200, 2, 1, 0, 1, 'h', 'i'}, uint16(1))
	f.Add([]byte{0, 3, 255, 0, 3, 255, 3, 0, 0, 0, 247, 90}, uint16(2))
	f.Fuzz(func(t *testing.T, spec []byte, seed uint16) {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		var body []byte
		for i := 0; i+3 <= len(spec) && len(body) < 1<<20; i += 3 {
			a, b := int(spec[i+1]), int(spec[i+2])
			switch spec[i] % 4 {
			case 0: // a base64 run: line length 4..1000, b lines' worth of bytes
				line, eol := 4*(1+a%250), "\r\n"
				if a >= 250 {
					eol = "\n"
				}
				body = append(body, base64Lines(randomBytes(r, (1+b)*line/4*3-b%3), line, eol)...)
			case 1: // a text line
				body = append(body, fmt.Sprintf("text %d %d\r\n", a, b)...)
			case 2: // an odd last line
				body = append(body, []string{"QR==\r\n", "Q===\r\n", "AB=C\r\n", "ABCD\r\n", "AB==\r\n", "ABC=\n"}[a%6]...)
			case 3: // stray line ends
				body = append(body, []string{"\r", "\n", "\r\n", "=\r\n", ""}[a%5]...)
			}
		}
		if len(body) > 0 {
			readPackedBack(t, body, r, 20)
		}
	})
}
