package sqlite

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	simdBase64 "github.com/segmentio/asm/base64"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// Packed body files: base64 stored decoded.
//
// Most of the bytes of large mail are base64 attachments: four
// characters for every three bytes, and a CRLF after every line. A body
// file is written "packed" when its base64 runs can be re-encoded
// exactly: each run is stored as the bytes it encodes, and a read
// encodes them again. Only runs in the canonical shape are packed (every
// line but the last of one length, a multiple of four; the last padded
// as an encoder pads it), and each is decoded and encoded again before
// the file is written, so what a read returns is byte for byte what was
// received. Dovecot's attachment store (mail_attachment_dir) decodes
// base64 attachments the same way.
//
// Layout: packMagic, then the number of segments and for each its line
// length (0 for bytes stored as they are) and its stored length, all
// uvarints, then the segments' stored bytes in order. A packed file's
// blob name ends in packedSuffix (never a hex digit), so whether a file
// is packed is known without reading it.
const (
	packMagic    = "tern packed body 1\n"
	packedSuffix = "p"

	// packMinRun is the smallest base64 run worth a segment (encoded
	// bytes), packMinLine the shortest line taken as base64, and
	// packMinSaving what packing must save for a file to be packed: below
	// it, re-encoding on every read costs more than the disk it saves.
	packMinRun    = 1024
	packMinLine   = 16
	packMinSaving = 4096
	// packMaxLine is the longest line a run may have: the longest
	// multiple of four within RFC 5322's 998 (base64 encoders write 76).
	packMaxLine = 996
	// packMaxSegments bounds the header a reader accepts.
	packMaxSegments = 1 << 16
)

// isPacked reports whether blob name names a packed body file.
func isPacked(name string) bool { return strings.HasSuffix(name, packedSuffix) }

// packSegment is one piece of a packed body: bytes stored as they are
// (line 0) or a base64 run stored decoded, whose lines have line
// characters each (the last maybe fewer), every one followed by CRLF.
type packSegment struct {
	line   int
	stored int64 // bytes in the file
	off    int64 // where the segment starts in the message
	at     int64 // where its bytes start in the file
}

// size is the segment's length in the message.
func (s packSegment) size() int64 {
	if s.line == 0 {
		return s.stored
	}
	return encodedRunSize(s.stored, s.line)
}

// encodedRunSize is the length of n bytes encoded in base64 lines of
// line characters, each followed by CRLF.
func encodedRunSize(n int64, line int) int64 {
	perLine := int64(line / 4 * 3)
	full, rest := n/perLine, n%perLine
	size := full * int64(line+2)
	if rest > 0 {
		size += int64(base64.StdEncoding.EncodedLen(int(rest))) + 2
	}
	return size
}

// appendRun appends bin encoded as base64 lines of line characters, each
// followed by CRLF, to dst. The full lines are encoded in one piece
// (SIMD where the CPU has it) at the end of their place in dst, then
// moved forward line by line, each leaving room for its CRLF: line i
// lands at i*(line+2), and the lines after it, still to move, start at
// 2*full+(i+1)*line or later, past where line i and its CRLF end.
func appendRun(dst, bin []byte, line int) []byte {
	perLine := line / 4 * 3
	full := len(bin) / perLine
	at := len(dst)
	dst = slices.Grow(dst, int(encodedRunSize(int64(len(bin)), line)))[:at+full*(line+2)]
	run := dst[at:]
	simdBase64.StdEncoding.Encode(run[2*full:], bin[:full*perLine])
	for i := range full {
		out := run[i*(line+2):]
		copy(out[:line], run[2*full+i*line:])
		out[line], out[line+1] = '\r', '\n'
	}
	if rest := bin[full*perLine:]; len(rest) > 0 {
		dst = append(base64.StdEncoding.AppendEncode(dst, rest), '\r', '\n')
	}
	return dst
}

// encodeLine appends bin in base64 to dst, padded.
func encodeLine(dst, bin []byte) []byte {
	if len(bin)%3 != 0 {
		return base64.StdEncoding.AppendEncode(dst, bin)
	}
	at := len(dst)
	dst = slices.Grow(dst, len(bin)/3*4)[:at+len(bin)/3*4]
	encodeBase64(dst[at:], bin)
	return dst
}

// encodeSix is the eight base64 characters of the top six bytes of v,
// the first in the low byte.
func encodeSix(v uint64) uint64 {
	return uint64(base64Pairs[v>>52]) | uint64(base64Pairs[v>>40&0xfff])<<16 |
		uint64(base64Pairs[v>>28&0xfff])<<32 | uint64(base64Pairs[v>>16&0xfff])<<48
}

