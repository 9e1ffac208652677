package drvbench

import (
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// NumMessages is the number of messages (and contents rows) in mailbox 1.
// Mailbox 2 holds a second set of NumMessages messages, with the same uids,
// pointing at the same contents rows (see PointRead2 for why it exists).
const NumMessages = 10_000

// RangeRows is the number of rows RangeRead returns.
const RangeRows = 100

// Schema is a trimmed version of tern's schema.
const Schema = `
CREATE TABLE contents(id INTEGER PRIMARY KEY, size INTEGER NOT NULL, parts BLOB, header BLOB, envelope TEXT);
CREATE TABLE messages(mailbox_id INTEGER NOT NULL, uid INTEGER NOT NULL, modseq INTEGER NOT NULL, sysflags INTEGER NOT NULL, keywords TEXT NOT NULL DEFAULT '', content_id INTEGER NOT NULL REFERENCES contents(id), size INTEGER NOT NULL, internal_date INTEGER NOT NULL, PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE TABLE mailboxes(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, uidnext INTEGER NOT NULL, highestmodseq INTEGER NOT NULL);
`

// Pragmas are applied, in this order, to every connection of every candidate.
var Pragmas = []string{
	"busy_timeout(5000)",
	"journal_mode(WAL)",
	"synchronous(NORMAL)",
	"foreign_keys(ON)",
}

// PragmaStatements returns Pragmas as "PRAGMA name=value" statements.
func PragmaStatements() []string {
	out := make([]string, len(Pragmas))
	for i, p := range Pragmas {
		name, val, _ := strings.Cut(strings.TrimSuffix(p, ")"), "(")
		out[i] = "PRAGMA " + name + "=" + val
	}
	return out
}

// DSN returns a "file:" URI for path that both database/sql drivers accept:
// the Pragmas as _pragma parameters and _txlock=immediate, so that
// DB.BeginTx issues BEGIN IMMEDIATE.
func DSN(path string) string {
	var b strings.Builder
	b.WriteString("file:" + path + "?_txlock=immediate")
	for _, p := range Pragmas {
		b.WriteString("&_pragma=" + p)
	}
	return b.String()
}

// The statements under test.
const (
	SQLPointRead = `SELECT c.size, c.parts, c.header FROM messages m JOIN contents c ON c.id = m.content_id WHERE m.mailbox_id = ? AND m.uid = ?`
	SQLRangeRead = `SELECT uid, modseq, sysflags, keywords FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ?`
	SQLSelectBox = `SELECT uidnext, highestmodseq FROM mailboxes WHERE id = 1`
	SQLUpdateMsg = `UPDATE messages SET sysflags = ?, modseq = ? WHERE mailbox_id = 1 AND uid = ?`
	SQLUpdateBox = `UPDATE mailboxes SET highestmodseq = ? WHERE id = 1`
)

// NewRand returns the deterministic generator used for data and for the
// uids the benchmarks pick.
func NewRand() *rand.Rand { return rand.New(rand.NewPCG(17, 42)) }

// RandomUID returns a uid of an existing message.
func RandomUID(r *rand.Rand) int64 { return 1 + r.Int64N(NumMessages) }

// RandomRangeStart returns a uid such that [start, start+RangeRows-1] exists.
func RandomRangeStart(r *rand.Rand) int64 { return 1 + r.Int64N(NumMessages-RangeRows+1) }

func randText(r *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .-_@"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// header returns a ~600-byte RFC 5322-looking header block.
func header(r *rand.Rand, i int) []byte {
	h := fmt.Sprintf("Return-Path: <%s@example.org>\r\n"+
		"Received: from %s by mx.example.org with ESMTPS id %s\r\n"+
		"Message-ID: <%s@example.org>\r\n"+
		"Date: Mon, 2 Jun 2025 10:%02d:%02d +0000\r\n"+
		"From: %s <%s@example.org>\r\nTo: %s@example.com\r\n"+
		"Subject: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"%s\"\r\n"+
		"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; b=%s\r\n\r\n",
		randText(r, 12), randText(r, 30), randText(r, 16), randText(r, 24),
		i%60, (i/60)%60, randText(r, 18), randText(r, 10), randText(r, 10),
		randText(r, 60), randText(r, 28), randText(r, 70))
	return []byte(h)
}

// BuildTemplate creates the schema and fills it (see NumMessages) through db,
// an open database/sql handle on an empty file. The WAL is checkpointed so
// that, once the caller closes db, the main file alone is complete.
func BuildTemplate(db *sql.DB) error {
	if _, err := db.Exec(Schema); err != nil {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r := NewRand()
	insC, err := tx.Prepare(`INSERT INTO contents(id, size, parts, header, envelope) VALUES(?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	insM, err := tx.Prepare(`INSERT INTO messages(mailbox_id, uid, modseq, sysflags, keywords, content_id, size, internal_date) VALUES(1, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO mailboxes(id, name, uidnext, highestmodseq) VALUES(1, 'INBOX', ?, ?), (2, 'Archive', ?, ?)`,
		NumMessages+1, NumMessages, NumMessages+1, NumMessages); err != nil {
		return err
	}
	for i := 1; i <= NumMessages; i++ {
		size := 2000 + r.Int64N(50_000)
		if _, err := insC.Exec(i, size, randBytes(r, 100), header(r, i), randText(r, 400)); err != nil {
			return err
		}
		kw := ""
		if i%10 == 0 {
			kw = "$Forwarded Junk"
		}
		if _, err := insM.Exec(i, i, r.Int64N(32), kw, i, size, 1_700_000_000+int64(i)*60); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(`INSERT INTO messages SELECT 2, uid, modseq, sysflags, keywords, content_id, size, internal_date FROM messages WHERE mailbox_id = 1`); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	_, err = db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return err
}

// CopyFile copies src to dst.
func CopyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TemplateName is the file name of the template database in its directory.
func TemplateName(dir string) string { return filepath.Join(dir, "template.db") }
