package sieve

import (
	"fmt"
	"strings"
)

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tTag
	tNumber
	tString
	tLBracket
	tRBracket
	tComma
	tLParen
	tRParen
	tLBrace
	tRBrace
	tSemicolon
)

func (k tokKind) String() string {
	switch k {
	case tEOF:
		return "end of script"
	case tIdent:
		return "identifier"
	case tTag:
		return "tagged argument"
	case tNumber:
		return "number"
	case tString:
		return "string"
	case tLBracket:
		return `"["`
	case tRBracket:
		return `"]"`
	case tComma:
		return `","`
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tLBrace:
		return `"{"`
	case tRBrace:
		return `"}"`
	case tSemicolon:
		return `";"`
	}
	return "token"
}

// pos is a place in the script, 1-based.
type pos struct{ line, col int }

type token struct {
	kind tokKind
	pos  pos
	text string // identifier/tag name (lower case), string value
	num  uint64
}

// maxNumber is the largest number a script may write (RFC 5228 §2.4.1
// asks for at least 2^31-1; we allow 2^63-1 after the quantifier).
const maxNumber = 1<<63 - 1

// lexer splits a script into tokens (RFC 5228 §8.1).
type lexer struct {
	src  []byte
	i    int
	line int
	col  int
}

func newLexer(src []byte) *lexer { return &lexer{src: src, line: 1, col: 1} }

func (l *lexer) errorf(p pos, format string, args ...any) error {
	return &CompileError{Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) here() pos { return pos{l.line, l.col} }

// advance moves over n bytes, counting lines.
func (l *lexer) advance(n int) {
	for ; n > 0 && l.i < len(l.src); n-- {
		if l.src[l.i] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.i++
	}
}

// skipSpace skips white space and comments.
func (l *lexer) skipSpace() error {
	for l.i < len(l.src) {
		c := l.src[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.advance(1)
		case c == '#':
			for l.i < len(l.src) && l.src[l.i] != '\n' {
				l.advance(1)
			}
		case c == '/' && l.i+1 < len(l.src) && l.src[l.i+1] == '*':
			start := l.here()
			end := strings.Index(string(l.src[l.i+2:]), "*/")
			if end < 0 {
				return l.errorf(start, "unterminated comment")
			}
			l.advance(end + 4)
		default:
			return nil
		}
	}
	return nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

var punctuation = map[byte]tokKind{'[': tLBracket, ']': tRBracket, ',': tComma, '(': tLParen, ')': tRParen, '{': tLBrace, '}': tRBrace, ';': tSemicolon}

func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	p := l.here()
	if l.i >= len(l.src) {
		return token{kind: tEOF, pos: p}, nil
	}
	c := l.src[l.i]
	if k, ok := punctuation[c]; ok {
		l.advance(1)
		return token{kind: k, pos: p}, nil
	}
	switch {
	case c == '"':
		return l.quoted(p)
	case c == ':':
		l.advance(1)
		if l.i >= len(l.src) || !isIdentStart(l.src[l.i]) {
			return token{}, l.errorf(p, "expected a tag name after \":\"")
		}
		name := l.ident()
		return token{kind: tTag, pos: p, text: name}, nil
	case c >= '0' && c <= '9':
		return l.number(p)
	case isIdentStart(c):
		name := l.ident()
		if name == "text" && l.i < len(l.src) && l.src[l.i] == ':' {
			l.advance(1)
			return l.multiline(p)
		}
		return token{kind: tIdent, pos: p, text: name}, nil
	}
	return token{}, l.errorf(p, "unexpected character %q", rune(c))
}

func (l *lexer) ident() string {
	start := l.i
	for l.i < len(l.src) && isIdentChar(l.src[l.i]) {
		l.advance(1)
	}
	return strings.ToLower(string(l.src[start:l.i]))
}

func (l *lexer) number(p pos) (token, error) {
	var n uint64
	for l.i < len(l.src) && l.src[l.i] >= '0' && l.src[l.i] <= '9' {
		d := uint64(l.src[l.i] - '0')
		if n > (maxNumber-d)/10 {
			return token{}, l.errorf(p, "number too large")
		}
		n = n*10 + d
		l.advance(1)
	}
	if l.i < len(l.src) {
		shift := 0
		switch l.src[l.i] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
		if shift > 0 {
			if n > maxNumber>>shift {
				return token{}, l.errorf(p, "number too large")
			}
			n <<= shift
			l.advance(1)
		}
	}
	if l.i < len(l.src) && isIdentChar(l.src[l.i]) {
		return token{}, l.errorf(p, "bad number")
	}
	return token{kind: tNumber, pos: p, num: n}, nil
}

// quoted reads a quoted string: backslash escapes the next character
// (RFC 5228 §2.4.2: "\\" and "\"" are the defined ones; any other
// escaped character stands for itself).
func (l *lexer) quoted(p pos) (token, error) {
	l.advance(1)
	var b strings.Builder
	for {
		if l.i >= len(l.src) {
			return token{}, l.errorf(p, "unterminated string")
		}
		c := l.src[l.i]
		switch c {
		case '"':
			l.advance(1)
			return token{kind: tString, pos: p, text: b.String()}, nil
		case '\\':
			if l.i+1 >= len(l.src) {
				return token{}, l.errorf(p, "unterminated string")
			}
			b.WriteByte(l.src[l.i+1])
			l.advance(2)
		default:
			b.WriteByte(c)
			l.advance(1)
		}
	}
}

// multiline reads the rest of a "text:" string: optional white space or
// a comment up to the line end, then lines up to one holding only ".";
// a leading ".." stands for "." (dot-stuffing).
func (l *lexer) multiline(p pos) (token, error) {
	for l.i < len(l.src) && (l.src[l.i] == ' ' || l.src[l.i] == '\t') {
		l.advance(1)
	}
	if l.i < len(l.src) && l.src[l.i] == '#' {
		for l.i < len(l.src) && l.src[l.i] != '\n' {
			l.advance(1)
		}
	}
	if l.i < len(l.src) && l.src[l.i] == '\r' {
		l.advance(1)
	}
	if l.i >= len(l.src) || l.src[l.i] != '\n' {
		return token{}, l.errorf(p, "expected a line break after \"text:\"")
	}
	l.advance(1)
	var b strings.Builder
	for {
		if l.i >= len(l.src) {
			return token{}, l.errorf(p, "unterminated multi-line string (no line with a single \".\")")
		}
		end := l.i
		for end < len(l.src) && l.src[end] != '\n' {
			end++
		}
		line := l.src[l.i:end]
		content := line
		if len(content) > 0 && content[len(content)-1] == '\r' {
			content = content[:len(content)-1]
		}
		if string(content) == "." {
			l.advance(end - l.i + 1)
			return token{kind: tString, pos: p, text: b.String()}, nil
		}
		if len(content) >= 2 && content[0] == '.' && content[1] == '.' {
			content = content[1:]
		}
		b.Write(content)
		b.WriteString("\r\n")
		l.advance(end - l.i + 1)
	}
}
