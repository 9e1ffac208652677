package sqlite

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
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
	// packMaxLine is the longest line a run may have: RFC 5322's limit
	// (base64 encoders write 76).
	packMaxLine = 998
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
// followed by CRLF, to dst.
func appendRun(dst, bin []byte, line int) []byte {
	perLine := line / 4 * 3
	for len(bin) > 0 {
		k := min(perLine, len(bin))
		dst = base64.StdEncoding.AppendEncode(dst, bin[:k])
		dst = append(dst, '\r', '\n')
		bin = bin[k:]
	}
	return dst
}

// b64Run is a stretch of a message, [start, end), that is base64 lines
// of line characters (the last maybe fewer), each ending in CRLF.
type b64Run struct {
	start, end, line int
}

// isBase64Char reports whether c is in the base64 alphabet (not '=').
func isBase64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}

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
		if !isBase64Char(c) {
			return false, false
		}
	}
	return len(body) == len(line), true
}

// base64Runs finds the runs of body that can be stored decoded: at least
// packMinRun bytes of lines of one length (packMinLine or more), each
// ending in CRLF, where decoding and encoding again gives the same bytes.
func base64Runs(body []byte) []b64Run {
	var runs []b64Run
	cur := b64Run{start: -1}
	closeRun := func(end int) {
		if cur.start >= 0 {
			if r, ok := verifiedRun(body, b64Run{cur.start, end, cur.line}); ok {
				runs = append(runs, r)
			}
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

// verifiedRun returns r if its bytes decode and encode back to
// themselves, or else r without its last line (which may be short or
// oddly padded) if that does; ok is false when neither does or the run
// is below packMinRun. Every line of r but the last is r.line + 2 bytes.
func verifiedRun(body []byte, r b64Run) (b64Run, bool) {
	if r.end-r.start >= packMinRun && roundTrips(body[r.start:r.end], r.line) {
		return r, true
	}
	stride := r.line + 2
	lines := (r.end - r.start + stride - 1) / stride
	r.end = r.start + (lines-1)*stride
	return r, r.end-r.start >= packMinRun && roundTrips(body[r.start:r.end], r.line)
}

// roundTrips reports whether enc, base64 lines of line characters with
// CRLFs, decodes (strictly) and encodes back to exactly enc.
func roundTrips(enc []byte, line int) bool {
	bin, err := base64.StdEncoding.Strict().AppendDecode(nil, enc)
	if err != nil {
		return false
	}
	return encodedRunSize(int64(len(bin)), line) == int64(len(enc)) &&
		bytes.Equal(appendRun(make([]byte, 0, len(enc)), bin, line), enc)
}

// packBody returns body packed, or nil when packing would not save
// packMinSaving bytes.
func packBody(body []byte) []byte {
	runs := base64Runs(body)
	saved := 0
	for _, r := range runs {
		saved += (r.end - r.start) / 4
	}
	if saved < packMinSaving {
		return nil
	}
	var segs []packSegment
	var data []byte
	pos := 0
	for _, r := range runs {
		if r.start > pos {
			segs = append(segs, packSegment{stored: int64(r.start - pos)})
			data = append(data, body[pos:r.start]...)
		}
		before := len(data)
		data, _ = base64.StdEncoding.AppendDecode(data, body[r.start:r.end])
		segs = append(segs, packSegment{line: r.line, stored: int64(len(data) - before)})
		pos = r.end
	}
	if pos < len(body) {
		segs = append(segs, packSegment{stored: int64(len(body) - pos)})
		data = append(data, body[pos:]...)
	}
	out := append(make([]byte, 0, len(packMagic)+len(segs)*8+len(data)), packMagic...)
	out = binary.AppendUvarint(out, uint64(len(segs)))
	for _, s := range segs {
		out = binary.AppendUvarint(out, uint64(s.line))
		out = binary.AppendUvarint(out, uint64(s.stored))
	}
	return append(out, data...)
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
	f, err := os.Open(path)
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

// readPackedHeader reads the segment table of the packed file f and
// checks it against the file's length.
func readPackedHeader(f *os.File) (*packedFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	head, err := readHead(f, fi.Size(), 4096)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(head, []byte(packMagic)) {
		return nil, errBadPacked
	}
	n, k := binary.Uvarint(head[len(packMagic):])
	if k <= 0 || n == 0 || n > packMaxSegments {
		return nil, errBadPacked
	}
	// Each entry is two uvarints of at most ten bytes.
	if need := int64(len(packMagic)+k) + int64(n)*20; need > int64(len(head)) {
		if head, err = readHead(f, fi.Size(), need); err != nil {
			return nil, err
		}
	}
	table := head[len(packMagic)+k:]
	p := &packedFile{f: f, segs: make([]packSegment, n)}
	var stored int64
	for i := range p.segs {
		line, k1 := binary.Uvarint(table)
		if k1 <= 0 {
			return nil, errBadPacked
		}
		size, k2 := binary.Uvarint(table[k1:])
		if k2 <= 0 || line%4 != 0 || line > packMaxLine || size == 0 || size > uint64(fi.Size()) {
			return nil, errBadPacked
		}
		table = table[k1+k2:]
		p.segs[i] = packSegment{line: int(line), stored: int64(size), off: p.size, at: stored}
		stored += int64(size)
		p.size += p.segs[i].size()
	}
	base := int64(len(head) - len(table))
	if base+stored != fi.Size() {
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
const packChunk = 32 << 10

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