// base64Pairs maps twelve bits to their two base64 characters (the first
// in the low byte).
var base64Pairs = func() (t [4096]uint16) {
	for i := range t {
		t[i] = uint16(base64Chars[i>>6]) | uint16(base64Chars[i&63])<<8
	}
	return t
}()

// encodeBase64 encodes src, whose length is a multiple of three, into
// the len(src)/3*4 bytes of dst: standard base64, two characters per
// table lookup, sixteen per step where it can (about three times
// encoding/base64's speed on 57-byte lines here; the reads of packed
// bodies spend their time encoding).
func encodeBase64(dst, src []byte) {
	for len(src) >= 14 && len(dst) >= 16 { // two steps at once
		binary.LittleEndian.PutUint64(dst, encodeSix(binary.BigEndian.Uint64(src)))
		binary.LittleEndian.PutUint64(dst[8:], encodeSix(binary.BigEndian.Uint64(src[6:])))
		src, dst = src[12:], dst[16:]
	}
	for len(src) >= 8 {
		binary.LittleEndian.PutUint64(dst, encodeSix(binary.BigEndian.Uint64(src)))
		src, dst = src[6:], dst[8:]
	}
	for len(src) >= 3 {
		v := uint(src[0])<<16 | uint(src[1])<<8 | uint(src[2])
		binary.LittleEndian.PutUint16(dst, base64Pairs[v>>12])
		binary.LittleEndian.PutUint16(dst[2:], base64Pairs[v&0xfff])
		src, dst = src[3:], dst[4:]
	}
}

// b64Run is a stretch of a message, [start, end), that is base64 lines
// of line characters (the last maybe fewer), each ending in CRLF.
type b64Run struct {
	start, end, line int
}

// base64Chars is the standard base64 alphabet, in order.
const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// base64Alphabet marks the characters of the base64 alphabet (not '=').
var base64Alphabet = func() (t [256]bool) {
	for _, c := range []byte(base64Chars) {
		t[c] = true
	}
	return t
}()

// strictBase64 decodes standard base64 and refuses stray bits in the
// padding, so that what it accepts encodes back to the same characters.
var strictBase64 = base64.StdEncoding.Strict()

// base64Line classifies line (without its CRLF): full if it is a
// multiple of four base64 characters with no padding, last if it could
// end a run (a multiple of four, padded with at most two '=').
func base64Line(line []byte) (full, last bool) {
	if len(line) == 0 || len(line)%4 != 0 {
		return false, false
	}
	body := bytes.TrimRight(line, "=")
	if len(line)-len(body) > 2 {
		return false, false
	}
	for _, c := range body {
		if !base64Alphabet[c] {
			return false, false
		}
	}
	return len(body) == len(line), true
}

// base64Runs finds the runs of body that may be stored decoded: at least
// packMinRun bytes of lines of one length (packMinLine or more), the last
// maybe shorter, each ending in CRLF. decodeRun checks each line.
func base64Runs(body []byte) []b64Run {
	var runs []b64Run
	cur := b64Run{start: -1}
	closeRun := func(end int) {
		if cur.start >= 0 && end-cur.start >= packMinRun {
			runs = append(runs, b64Run{cur.start, end, cur.line})
		}
		cur.start = -1
	}
	i := 0
	for i < len(body) {
		nl := bytes.IndexByte(body[i:], '\n')
		if nl < 0 {
			break
		}
		end := i + nl + 1
		if nl == 0 || body[end-2] != '\r' {
			closeRun(i)
			i = end
			continue
		}
		line := body[i : end-2]
		full, last := base64Line(line)
		switch {
		case cur.start >= 0 && full && len(line) == cur.line:
			// the run goes on
		case cur.start >= 0 && last && len(line) <= cur.line:
			closeRun(end) // the run's last line
		case full && len(line) >= packMinLine && len(line) <= packMaxLine:
			closeRun(i)
			cur = b64Run{start: i, line: len(line)}
		default:
			closeRun(i)
		}
		i = end
	}
	closeRun(i) // a last line without LF is not part of a run
	return runs
}

