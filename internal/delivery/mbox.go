package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// mbox as mutt and Dovecot write it: messages start with a "From sender
// date" line after an empty line (or at the start of the file), body lines
// starting with "From " are quoted with '>', flags live in Status,
// X-Status and X-Keywords headers.

// mboxHidden are headers that carry mbox bookkeeping rather than message
// content; they are turned into flags (or dropped) on import, as Dovecot
// hides them.
var mboxHidden = []string{"status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "content-length"}

func isMboxFile(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [5]byte
	n, _ := io.ReadFull(f, b[:])
	return n == 0 || (n == 5 && string(b[:]) == "From ") // an empty file is an empty mailbox
}

// scanMboxTree lists the mbox files under dir (mutt/Dovecot layout: one
// file per mailbox, directories for hierarchy). A file named INBOX (any
// case) is the top folder; a ".mbox" suffix is dropped.
func scanMboxTree(dir string, mboxo bool) ([]srcFolder, error) {
	var out []srcFolder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir // .imap index directories and the like
			}
			return nil
		}
		if !d.Type().IsRegular() || !isMboxFile(p) {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		for i, s := range parts {
			parts[i] = decodeFolderName(s)
		}
		last := len(parts) - 1
		parts[last] = strings.TrimSuffix(parts[last], ".mbox")
		name := strings.Join(parts, "/")
		if strings.EqualFold(name, "INBOX") {
			name = ""
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f, err := mboxFolder(p, name, fi.Size(), mboxo)
		if err != nil {
			return err
		}
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b srcFolder) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func mboxFolder(p, name string, size int64, mboxo bool) (srcFolder, error) {
	each := func(fn func(srcMessage) error) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return readMbox(f, mboxo, fn)
	}
	return srcFolder{name: name, count: -1, bytes: size, each: each}, nil
}

// readMbox calls fn for each message of an mbox stream.
func readMbox(r io.Reader, mboxo bool, fn func(srcMessage) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		cur     *bytes.Buffer
		date    time.Time
		raw     int64
		prevEOL = true // previous line was empty (or start of file)
	)
	emit := func() error {
		if cur == nil {
			return nil
		}
		b := cur.Bytes()
		// The empty line before the next "From " belongs to the separator.
		if bytes.HasSuffix(b, []byte("\n\n")) {
			b = b[:len(b)-1]
		} else if bytes.HasSuffix(b, []byte("\r\n\r\n")) {
			b = b[:len(b)-2]
		}
		body, flags := mboxHeaders(b)
		m := srcMessage{body: ToCRLF(body), flags: flags, date: date, size: raw}
		cur = nil
		return fn(m)
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A very long line: collect it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			isEmpty := len(bytes.TrimRight(line, "\r\n")) == 0
			if prevEOL && bytes.HasPrefix(line, []byte("From ")) {
				if err := emit(); err != nil {
					return err
				}
				cur = &bytes.Buffer{}
				date = parseFromLineDate(string(bytes.TrimRight(line, "\r\n")))
				raw = int64(len(line))
				prevEOL = false
			} else if cur != nil {
				raw += int64(len(line))
				cur.Write(unquoteFrom(line, mboxo))
				prevEOL = isEmpty
			} else {
				prevEOL = isEmpty // junk before the first message
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return emit()
}

// unquoteFrom removes the quoting of a body "From " line.
func unquoteFrom(line []byte, mboxo bool) []byte {
	if len(line) < 6 || line[0] != '>' {
		return line
	}
	if mboxo {
		if bytes.HasPrefix(line, []byte(">From ")) {
			return line[1:]
		}
		return line
	}
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	if bytes.HasPrefix(line[i:], []byte("From ")) {
		return line[1:]
	}
	return line
}

// fromDateLayouts are the date forms seen in "From " lines.
var fromDateLayouts = []string{
	time.ANSIC,                        // Mon Jan _2 15:04:05 2006
	"Mon Jan _2 15:04:05 2006 -0700",  // with a zone
	"Mon Jan _2 15:04:05 MST 2006",    // zone before the year
	"Mon Jan _2 15:04 2006",           // without seconds
	"Mon, _2 Jan 2006 15:04:05 -0700", // RFC 5322 style
}

// parseFromLineDate reads the date of "From sender date": the text after
// the sender (tried after each space, since a quoted sender may contain
// spaces). Dates without a zone are local time, as mutt and Dovecot write
// them. Zero if none parses.
func parseFromLineDate(line string) time.Time {
	rest := strings.TrimPrefix(line, "From ")
	for {
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			return time.Time{}
		}
		rest = strings.TrimLeft(rest[i+1:], " ")
		cand := strings.TrimSuffix(strings.TrimSpace(rest), " remote from")
		if j := strings.Index(cand, " remote from "); j >= 0 {
			cand = cand[:j]
		}
		for _, l := range fromDateLayouts {
			if t, err := time.ParseInLocation(l, cand, time.Local); err == nil {
				return t
			}
		}
	}
}

// mboxHeaders removes the mbox bookkeeping headers from the top header
// block and returns the message and the flags they carried.
func mboxHeaders(msg []byte) ([]byte, []string) {
	end := headerEnd(msg)
	hdr := msg[:end]
	var out bytes.Buffer
	var status, xstatus, keywords string
	skipping := false
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		var line []byte
		if i < 0 {
			line, hdr = hdr, nil
		} else {
			line, hdr = hdr[:i+1], hdr[i+1:]
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !skipping {
				out.Write(line)
			}
			continue
		}
		skipping = false
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok {
			n := strings.ToLower(string(bytes.TrimSpace(name)))
			if slices.Contains(mboxHidden, n) {
				skipping = true
				v := strings.TrimSpace(string(value))
				switch n {
				case "status":
					status += v
				case "x-status":
					xstatus += v
				case "x-keywords":
					keywords += " " + v
				}
				continue
			}
		}
		out.Write(line)
	}
	if out.Len() == end {
		return msg, nil // nothing removed
	}
	out.Write(msg[end:])
	var flags []string
	if strings.ContainsRune(status, 'R') {
		flags = append(flags, `\Seen`)
	}
	for _, f := range []struct {
		c    rune
		flag string
	}{{'A', `\Answered`}, {'F', `\Flagged`}, {'T', `\Draft`}, {'D', `\Deleted`}} {
		if strings.ContainsRune(xstatus, f.c) {
			flags = append(flags, f.flag)
		}
	}
	for _, k := range strings.FieldsFunc(keywords, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		if validKeyword(k) {
			flags = append(flags, k)
		}
	}
	return out.Bytes(), flags
}

// headerEnd returns the length of the header block including its
// terminating empty line (or len(msg) if there is none).
func headerEnd(msg []byte) int {
	if bytes.HasPrefix(msg, []byte("\n")) {
		return 1
	}
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	i := bytes.Index(msg, []byte("\n\n"))
	j := bytes.Index(msg, []byte("\n\r\n"))
	switch {
	case i < 0 && j < 0:
		return len(msg)
	case j < 0 || (i >= 0 && i < j):
		return i + 2
	}
	return j + 3
}
