package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
)

// Defaults for ReaderOptions fields left zero.
const (
	DefaultMaxLine    = 64 << 10
	DefaultMaxLiteral = 64 << 20
	DefaultMaxDepth   = 32
)

// maxKeyNesting caps NOT/OR recursion in SEARCH (parentheses are bounded
// separately by MaxDepth) so that hostile input cannot grow the stack.
const maxKeyNesting = 1000

// ReaderOptions bounds what a Reader accepts. Zero fields take defaults.
type ReaderOptions struct {
	// MaxLine is the maximum number of bytes of command text, excluding
	// literal data, in one command. Exceeding it is fatal.
	MaxLine int
	// MaxLiteral bounds the literal data of one command: the size of each
	// APPEND message and the sum of all literals of the command. Literals
	// in other positions (strings) are also limited to MaxLine each.
	MaxLiteral int64
	// MaxDepth bounds parenthesis nesting (SEARCH groups).
	MaxDepth int
	// MaxRanges bounds the number of ranges in one sequence set.
	MaxRanges int
	// Continue is called when a synchronizing literal {n} has been
	// announced and accepted; it must write "+ ..." and flush. A non-nil
	// error aborts the command and is returned by ReadCommand.
	Continue func() error
}

// ParseError is a client protocol error. The server answers
// "Tag BAD Msg" (or "* BAD" when Tag is empty), or NO [TOOBIG] when TooBig
// is set; Msg may start with a response code such as "[BADCHARSET ...]".
// When Fatal is set the connection cannot be resynchronised and must be
// closed after answering. Otherwise the rest of the offending line has
// already been discarded and the next ReadCommand starts on a fresh line.
type ParseError struct {
	Tag    string
	Msg    string
	Fatal  bool
	TooBig bool
}

func (e *ParseError) Error() string {
	if e.Tag != "" {
		return "imap: " + e.Tag + ": " + e.Msg
	}
	return "imap: " + e.Msg
}

// Reader parses client commands from a buffered connection.
type Reader struct {
	br    *bufio.Reader
	opts  ReaderOptions
	n     int   // command text bytes consumed for the current command
	lit   int64 // literal bytes consumed for the current command
	tag   string
	done  bool // the final CRLF of the command has been consumed
	begun bool // at least one byte of the current command was read
	tok   []byte
	paren int // current parenthesis depth
	nest  int // current NOT/OR nesting
	// decode converts SEARCH strings from the command's CHARSET; nil
	// means pass through.
	decode func([]byte) ([]byte, error)
}