// decodeRun appends to dst the bytes the run enc (lines of line
// characters, each ending in CRLF; the last maybe shorter) encodes, line
// by line, as long as each line decodes strictly and encodes back to
// itself, and returns dst and the length of enc so taken (whole lines).
func decodeRun(dst, enc []byte, line int) ([]byte, int) {
	var back [packMaxLine]byte
	n := 0
	for n < len(enc) {
		nl := bytes.IndexByte(enc[n:], '\n')
		if nl < 2 {
			break
		}
		end := n + nl + 1
		text := enc[n : end-2]
		at := len(dst)
		dst = slices.Grow(dst, len(text)/4*3)[:at+len(text)/4*3]
		k, err := strictBase64.Decode(dst[at:], text)
		dst = dst[:at+k]
		if err != nil || !bytes.Equal(encodeLine(back[:0], dst[at:]), text) {
			return dst[:at], n
		}
		n = end
		if len(text) < line || k < len(text)/4*3 {
			break // a short or padded line ends the run
		}
	}
	return dst, n
}

// packFile returns body packed, or nil when packing would not save
// packMinSaving bytes.
func packFile(body []byte) []byte {
	var segs []packSegment
	data := make([]byte, 0, len(body))
	addRaw := func(b []byte) {
		if len(b) == 0 {
			return
		}
		if i := len(segs) - 1; i >= 0 && segs[i].line == 0 {
			segs[i].stored += int64(len(b))
		} else {
			segs = append(segs, packSegment{stored: int64(len(b))})
		}
		data = append(data, b...)
	}
	pos, saved := 0, 0
	for _, r := range base64Runs(body) {
		if len(segs)+3 > packMaxSegments {
			break // a run adds two segments at most, the rest one
		}
		addRaw(body[pos:r.start])
		pos = r.start
		before := len(data)
		var n int
		data, n = decodeRun(data, body[r.start:r.end], r.line)
		if n < packMinRun {
			data = data[:before] // kept as it is, with the raw bytes after it
			continue
		}
		segs = append(segs, packSegment{line: r.line, stored: int64(len(data) - before)})
		saved += n - (len(data) - before)
		pos = r.start + n
	}
	addRaw(body[pos:])
	if saved < packMinSaving {
		return nil
	}
	out := append(make([]byte, 0, len(packMagic)+len(segs)*8+len(data)), packMagic...)
	out = binary.AppendUvarint(out, uint64(len(segs)))
	for _, s := range segs {
		out = binary.AppendUvarint(out, uint64(s.line))
		out = binary.AppendUvarint(out, uint64(s.stored))
	}
	out = append(out, data...)
	// What a reader will make of it, checked with the reader's own code.
	if p, err := parsePackedTable(out, int64(len(out))); err != nil || p.size != int64(len(body)) {
		return nil
	}
	return out
}

// pack returns body packed, or nil when it is written as it is: packing
// would not pay, or the store keeps base64 (Options.KeepBase64).
func (u *userDB) pack(body []byte) []byte {
	if u.keepBase64 {
		return nil
	}
	return packFile(body)
}

// errBadPacked is returned for a packed body file whose header does not
// parse or does not match the file's length.
var errBadPacked = errors.New("damaged packed body file")

// packedFile is an open packed body file: ReadAt encodes base64 runs
// again as it reads.
type packedFile struct {
	f     *os.File
	segs  []packSegment
	size  int64
	parts []byte
}

// openPacked opens the packed body file at path.
func openPacked(path string) (*packedFile, error) {
	f, err := openBodyFile(path)
	if err != nil {
		return nil, err
	}
	p, err := readPackedHeader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// packHeadRead is how much of a packed file readPackedHeader reads first:
// the segment table of most files.
const packHeadRead = 4096

// headBuffers are the arrays readPackedHeader reads into, reused: every
// FETCH of a body kept in a packed file opens it.
var headBuffers = sync.Pool{New: func() any { return new([packHeadRead]byte) }}

// readPackedHeader reads the segment table of the packed file f and
// checks it against the file's length.
func readPackedHeader(f *os.File) (*packedFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	first := headBuffers.Get().(*[packHeadRead]byte) // parsePackedTable keeps nothing of it
	defer headBuffers.Put(first)
	head := first[:min(fi.Size(), packHeadRead)]
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, err
	}
	if n, k := packedCount(head); k > 0 {
		// Each entry is two uvarints of at most ten bytes.
		if need := int64(len(packMagic)+k) + int64(n)*20; need > int64(len(head)) {
			if head, err = readHead(f, fi.Size(), need); err != nil {
				return nil, err
			}
		}
	}
	p, err := parsePackedTable(head, fi.Size())
	if err != nil {
		return nil, err
	}
	p.f = f
	return p, nil
}

