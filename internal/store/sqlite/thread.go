package sqlite

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// threadSchema: thread_ids maps every message id seen at delivery (a
// message's own Message-ID and the ids it references) to a thread id
// (RFC 8474 THREADID), so a reply delivered later joins its thread.
// content_threading keeps the ids THREAD=REFERENCES needs per content.
// Contents stored before these tables existed have no row (they thread
// by subject only and keep their own thread id).
const threadSchema = `
CREATE TABLE IF NOT EXISTS thread_ids(
	message_id TEXT PRIMARY KEY,
	thread_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS content_threading(
	content_id INTEGER PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE,
	message_id TEXT NOT NULL,
	in_reply_to TEXT NOT NULL,
	refs TEXT NOT NULL
);
`

// threadFor returns the thread id of a message being delivered: the
// thread of the nearest message it refers to, or of a message already
// delivered that referred to it; fresh when there is none. It records
// the message's own id and its references under that thread.
func (w *wtx) threadFor(info *message.Info, fresh string) (string, error) {
	refs := backend.ThreadRefs(info)
	lookup := refs
	if info.MessageID != "" {
		lookup = append(refs[:len(refs):len(refs)], info.MessageID)
	}
	if len(lookup) == 0 {
		return fresh, nil
	}
	if !jsonSafe(lookup) {
		return w.threadForEach(lookup, fresh)
	}
	// One statement each for the lookup and the inserts, whatever the
	// number of ids (the ids go in as one JSON array).
	js, err := json.Marshal(lookup)
	if err != nil {
		return "", fmt.Errorf("find thread: %w", err)
	}
	ids := string(js) // TEXT: SQLite takes a BLOB for binary JSON if it can
	tid := ""
	err = w.tx.QueryRowContext(w.ctx, `SELECT t.thread_id FROM json_each(?) AS j
		CROSS JOIN thread_ids t ON t.message_id = j.value ORDER BY j.key LIMIT 1`, ids).Scan(&tid)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("find thread: %w", err)
	}
	if tid == "" {
		tid = fresh
	}
	if _, err := w.tx.ExecContext(w.ctx, `INSERT OR IGNORE INTO thread_ids(message_id, thread_id)
		SELECT value, ? FROM json_each(?)`, tid, ids); err != nil {
		return "", fmt.Errorf("record thread: %w", err)
	}
	return tid, nil
}

// jsonSafe reports whether ids pass through a JSON array unchanged:
// json.Marshal turns invalid UTF-8 into U+FFFD (two different ids could
// become one), and SQLite's JSON functions need not keep a NUL.
func jsonSafe(ids []string) bool {
	for _, id := range ids {
		if !utf8.ValidString(id) || strings.IndexByte(id, 0) >= 0 {
			return false
		}
	}
	return true
}

// threadForEach is threadFor with one statement per id, for ids that
// are not jsonSafe (bound as they are, byte for byte).
func (w *wtx) threadForEach(lookup []string, fresh string) (string, error) {
	tid := ""
	for _, id := range lookup {
		err := w.tx.QueryRowContext(w.ctx, `SELECT thread_id FROM thread_ids WHERE message_id = ?`, id).Scan(&tid)
		if err == nil {
			break
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("find thread: %w", err)
		}
	}
	if tid == "" {
		tid = fresh
	}
	for _, id := range lookup {
		if _, err := w.tx.ExecContext(w.ctx, `INSERT OR IGNORE INTO thread_ids(message_id, thread_id) VALUES(?, ?)`, id, tid); err != nil {
			return "", fmt.Errorf("record thread: %w", err)
		}
	}
	return tid, nil
}

// saveThreading stores the ids THREAD=REFERENCES uses for a new content.
func (w *wtx) saveThreading(contentID int64, info *message.Info) error {
	_, err := w.tx.ExecContext(w.ctx, `INSERT INTO content_threading(content_id, message_id, in_reply_to, refs) VALUES(?, ?, ?, ?)`,
		contentID, info.MessageID, backend.JoinIDs(info.InReplyTo), backend.JoinIDs(info.References))
	if err != nil {
		return fmt.Errorf("store threading ids: %w", err)
	}
	return nil
}

const (
	threadingCols = `, t.message_id, t.in_reply_to, t.refs`
	threadingJoin = ` LEFT JOIN content_threading t ON t.content_id = m.content_id`
)

type threadingRow struct {
	messageID, inReplyTo, refs sql.NullString
}

func (r *threadingRow) dest() []any { return []any{&r.messageID, &r.inReplyTo, &r.refs} }

func (r *threadingRow) fill(m *store.Message) {
	m.MessageID = r.messageID.String
	m.InReplyTo = strings.Fields(r.inReplyTo.String)
	m.References = strings.Fields(r.refs.String)
}
