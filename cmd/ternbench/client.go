package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// client is a minimal raw IMAP client: it writes a command and reads
// responses until the tagged line, handling literals, and counts bytes.
// It does as little work as possible so the numbers measure the server.
type client struct {
	nc   net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tag  uint64
	caps map[string]bool

	bytesIn, bytesOut int64
	buf               []byte // the current logical response line (literals included)
}

// errNo is returned for a tagged NO or BAD.
type statusError struct {
	cmd, status, text string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %s %s", e.cmd, e.status, e.text)
}

type dialOpts struct {
	addr     string
	tls      bool
	insecure bool
	local    net.Addr // optional source address
}

func dial(ctx context.Context, o dialOpts) (*client, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: o.local}
	nc, err := d.DialContext(ctx, "tcp", o.addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", o.addr, err)
	}
	if o.tls {
		host, _, _ := net.SplitHostPort(o.addr)
		tc := tls.Client(nc, &tls.Config{ServerName: host, InsecureSkipVerify: o.insecure, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake %s: %w", o.addr, err)
		}
		nc = tc
	}
	c := &client{nc: nc}
	c.r = bufio.NewReaderSize(countingReader{nc, &c.bytesIn}, 64<<10)
	c.w = bufio.NewWriterSize(countingWriter{nc, &c.bytesOut}, 64<<10)
	line, err := c.readResponse()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !bytes.HasPrefix(line, []byte("* OK")) && !bytes.HasPrefix(line, []byte("* PREAUTH")) {
		nc.Close()
		return nil, fmt.Errorf("greeting: %q", line)
	}
	return c, nil
}

func (c *client) Close() error { return c.nc.Close() }

// readResponse reads one logical response (a line plus any literals and
// the lines continuing it) into c.buf and returns it without the final CRLF.
func (c *client) readResponse() ([]byte, error) {
	c.buf = c.buf[:0]
	for {
		line, err := c.r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			c.buf = append(c.buf, line...)
			line, err = c.r.ReadSlice('\n')
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		c.buf = append(c.buf, line...)
		n, ok := literalLen(c.buf)
		if !ok {
			return bytes.TrimRight(c.buf, "\r\n"), nil
		}
		start := len(c.buf)
		// Grown, not appended to: append(buf, make([]byte, n)...) cleared
		// every literal before reading into it (a sixth of the load
		// generator's CPU in the read workload).
		c.buf = slices.Grow(c.buf, n)[:start+n]
		if _, err := ioReadFull(c.r, c.buf[start:]); err != nil {
			return nil, fmt.Errorf("read literal: %w", err)
		}
	}
}