// packedCount reads the magic and the segment count at the start of
// head; k is the count's length in bytes, 0 if head does not start so.
func packedCount(head []byte) (n uint64, k int) {
	if !bytes.HasPrefix(head, []byte(packMagic)) {
		return 0, 0
	}
	n, k = binary.Uvarint(head[len(packMagic):])
	return n, max(k, 0)
}

// parsePackedTable reads the segment table at the start of head, the
// first bytes of a packed file of fileSize bytes, and checks it against
// that length.
func parsePackedTable(head []byte, fileSize int64) (*packedFile, error) {
	n, k := packedCount(head)
	// Each entry takes two bytes at least: a count the file cannot hold
	// is refused before anything is allocated for it.
	if k == 0 || n == 0 || n > packMaxSegments || int64(n)*2 > fileSize {
		return nil, errBadPacked
	}
	table := head[len(packMagic)+k:]
	p := &packedFile{segs: make([]packSegment, n)}
	var stored int64
	for i := range p.segs {
		line, k1 := binary.Uvarint(table)
		if k1 <= 0 {
			return nil, errBadPacked
		}
		size, k2 := binary.Uvarint(table[k1:])
		if k2 <= 0 || line%4 != 0 || line > packMaxLine || size == 0 || size > uint64(fileSize) {
			return nil, errBadPacked
		}
		table = table[k1+k2:]
		p.segs[i] = packSegment{line: int(line), stored: int64(size), off: p.size, at: stored}
		stored += int64(size)
		p.size += p.segs[i].size()
	}
	base := int64(len(head) - len(table))
	if base+stored != fileSize {
		return nil, errBadPacked
	}
	for i := range p.segs {
		p.segs[i].at += base
	}
	return p, nil
}

// readHead reads the first min(size, n) bytes of f.
func readHead(f *os.File, size, n int64) ([]byte, error) {
	head := make([]byte, min(size, n))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, err
	}
	return head, nil
}

func (p *packedFile) Size() int64   { return p.size }
func (p *packedFile) Parts() []byte { return p.parts }
func (p *packedFile) Close() error  { return p.f.Close() }

