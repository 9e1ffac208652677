package crashtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// client is a minimal raw IMAP client: one command at a time, exact bytes.
type client struct {
	nc  net.Conn
	br  *bufio.Reader
	tag int
}

func dial(addr string) (*client, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client{nc: nc, br: bufio.NewReader(nc)}
	l, err := c.readLine()
	if err != nil {
		nc.Close()
		return nil, err
	}
	if !strings.HasPrefix(l, "* OK") {
		nc.Close()
		return nil, fmt.Errorf("greeting %q", l)
	}
	return c, nil
}

func (c *client) close() { c.nc.Close() }

func (c *client) readLine() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := c.br.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		return l, fmt.Errorf("line without CRLF: %q", l)
	}
	return l[:len(l)-2], nil
}

// response is one response line with its literals inlined: Text holds the
// line with each literal replaced by "{n}" and Lits the literal bytes.
type response struct {
	Text string
	Lits [][]byte
}

func (c *client) readResponse() (response, error) {
	var r response
	l, err := c.readLine()
	if err != nil {
		return r, err
	}
	for {
		r.Text += l
		if !strings.HasSuffix(l, "}") {
			return r, nil
		}
		i := strings.LastIndexByte(l, '{')
		if i < 0 {
			return r, nil
		}
		n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
		if err != nil {
			return r, nil
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.br, buf); err != nil {
			return r, err
		}
		r.Lits = append(r.Lits, buf)
		if l, err = c.readLine(); err != nil {
			return r, err
		}
	}
}

func (c *client) nextTag() string {
	c.tag++
	return "t" + strconv.Itoa(c.tag)
}

// do sends a command and returns the untagged responses and the tagged
// status line (without the tag).
func (c *client) do(cmd string) ([]response, string, error) {
	tag := c.nextTag()
	if _, err := io.WriteString(c.nc, tag+" "+cmd+"\r\n"); err != nil {
		return nil, "", err
	}
	return c.readUntil(tag)
}

func (c *client) readUntil(tag string) ([]response, string, error) {
	var us []response
	for {
		r, err := c.readResponse()
		if err != nil {
			return us, "", err
		}
		if strings.HasPrefix(r.Text, tag+" ") {
			return us, r.Text[len(tag)+1:], nil
		}
		us = append(us, r)
	}
}

var errNotOK = errors.New("command not OK")

// ok runs cmd and requires a tagged OK.
func (c *client) ok(cmd string) ([]response, string, error) {
	us, st, err := c.do(cmd)
	if err == nil && !strings.HasPrefix(st, "OK") {
		err = fmt.Errorf("%w: %s: %s", errNotOK, cmd, st)
	}
	return us, st, err
}

func (c *client) login(user, pass string) error {
	_, _, err := c.ok("LOGIN " + user + " " + pass)
	return err
}

// appendMsg appends body to mailbox (with a synchronizing or, when
// nonSync, a LITERAL+ literal) and returns the tagged status.
func (c *client) appendMsg(mailbox, flags string, body []byte, nonSync bool) (string, error) {
	tag := c.nextTag()
	plus := ""
	if nonSync {
		plus = "+"
	}
	if flags != "" {
		flags = " (" + flags + ")"
	}
	if _, err := fmt.Fprintf(c.nc, "%s APPEND %s%s {%d%s}\r\n", tag, mailbox, flags, len(body), plus); err != nil {
		return "", err
	}
	if !nonSync {
		l, err := c.readLine()
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(l, "+") {
			if strings.HasPrefix(l, tag+" ") {
				return l[len(tag)+1:], nil
			}
			return "", fmt.Errorf("APPEND: expected continuation, got %q", l)
		}
	}
	if _, err := c.nc.Write(append(body[:len(body):len(body)], '\r', '\n')); err != nil {
		return "", err
	}
	_, st, err := c.readUntil(tag)
	return st, err
}

var (
	appendUIDRe = regexp.MustCompile(`^OK \[APPENDUID (\d+) (\d+)\]`)
	copyUIDRe   = regexp.MustCompile(`^OK \[COPYUID (\d+) (\S+) (\S+)\]`)
	uidValRe    = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	uidNextRe   = regexp.MustCompile(`UIDNEXT (\d+)`)
)

// expandSet expands a UID set like "1:3,7" in order.
func expandSet(s string) ([]uint32, error) {
	var out []uint32
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil, err
			}
		}
		if a <= b {
			for x := a; x <= b; x++ {
				out = append(out, uint32(x))
			}
		} else {
			for x := a; x >= b; x-- {
				out = append(out, uint32(x))
			}
		}
	}
	return out, nil
}

// fetched is one message of a FETCH (UID FLAGS BODY.PEEK[]) response.
type fetched struct {
	uid   uint32
	flags []string
	body  []byte
}

var (
	fetchUIDRe   = regexp.MustCompile(`[( ]UID (\d+)`)
	fetchFlagsRe = regexp.MustCompile(`FLAGS \(([^)]*)\)`)
)

// parseFetch extracts UID, FLAGS and BODY[] from "* n FETCH (...)" lines.
func parseFetch(us []response) ([]fetched, error) {
	var out []fetched
	for _, r := range us {
		if !strings.HasPrefix(r.Text, "* ") || !strings.Contains(r.Text, " FETCH (") {
			continue
		}
		m := fetchUIDRe.FindStringSubmatch(r.Text)
		if m == nil {
			return nil, fmt.Errorf("FETCH without UID: %q", r.Text)
		}
		uid, _ := strconv.ParseUint(m[1], 10, 32)
		f := fetched{uid: uint32(uid)}
		if fm := fetchFlagsRe.FindStringSubmatch(r.Text); fm != nil && fm[1] != "" {
			f.flags = strings.Fields(fm[1])
		}
		if !strings.Contains(r.Text, "BODY[] {") || len(r.Lits) != 1 {
			return nil, fmt.Errorf("FETCH without one BODY[] literal: %q", r.Text)
		}
		f.body = r.Lits[0]
		out = append(out, f)
	}
	return out, nil
}
