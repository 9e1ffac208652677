package managesieve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// An arg is one argument of a command: an atom (a number, or a word such
// as a command name), or a string (quoted or a literal).
type arg struct {
	atom bool
	s    string
}

// command is one parsed client command.
type command struct {
	name string // upper case
	args []arg
}

// errSyntax is a command the parser rejected; the reader has skipped the
// rest of its line and the session goes on (answered NO).
type errSyntax struct{ msg string }

func (e errSyntax) Error() string { return e.msg }

// errTooLarge is a literal over the limit whose bytes were discarded;
// the rest of the line was skipped and the command is answered
// NO (QUOTA/MAXSIZE).
type errTooLarge struct{ size int64 }

func (e errTooLarge) Error() string { return fmt.Sprintf("literal of %d bytes is too large", e.size) }

// errFatal ends the session: a line or literal that cannot be skipped
// safely.
var errFatal = errors.New("protocol error")

// reader reads commands with bounds: MaxLine bytes of a command outside
// its literals, MaxLiteral bytes of one kept literal, at most
// MaxDiscard bytes of a literal that is skipped because it is too large.
type reader struct {
	br         *bufio.Reader
	maxLine    int
	maxLiteral int64
	maxDiscard int64
	maxArgs    int

	n int // bytes of the current command outside literals
}

// readByte reads one byte of the command line, counting it.
func (r *reader) readByte() (byte, error) {
	if r.n >= r.maxLine {
		return 0, errFatal
	}
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	r.n++
	return b, nil
}

func (r *reader) peek() (byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// skipLine discards the rest of the current line (within the line bound).
func (r *reader) skipLine() error {
	for {
		b, err := r.readByte()
		if err != nil {
			return err
		}
		if b == '\n' {
			return nil
		}
	}
}

// fail skips the rest of the line and returns a syntax error, or the
// error that prevented skipping.
func (r *reader) fail(format string, args ...any) error {
	if err := r.skipLine(); err != nil {
		return err
	}
	return errSyntax{fmt.Sprintf(format, args...)}
}

// readCommand reads one command. Empty lines are skipped. Errors: io
// errors and errFatal end the session; errSyntax and errTooLarge are
// answered with NO.
func (r *reader) readCommand() (*command, error) {
	r.n = 0
	for {
		b, err := r.peek()
		if err != nil {
			return nil, err
		}
		if b != '\r' && b != '\n' {
			break
		}
		if _, err := r.readByte(); err != nil {
			return nil, err
		}
	}
	name, err := r.readAtom()
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, r.fail("expected a command name")
	}
	cmd := &command{name: upper(name)}
	for {
		b, err := r.readByte()
		if err != nil {
			return nil, err
		}
		switch b {
		case '\n':
			return cmd, nil
		case '\r':
			if b, err = r.readByte(); err != nil {
				return nil, err
			}
			if b != '\n' {
				return nil, r.fail("CR without LF")
			}
			return cmd, nil
		case ' ':
		default:
			return nil, r.fail("expected a space between arguments")
		}
		if len(cmd.args) >= r.maxArgs {
			return nil, r.fail("too many arguments")
		}
		a, err := r.readArg()
		if err != nil {
			return nil, err
		}
		cmd.args = append(cmd.args, a)
	}
}

func (r *reader) readArg() (arg, error) {
	b, err := r.peek()
	if err != nil {
		return arg{}, err
	}
	if b == '"' || b == '{' {
		if _, err := r.readByte(); err != nil {
			return arg{}, err
		}
		var s string
		if b == '"' {
			s, err = r.readQuoted()
		} else {
			s, err = r.readLiteral()
		}
		return arg{s: s}, err
	}
	s, err := r.readAtom()
	if err != nil {
		return arg{}, err
	}
	if s == "" {
		return arg{}, r.fail("expected an argument")
	}
	return arg{atom: true, s: s}, nil
}

// readAtom reads letters, digits and the few other characters an atom
// may hold, up to a space or the end of the line.
func (r *reader) readAtom() (string, error) {
	var buf []byte
	for {
		b, err := r.peek()
		if err != nil {
			return "", err
		}
		if b <= ' ' || b >= 0x7f || b == '"' || b == '{' || b == '(' || b == ')' || b == '\\' {
			return string(buf), nil
		}
		if _, err := r.readByte(); err != nil {
			return "", err
		}
		buf = append(buf, b)
	}
}

// readQuoted reads a quoted string after its opening quote: UTF-8
// without CR, LF or NUL, with \" and \\ escapes.
func (r *reader) readQuoted() (string, error) {
	var buf []byte
	for {
		b, err := r.readByte()
		if err != nil {
			return "", err
		}
		switch b {
		case '"':
			if !utf8.Valid(buf) {
				return "", r.fail("quoted string is not UTF-8")
			}
			return string(buf), nil
		case '\\':
			if b, err = r.readByte(); err != nil {
				return "", err
			}
			if b != '"' && b != '\\' {
				return "", r.fail("invalid escape in quoted string")
			}
		case '\n':
			return "", errSyntax{"unterminated quoted string"}
		case '\r':
			return "", r.fail("unterminated quoted string")
		case 0:
			return "", r.fail("invalid character in quoted string")
		}
		buf = append(buf, b)
	}
}

// readLiteral reads a literal after its "{": "n}" or "n+}", CRLF, then n
// bytes. ManageSieve has no continuation request for literals, so both
// forms are read straight on.
func (r *reader) readLiteral() (string, error) {
	var digits []byte
	for {
		b, err := r.readByte()
		if err != nil {
			return "", err
		}
		if b >= '0' && b <= '9' && len(digits) < 18 {
			digits = append(digits, b)
			continue
		}
		if b == '+' {
			if b, err = r.readByte(); err != nil {
				return "", err
			}
		}
		if b != '}' || len(digits) == 0 {
			return "", r.fail("invalid literal")
		}
		break
	}
	for _, want := range []byte{'\r', '\n'} {
		b, err := r.readByte()
		if err != nil {
			return "", err
		}
		if b != want {
			if b == '\n' {
				return "", errSyntax{"literal size not followed by CRLF"}
			}
			return "", r.fail("literal size not followed by CRLF")
		}
	}
	size, _ := strconv.ParseInt(string(digits), 10, 64)
	if size > r.maxLiteral {
		if size > r.maxDiscard {
			return "", errFatal
		}
		if _, err := io.CopyN(io.Discard, r.br, size); err != nil {
			return "", err
		}
		if err := r.skipLine(); err != nil {
			return "", err
		}
		return "", errTooLarge{size}
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