// ReadAt reads the message's bytes at off.
func (p *packedFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("packed body: negative offset")
	}
	n := 0
	for n < len(b) && off < p.size {
		s := p.segs[p.segmentAt(off)]
		want := min(int64(len(b)-n), s.off+s.size()-off)
		k, err := p.readSegment(s, b[n:n+int(want)], off-s.off)
		n += k
		off += int64(k)
		if err != nil {
			return n, err
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// segmentAt is the index of the segment holding message offset off.
func (p *packedFile) segmentAt(off int64) int {
	lo, hi := 0, len(p.segs)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if p.segs[mid].off <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// encodeScratch holds the buffers of one base64 read.
type encodeScratch struct{ bin, enc []byte }

var encodeScratchPool = sync.Pool{New: func() any { return new(encodeScratch) }}

// packChunk bounds the bytes one step of a read encodes.
const packChunk = 128 << 10

// readSegment fills b from segment s at rel bytes into it (b does not go
// past the segment's end).
func (p *packedFile) readSegment(s packSegment, b []byte, rel int64) (int, error) {
	if s.line == 0 {
		k, err := p.f.ReadAt(b, s.at+rel)
		if errors.Is(err, io.EOF) && k < len(b) {
			err = io.ErrUnexpectedEOF
		}
		return k, err
	}
	stride := int64(s.line + 2)
	perLine := int64(s.line / 4 * 3)
	chunkLines := max(1, packChunk/stride)
	sc := encodeScratchPool.Get().(*encodeScratch)
	defer encodeScratchPool.Put(sc)
	n := 0
	for n < len(b) {
		first := (rel + int64(n)) / stride
		lines := min(chunkLines, (rel+int64(len(b))-1)/stride-first+1)
		lo := first * perLine
		hi := min(s.stored, (first+lines)*perLine)
		sc.bin = growTo(sc.bin, int(hi-lo))
		if _, err := p.f.ReadAt(sc.bin, s.at+lo); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		sc.enc = appendRun(sc.enc[:0], sc.bin, s.line)
		n += copy(b[n:], sc.enc[rel+int64(n)-first*stride:])
	}
	return n, nil
}

// growTo returns b resized to n bytes, reusing its array when it can.
func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// packStoredFiles packs the body files stored unpacked (before schema
// version 19) where that saves space, textBatch contents per transaction
// on conn, and reports how many it packed and the bytes saved. Each
// packed file is written durably under a new name before its contents
// row is renamed to it; the old file is removed once the commit is on
// disk. A crash in between leaves only an unreferenced file (the new one
// before the commit, the old one after), which tern check --repair
// removes. Readers that looked up the old name just before see the file
// gone and look again (OpenBody, renamedBlob).
func (u *userDB) packStoredFiles(ctx context.Context, conn *sqldb.Conn) (packed int, saved int64, err error) {
	for last := int64(-1); ; {
		looked, n, s, err := u.packFileBatch(ctx, conn, &last)
		packed, saved = packed+n, saved+s
		if err != nil {
			return packed, saved, fmt.Errorf("pack body files: %w", err)
		}
		if looked == 0 {
			return packed, saved, nil
		}
	}
}

// packFileBatch packs the unpacked body files of the contents after id
// *last (at most textBatch), advancing *last; it reports how many
// contents it looked at, how many files it packed and the bytes saved.
func (u *userDB) packFileBatch(ctx context.Context, conn *sqldb.Conn, last *int64) (looked, packed int, saved int64, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, 0, err
	}
	defer tx.Rollback()
	type row struct {
		id   int64
		blob string
	}
	batch, err := collectRows(ctx, tx, func(rows *sqldb.Rows, r *row) error { return rows.Scan(&r.id, &r.blob) },
		`SELECT c.id, c.blob FROM contents c WHERE c.id > ? AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.content_id = c.id)
		ORDER BY c.id LIMIT ?`, *last, textBatch)
	if err != nil || len(batch) == 0 {
		return 0, 0, 0, err
	}
	var written, replaced []string
	defer func() {
		if err != nil {
			u.removeBlobs(written)
		}
	}()
	for _, r := range batch {
		*last = r.id
		name, n, err := u.packStoredFile(r.blob)
		if err != nil {
			return len(batch), 0, 0, err
		}
		if name == "" {
			continue
		}
		written = append(written, name)
		if _, err := tx.ExecContext(ctx, `UPDATE contents SET blob = ? WHERE id = ?`, name, r.id); err != nil {
			return len(batch), 0, 0, err
		}
		replaced = append(replaced, r.blob)
		saved += n
	}
	if err := u.syncBlobDirs(written); err != nil {
		return len(batch), 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return len(batch), 0, 0, err
	}
	// The old files go only once the rename is on disk: under
	// FsyncOptimized the commit may not be yet, and a power failure that
	// undid it would leave rows naming removed files.
	if u.fsync == FsyncOptimized {
		if err := u.syncLog(); err != nil {
			return len(batch), len(written), saved, fmt.Errorf("sync the log before removing packed files' originals: %w", err)
		}
	}
	if errs := u.removeBlobs(replaced); len(errs) > 0 && u.log != nil {
		u.log.Warn("remove body files replaced by packed copies", "user", u.name, "err", errors.Join(errs...))
	}
	return len(batch), len(written), saved, nil
}

// packStoredFile writes a packed copy of the unpacked body file of blob
// name, when packing saves space, and returns the new blob name ("" if
// none) and the bytes saved. A missing file is left to tern check.
func (u *userDB) packStoredFile(name string) (string, int64, error) {
	if isPacked(name) {
		return "", 0, nil
	}
	body, err := os.ReadFile(u.blobPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	p := u.pack(body)
	if p == nil {
		return "", 0, nil
	}
	packedName := randomHex(16) + packedSuffix
	if err := u.writeBlobFile(u.blobPath(packedName), p); err != nil {
		return "", 0, err
	}
	return packedName, int64(len(body) - len(p)), nil
}

// syncBlobDirs fsyncs the directories of the body files names.
func (u *userDB) syncBlobDirs(names []string) error {
	dirs := map[string]bool{}
	for _, n := range names {
		dirs[filepath.Dir(u.blobPath(n))] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// renamedBlob reports whether err says the body file of content id was
// not found and the content now names another file (tern check
// --compact packed it since *blob was read), setting *blob to that name:
// then opening it again finds the same message.
func (u *userDB) renamedBlob(ctx context.Context, id int64, blob *string, err error) bool {
	if !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	var now string
	if qerr := u.db.QueryRowContext(ctx, `SELECT blob FROM contents WHERE id = ?`, id).Scan(&now); qerr != nil || now == *blob {
		return false
	}
	*blob = now
	return true
}
