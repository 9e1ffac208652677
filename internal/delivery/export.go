package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/store"
)

// ExportOptions configures Export.
type ExportOptions struct {
	// Format is "maildir" (default; Dovecot's Maildir++ layout) or "mbox"
	// (mboxrd files, one per mailbox, as mutt and Dovecot read them).
	Format string
	// Progress, if set, is called about every 200ms and once at the end.
	Progress func(Progress)
}

// ExportStats summarizes an export.
type ExportStats struct {
	Messages  int
	Mailboxes int
	Bytes     int64 // bytes written
}

// Export writes all of acct's mailboxes under dir, which must not exist
// or be empty. Maildir: INBOX is dir itself (cur/new/tmp), other
// mailboxes ".A.B" (names in modified UTF-7); flags in file names,
// keywords in dovecot-keywords, UID order in dovecot-uidlist, the
// INTERNALDATE as the file's mtime and the name's timestamp. mbox: one
// file per mailbox at dir/A/B (dir/A/B.mbox when A/B also has children),
// "From " lines carrying the INTERNALDATE, flags in Status/X-Status/
// X-Keywords headers, body "From " lines quoted mboxrd-style.
func Export(ctx context.Context, acct store.Account, dir string, opts ExportOptions) (ExportStats, error) {
	var stats ExportStats
	format := opts.Format
	if format == "" {
		format = "maildir"
	}
	if format != "maildir" && format != "mbox" {
		return stats, fmt.Errorf("export: unknown format %q (maildir or mbox)", format)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return stats, fmt.Errorf("export: %s is not empty", dir)
	} else if err != nil && !os.IsNotExist(err) {
		return stats, fmt.Errorf("export: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	boxes, err := acct.Mailboxes(ctx)
	if err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	names := make([]string, len(boxes))
	for i, b := range boxes {
		names[i] = b.Name
	}
	prog := &progressor{fn: opts.Progress, start: time.Now(), p: Progress{Total: -1, TotalBytes: -1}}
	defer prog.finish()
	for _, mb := range boxes {
		if mb.NoSelect {
			continue
		}
		hasChildren := slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, mb.Name+"/") })
		var w exportWriter
		if format == "maildir" {
			w, err = newMaildirWriter(dir, mb)
		} else {
			w, err = newMboxWriter(dir, mb.Name, hasChildren)
		}
		if err != nil {
			return stats, fmt.Errorf("export %q: %w", mb.Name, err)
		}
		n, bytes, err := exportMailbox(ctx, acct, mb, w, prog)
		if cerr := w.close(); err == nil {
			err = cerr
		}
		stats.Messages += n
		stats.Bytes += bytes
		stats.Mailboxes++
		if err != nil {
			return stats, fmt.Errorf("export %q: %w", mb.Name, err)
		}
	}
	return stats, nil
}

type exportWriter interface {
	// write stores one message (CRLF bytes as stored).
	write(uid uint32, body []byte, flags []string, date time.Time) (int64, error)
	close() error
}