// countingReader and countingWriter count the bytes on the wire (after
// TLS decryption: the IMAP bytes).
type countingReader struct {
	r net.Conn
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

type countingWriter struct {
	w net.Conn
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

func ioReadFull(r *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// literalLen reports whether line ends with a literal announcement
// "{n}\r\n" (also "{n+}" and "~{n}") and its length.
func literalLen(line []byte) (int, bool) {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	num := l[i+1 : len(l)-1]
	num = bytes.TrimSuffix(num, []byte("+"))
	n, err := strconv.Atoi(string(num))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// nextTag returns a new tag.
func (c *client) nextTag() string {
	c.tag++
	return "a" + strconv.FormatUint(c.tag, 10)
}

// cmd sends a command and reads until its tagged response. untagged, if
// not nil, is called with each untagged response (the slice is reused).
func (c *client) cmd(untagged func([]byte), format string, args ...any) error {
	tag := c.nextTag()
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	if len(args) == 0 {
		c.w.WriteString(format)
	} else {
		fmt.Fprintf(c.w, format, args...)
	}
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return c.waitTagged(tag, format, untagged)
}

func (c *client) waitTagged(tag, what string, untagged func([]byte)) error {
	for {
		line, err := c.readResponse()
		if err != nil {
			return err
		}
		if len(line) > len(tag) && line[len(tag)] == ' ' && string(line[:len(tag)]) == tag {
			rest := line[len(tag)+1:]
			if bytes.HasPrefix(rest, []byte("OK")) {
				return nil
			}
			status, text, _ := strings.Cut(string(rest), " ")
			verb, _, _ := strings.Cut(what, " ")
			return &statusError{cmd: verb, status: status, text: text}
		}
		if untagged != nil && len(line) > 0 && line[0] == '*' {
			untagged(line)
		}
	}
}

// login authenticates with LOGIN and records the capabilities.
func (c *client) login(user, pass string) error {
	if err := c.cmd(nil, "LOGIN %s %s", quote(user), quote(pass)); err != nil {
		return err
	}
	return c.capability()
}

func (c *client) capability() error {
	c.caps = map[string]bool{}
	return c.cmd(func(l []byte) {
		if bytes.HasPrefix(l, []byte("* CAPABILITY ")) {
			for _, f := range strings.Fields(string(l[len("* CAPABILITY "):])) {
				c.caps[strings.ToUpper(f)] = true
			}
		}
	}, "CAPABILITY")
}

// selectInfo is what SELECT reported.
type selectInfo struct {
	exists  int
	uidNext uint32
}

func (c *client) selectMailbox(name string, readOnly bool) (selectInfo, error) {
	var si selectInfo
	verb := "SELECT"
	if readOnly {
		verb = "EXAMINE"
	}
	err := c.cmd(func(l []byte) {
		if n, ok := untaggedNum(l, "EXISTS"); ok {
			si.exists = n
		}
		if i := bytes.Index(l, []byte("[UIDNEXT ")); i >= 0 {
			s := l[i+len("[UIDNEXT "):]
			if j := bytes.IndexByte(s, ']'); j > 0 {
				if v, err := strconv.ParseUint(string(s[:j]), 10, 32); err == nil {
					si.uidNext = uint32(v)
				}
			}
		}
	}, "%s %s", verb, quote(name))
	return si, err
}

// untaggedNum parses "* <n> <word>..." and returns n.
func untaggedNum(l []byte, word string) (int, bool) {
	if len(l) < 4 || l[0] != '*' || l[1] != ' ' {
		return 0, false
	}
	rest := l[2:]
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:sp]))
	if err != nil {
		return 0, false
	}
	w := rest[sp+1:]
	if !bytes.HasPrefix(w, []byte(word)) || (len(w) > len(word) && w[len(word)] != ' ') {
		return 0, false
	}
	return n, true
}

// appendMsg appends one message (or several, MULTIAPPEND, when msgs has
// more than one) to mailbox. It uses LITERAL+ when the server offers it.
func (c *client) appendMsgs(mailbox string, flags string, msgs ...[]byte) error {
	tag := c.nextTag()
	nonSync := c.caps["LITERAL+"]
	c.w.WriteString(tag)
	c.w.WriteString(" APPEND ")
	c.w.WriteString(quote(mailbox))
	for i, m := range msgs {
		if flags != "" {
			c.w.WriteString(" (")
			c.w.WriteString(flags)
			c.w.WriteString(")")
		}
		plus := ""
		if nonSync {
			plus = "+"
		}
		fmt.Fprintf(c.w, " {%d%s}\r\n", len(m), plus)
		if !nonSync {
			if err := c.w.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			line, err := c.readResponse()
			if err != nil {
				return err
			}
			if len(line) == 0 || line[0] != '+' {
				return fmt.Errorf("append: no continuation: %q", line)
			}
		}
		c.w.Write(m)
		if i == len(msgs)-1 {
			c.w.WriteString("\r\n")
		}
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return c.waitTagged(tag, "APPEND", nil)
}

// idle starts IDLE and waits for the continuation.
func (c *client) idleStart() (string, error) {
	tag := c.nextTag()
	c.w.WriteString(tag + " IDLE\r\n")
	if err := c.w.Flush(); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	for {
		line, err := c.readResponse()
		if err != nil {
			return "", err
		}
		if len(line) > 0 && line[0] == '+' {
			return tag, nil
		}
		if bytes.HasPrefix(line, []byte(tag+" ")) {
			return "", fmt.Errorf("idle: %s", line)
		}
	}
}

// idleDone ends IDLE and reads until the tagged response.
func (c *client) idleDone(tag string, untagged func([]byte)) error {
	c.w.WriteString("DONE\r\n")
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return c.waitTagged(tag, "IDLE", untagged)
}

func (c *client) logout() error {
	err := c.cmd(nil, "LOGOUT")
	c.nc.Close()
	return err
}

// quote returns s as an IMAP quoted string.
func quote(s string) string {
	if !strings.ContainsAny(s, "\"\\") {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