// NewReader returns a Reader over br.
func NewReader(br *bufio.Reader, opts ReaderOptions) *Reader {
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.MaxLiteral <= 0 {
		opts.MaxLiteral = DefaultMaxLiteral
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxRanges <= 0 {
		opts.MaxRanges = DefaultMaxRanges
	}
	return &Reader{br: br, opts: opts, tok: make([]byte, 0, 128)}
}

// abort carries an error out of the recursive-descent parser; it is
// recovered in ReadCommand and never escapes the package.
type abort struct{ err error }

func (r *Reader) fail(format string, args ...any) {
	panic(abort{&ParseError{Msg: fmt.Sprintf(format, args...)}})
}

func (r *Reader) failErr(e *ParseError) { panic(abort{e}) }

func (r *Reader) ioFail(err error) {
	if err == io.EOF && r.begun {
		err = io.ErrUnexpectedEOF
	}
	panic(abort{err})
}

func (r *Reader) tooLong() {
	r.failErr(&ParseError{Msg: "command line too long", Fatal: true})
}

func (r *Reader) count(k int) {
	r.n += k
	if r.n > r.opts.MaxLine {
		r.tooLong()
	}
}

// peek returns the next byte without consuming it.
func (r *Reader) peek() byte {
	b, err := r.br.Peek(1)
	if err != nil {
		r.ioFail(err)
	}
	return b[0]
}

// next consumes one byte of command text.
func (r *Reader) next() byte {
	c, err := r.br.ReadByte()
	if err != nil {
		r.ioFail(err)
	}
	r.begun = true
	r.count(1)
	return c
}

// expect consumes c or fails.
func (r *Reader) expect(c byte, what string) {
	if r.peek() != c {
		r.fail("expected %s", what)
	}
	r.next()
}

func (r *Reader) sp() { r.expect(' ', "SP") }

// crlf consumes a line end (CRLF; a bare LF is tolerated).
func (r *Reader) crlf() {
	switch r.peek() {
	case '\r':
		r.next()
		if r.peek() != '\n' {
			r.fail("expected LF after CR")
		}
		r.next()
	case '\n':
		r.next()
	default:
		r.fail("expected end of line")
	}
}

// end consumes the command's final CRLF.
func (r *Reader) end() {
	r.crlf()
	r.done = true
}

func (r *Reader) atEOL() bool {
	c := r.peek()
	return c == '\r' || c == '\n'
}

// Character classes.
const (
	cAtom    uint8 = 1 << iota // ATOM-CHAR
	cAString                   // ASTRING-CHAR (+ 8-bit, tolerated)
	cList                      // list-char (+ 8-bit)
	cTag                       // tag char
	cDigit
	cSeq  // sequence-set chars
	cName // FETCH/STORE item names, section specifiers
	cB64  // base64
)

var charClass = func() (t [256]uint8) {
	for c := 0x21; c < 0x7f; c++ {
		switch c {
		case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		default:
			t[c] |= cAtom | cAString | cList | cTag
		}
	}
	t[']'] |= cAString | cList | cTag
	t['+'] &^= cTag
	t['%'] |= cList
	t['*'] |= cList
	for c := 0x80; c < 0x100; c++ {
		t[c] |= cAString | cList
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cSeq | cName | cB64
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cName | cB64
		t[c+'a'-'A'] |= cName | cB64
	}
	t['.'] |= cName
	t['-'] |= cName
	for _, c := range []byte(":,*$") {
		t[c] |= cSeq
	}
	for _, c := range []byte("+/=") {
		t[c] |= cB64
	}
	return t
}()

// token consumes the longest run of bytes in class mask into the scratch
// buffer and returns it (valid until the next token call).
func (r *Reader) token(mask uint8) []byte {
	r.tok = r.tok[:0]
	for {
		if _, err := r.br.Peek(1); err != nil {
			r.ioFail(err)
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		i := 0
		for i < len(buf) && charClass[buf[i]]&mask != 0 {
			i++
		}
		if i > 0 {
			r.begun = true
			r.count(i)
			r.tok = append(r.tok, buf[:i]...)
			r.br.Discard(i)
		}
		if i < len(buf) {
			return r.tok
		}
	}
}

// word consumes a non-empty token and upper-cases it in place.
func (r *Reader) word(mask uint8, what string) []byte {
	t := r.token(mask)
	if len(t) == 0 {
		r.fail("expected %s", what)
	}
	upper(t)
	return t
}

func upper(b []byte) {
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
}

// number parses 1*DIGIT no larger than max.
func (r *Reader) number(max uint64) uint64 {
	t := r.token(cDigit)
	if len(t) == 0 {
		r.fail("expected number")
	}
	var n uint64
	for _, c := range t {
		d := uint64(c - '0')
		if n > (max-d)/10 {
			r.fail("number out of range")
		}
		n = n*10 + d
	}
	return n
}

const (
	maxUint32 = 1<<32 - 1
	maxUint63 = 1<<63 - 1
)

func (r *Reader) nzNumber32() uint32 {
	n := r.number(maxUint32)
	if n == 0 {
		r.fail("number must not be zero")
	}
	return uint32(n)
}

// seqSet parses a sequence-set (or "$").
func (r *Reader) seqSet() NumSet {
	t := r.token(cSeq)
	if len(t) == 0 {
		r.fail("expected sequence set")
	}
	s, err := parseNumSet(t, r.opts.MaxRanges)
	if err != nil {
		r.fail("%v", err)
	}
	return s
}

// quotedBytes parses a quoted string into the scratch buffer.
func (r *Reader) quotedBytes() []byte {
	r.expect('"', "quoted string")
	r.tok = r.tok[:0]
	for {
		c := r.peek()
		switch c {
		case '\r', '\n':
			r.fail("unterminated quoted string")
		case 0:
			r.fail("NUL in quoted string")
		case '"':
			r.next()
			return r.tok
		case '\\':
			r.next()
			c = r.peek()
			if c != '"' && c != '\\' {
				r.fail("invalid escape in quoted string")
			}
		}
		r.next()
		r.tok = append(r.tok, c)
	}
}

// literal parses a literal (or literal8 when binary is allowed) including
// its header and data. limit bounds this literal's size.
func (r *Reader) literal(limit int64, allowBinary bool) (data []byte, binary bool) {
	if r.peek() == '~' {
		if !allowBinary {
			r.fail("literal8 not allowed here")
		}
		r.next()
		binary = true
	}
	r.expect('{', "literal")
	// Parse the size by hand: an overflowing size must still be reported
	// as TOOBIG (fatal for a non-synchronizing literal) so that its data
	// is never read as commands.
	t := r.token(cDigit)
	if len(t) == 0 {
		r.fail("expected literal size")
	}
	var n int64
	for _, c := range t {
		if n > (maxUint63-9)/10 {
			n = maxUint63
			break
		}
		n = n*10 + int64(c-'0')
	}
	sync := true
	if r.peek() == '+' {
		r.next()
		sync = false
	}
	r.expect('}', "} in literal")
	if n > limit || n > r.opts.MaxLiteral-r.lit {
		r.failErr(&ParseError{Msg: "[TOOBIG] literal too big", TooBig: true, Fatal: !sync})
	}
	r.crlf()
	if sync && r.opts.Continue != nil {
		if err := r.opts.Continue(); err != nil {
			r.ioFail(fmt.Errorf("imap: literal continuation: %w", err))
		}
	}
	data = r.readData(n)
	r.lit += n
	if !binary && bytes.IndexByte(data, 0) >= 0 {
		r.fail("NUL in literal (use literal8)")
	}
	return data, binary
}

// readData reads exactly n bytes of literal data. Memory grows with the
// data actually received, not with the announced size.
func (r *Reader) readData(n int64) []byte {
	const chunk = 1 << 20
	r.begun = true
	if n <= chunk {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.br, buf); err != nil {
			r.ioFail(eofUnexpected(err))
		}
		return buf
	}
	buf := make([]byte, 0, chunk)
	for int64(len(buf)) < n {
		k := min(n-int64(len(buf)), chunk)
		off := len(buf)
		buf = slices.Grow(buf, int(k))[:off+int(k)]
		if _, err := io.ReadFull(r.br, buf[off:]); err != nil {
			r.ioFail(eofUnexpected(err))
		}
	}
	return buf
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// stringBytes parses string (quoted or literal). The result may alias the
// scratch buffer.
func (r *Reader) stringBytes() []byte {
	switch r.peek() {
	case '"':
		return r.quotedBytes()
	case '{':
		b, _ := r.literal(int64(r.opts.MaxLine), false)
		return b
	}
	r.fail("expected string")
	return nil
}

// astringBytes parses astring. The result may alias the scratch buffer.
func (r *Reader) astringBytes() []byte {
	switch r.peek() {
	case '"', '{':
		return r.stringBytes()
	}
	t := r.token(cAString)
	if len(t) == 0 {
		r.fail("expected astring")
	}
	return t
}

func (r *Reader) astring() string { return string(r.astringBytes()) }

// nstring parses NIL or string.
func (r *Reader) nstring() *string {
	switch r.peek() {
	case '"', '{':
		s := string(r.stringBytes())
		return &s
	}
	t := r.word(cAtom, "nstring")
	if string(t) != "NIL" {
		r.fail("expected NIL or string")
	}
	return nil
}

// listMailbox parses list-mailbox: 1*list-char / string.
func (r *Reader) listMailbox() string {
	switch r.peek() {
	case '"', '{':
		return string(r.stringBytes())
	}
	t := r.token(cList)
	if len(t) == 0 {
		r.fail("expected mailbox pattern")
	}
	return string(t)
}

// flag parses a flag: "\" atom or atom (keyword).
func (r *Reader) flag() string {
	if r.peek() == '\\' {
		r.next()
		if r.peek() == '*' {
			r.fail(`\* is not a valid flag here`)
		}
		t := r.token(cAtom)
		if len(t) == 0 {
			r.fail("expected flag")
		}
		b := make([]byte, 0, len(t)+1)
		return string(append(append(b, '\\'), t...))
	}
	t := r.token(cAtom)
	if len(t) == 0 {
		r.fail("expected flag")
	}
	return string(t)
}

// flagList parses "(" [flag *(SP flag)] ")".
func (r *Reader) flagList() []string {
	r.expect('(', "(")
	flags := []string{}
	if r.peek() == ')' {
		r.next()
		return flags
	}
	for {
		flags = append(flags, r.flag())
		if r.peek() == ')' {
			r.next()
			return flags
		}
		r.sp()
	}
}

// atomList parses "(" [atom *(SP atom)] ")" upper-casing each atom.
func (r *Reader) atomList(allowEmpty bool) []string {
	r.expect('(', "(")
	var out []string
	if r.peek() == ')' {
		if !allowEmpty {
			r.fail("empty list")
		}
		r.next()
		return []string{}
	}
	for {
		out = append(out, string(r.word(cAtom, "atom")))
		if r.peek() == ')' {
			r.next()
			return out
		}
		r.sp()
	}
}

// discardLine skips the rest of the current line. When the line ends with
// a non-synchronizing literal header, the literal data (which the client
// sends without waiting) and the continuation of the line are skipped too.
// A synchronizing literal header ends the skip: the client waits for a
// continuation that is never sent and sees the tagged error instead.
func (r *Reader) discardLine() error {
	const (
		stNone = iota
		stDigits
		stPlus
		stSync
		stNonSync
	)
	st := stNone
	var n int64
	overflow := false
	for {
		buf, err := r.br.ReadSlice('\n')
		for _, c := range buf {
			switch {
			case c == '{':
				st, n, overflow = stDigits, 0, false
			case st == stDigits && '0' <= c && c <= '9':
				if n > (maxUint63-9)/10 {
					overflow = true
				} else {
					n = n*10 + int64(c-'0')
				}
			case st == stDigits && c == '+':
				st = stPlus
			case st == stDigits && c == '}':
				st = stSync
			case st == stPlus && c == '}':
				st = stNonSync
			case (st == stSync || st == stNonSync) && (c == '\r' || c == '\n'):
			default:
				st = stNone
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return eofUnexpected(err)
		}
		if st != stNonSync {
			return nil
		}
		if overflow || n > r.opts.MaxLiteral {
			return &ParseError{Tag: r.tag, Msg: "[TOOBIG] literal too big", TooBig: true, Fatal: true}
		}
		if _, err := r.br.Discard(int(n)); err != nil {
			return eofUnexpected(err)
		}
		st = stNone
	}
}

// ReadLine reads one line (an AUTHENTICATE response or IDLE's "DONE")
// without its line end. Lines longer than MaxLine give a fatal
// *ParseError.
func (r *Reader) ReadLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(line)+len(chunk) > r.opts.MaxLine+2 {
			return nil, &ParseError{Msg: "line too long", Fatal: true}
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		break
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// Reset makes the Reader read from br, dropping scratch buffers, so an idle
// connection can give its buffers back (br may be nil while idle).
func (r *Reader) Reset(br *bufio.Reader) {
	r.br = br
	r.tok = nil
}