func exportMailbox(ctx context.Context, acct store.Account, mb store.MailboxInfo, w exportWriter, prog *progressor) (int, int64, error) {
	_, uids, err := acct.Snapshot(ctx, mb.ID)
	if err != nil || len(uids) == 0 {
		return 0, 0, err
	}
	var metas []store.Message
	err = acct.Fetch(ctx, mb.ID, uids, store.WantFlags|store.WantDates, func(m *store.Message) error {
		metas = append(metas, *m)
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for i, m := range metas {
		if err := ctx.Err(); err != nil {
			return i, total, err
		}
		body, err := readBody(ctx, acct, mb.ID, m.UID)
		if err != nil {
			return i, total, err
		}
		n, err := w.write(m.UID, body, m.Flags, m.InternalDate)
		total += n
		if err != nil {
			return i, total, err
		}
		prog.add(1, int64(len(body)))
	}
	return len(metas), total, nil
}

func readBody(ctx context.Context, acct store.Account, id int64, uid uint32) ([]byte, error) {
	b, err := acct.OpenBody(ctx, id, uid)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data := make([]byte, b.Size())
	if _, err := b.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read UID %d: %w", uid, err)
	}
	return data, nil
}

// --- Maildir ---

type maildirWriter struct {
	dir         string
	uidValidity uint32
	keywords    []string // index = letter - 'a'
	uids        []string // dovecot-uidlist lines
	lastUID     uint32
	pid         int
}

// maildirFolderDir is where mailbox name lives in a Maildir++ tree.
func maildirFolderDir(root, name string) string {
	if name == "INBOX" {
		return root
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		// "." is Maildir++'s separator; it cannot appear inside a name.
		parts[i] = strings.ReplaceAll(imap.EncodeMUTF7(p), ".", "_")
	}
	return filepath.Join(root, "."+strings.Join(parts, "."))
}

func newMaildirWriter(root string, mb store.MailboxInfo) (*maildirWriter, error) {
	dir := maildirFolderDir(root, mb.Name)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	if dir != root {
		if err := os.WriteFile(filepath.Join(dir, "maildirfolder"), nil, 0o600); err != nil {
			return nil, err
		}
	}
	return &maildirWriter{dir: dir, uidValidity: mb.UIDValidity, pid: os.Getpid()}, nil
}

func (w *maildirWriter) letterFor(kw string) (byte, bool) {
	for i, k := range w.keywords {
		if strings.EqualFold(k, kw) {
			return byte('a' + i), true
		}
	}
	if len(w.keywords) >= 26 {
		return 0, false
	}
	w.keywords = append(w.keywords, kw)
	return byte('a' + len(w.keywords) - 1), true
}

func (w *maildirWriter) write(uid uint32, body []byte, flags []string, date time.Time) (int64, error) {
	var letters []byte
	for _, f := range flags {
		found := false
		for _, mf := range maildirFlags {
			if strings.EqualFold(mf.flag, f) {
				letters = append(letters, mf.letter)
				found = true
			}
		}
		if !found && !strings.HasPrefix(f, `\`) {
			if l, ok := w.letterFor(f); ok {
				letters = append(letters, l)
			}
		}
	}
	slices.Sort(letters)
	letters = slices.Compact(letters)
	lf := ToLF(body)
	base := fmt.Sprintf("%d.M%dP%dQ%d.tern,S=%d,W=%d", date.Unix(), uid, w.pid, uid, len(lf), len(body))
	p := filepath.Join(w.dir, "cur", base+":2,"+string(letters))
	if err := os.WriteFile(p, lf, 0o600); err != nil {
		return 0, err
	}
	if err := os.Chtimes(p, date, date); err != nil {
		return 0, err
	}
	w.uids = append(w.uids, fmt.Sprintf("%d :%s", uid, base))
	w.lastUID = uid
	return int64(len(lf)), nil
}

func (w *maildirWriter) close() error {
	if len(w.keywords) > 0 {
		var b strings.Builder
		for i, k := range w.keywords {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
		if err := os.WriteFile(filepath.Join(w.dir, "dovecot-keywords"), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	if len(w.uids) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "3 V%d N%d\n", w.uidValidity, w.lastUID+1)
	for _, l := range w.uids {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(w.dir, "dovecot-uidlist"), []byte(b.String()), 0o600)
}

// --- mbox ---

type mboxWriter struct {
	f  *os.File
	bw *bufio.Writer
}

func newMboxWriter(root, name string, hasChildren bool) (*mboxWriter, error) {
	p := filepath.Join(root, filepath.FromSlash(name))
	if hasChildren {
		p += ".mbox"
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &mboxWriter{f: f, bw: bufio.NewWriterSize(f, 256<<10)}, nil
}

// envelopeSender takes the Return-Path of a message for its "From " line.
func envelopeSender(lf []byte) string {
	hdr := lf[:headerEnd(lf)]
	for _, line := range bytes.Split(hdr, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(name), "Return-Path") {
			v := strings.Trim(strings.TrimSpace(string(value)), "<>")
			if v != "" && !strings.ContainsAny(v, " \t") {
				return v
			}
		}
	}
	return "MAILER-DAEMON"
}

func (w *mboxWriter) write(uid uint32, body []byte, flags []string, date time.Time) (int64, error) {
	lf := ToLF(body)
	var status, xstatus strings.Builder
	var kws []string
	status.WriteString("O")
	for _, f := range flags {
		switch strings.ToLower(f) {
		case `\seen`:
			status.WriteString("R")
		case `\answered`:
			xstatus.WriteString("A")
		case `\flagged`:
			xstatus.WriteString("F")
		case `\draft`:
			xstatus.WriteString("T")
		case `\deleted`:
			xstatus.WriteString("D")
		default:
			if !strings.HasPrefix(f, `\`) {
				kws = append(kws, f)
			}
		}
	}
	var out bytes.Buffer
	out.Grow(len(lf) + 200)
	fmt.Fprintf(&out, "From %s %s\n", envelopeSender(lf), date.In(time.Local).Format(time.ANSIC))
	end := headerEnd(lf)
	hdr, rest := lf[:end], lf[end:]
	blank := ""
	switch {
	case bytes.HasSuffix(hdr, []byte("\r\n\r\n")) || (end == 2 && bytes.Equal(hdr, []byte("\r\n"))):
		hdr, blank = hdr[:len(hdr)-2], "\r\n"
	case bytes.HasSuffix(hdr, []byte("\n\n")) || (end == 1 && hdr[0] == '\n'):
		hdr, blank = hdr[:len(hdr)-1], "\n"
	}
	quoteFrom(&out, hdr)
	if len(hdr) > 0 && hdr[len(hdr)-1] != '\n' {
		out.WriteByte('\n')
	}
	st := status.String()
	fmt.Fprintf(&out, "Status: %s\n", st)
	if xstatus.Len() > 0 {
		fmt.Fprintf(&out, "X-Status: %s\n", xstatus.String())
	}
	if len(kws) > 0 {
		fmt.Fprintf(&out, "X-Keywords: %s\n", strings.Join(kws, " "))
	}
	out.WriteString(blank)
	quoteFrom(&out, rest)
	if out.Len() > 0 && out.Bytes()[out.Len()-1] != '\n' {
		out.WriteByte('\n')
	}
	out.WriteByte('\n')
	n, err := w.bw.Write(out.Bytes())
	return int64(n), err
}

// quoteFrom writes b with mboxrd quoting: a '>' before every line that
// matches ^>*From .
func quoteFrom(out *bytes.Buffer, b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i+1], b[i+1:]
		}
		j := 0
		for j < len(line) && line[j] == '>' {
			j++
		}
		if bytes.HasPrefix(line[j:], []byte("From ")) {
			out.WriteByte('>')
		}
		out.Write(line)
	}
}

func (w *mboxWriter) close() error {
	err := w.bw.Flush()
	if serr := w.f.Sync(); err == nil {
		err = serr
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
