package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tern-imap/tern/internal/store"
)

// quotaSchema keeps exact usage counters in one row, maintained by
// triggers on every insert into and delete from messages (whatever the
// operation: APPEND, COPY, MOVE, EXPUNGE, DELETE of a mailbox), and the
// limits in meta. The INSERT computes the counters once for a database
// created before they existed.
const quotaSchema = `
CREATE TABLE IF NOT EXISTS usage(
	id INTEGER PRIMARY KEY CHECK(id = 1),
	messages INTEGER NOT NULL,
	storage INTEGER NOT NULL
);
INSERT OR IGNORE INTO usage(id, messages, storage)
	SELECT 1, COUNT(*), COALESCE(SUM(size), 0) FROM messages WHERE NOT EXISTS (SELECT 1 FROM usage);
CREATE TRIGGER IF NOT EXISTS usage_add AFTER INSERT ON messages BEGIN
	UPDATE usage SET messages = messages + 1, storage = storage + NEW.size WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS usage_sub AFTER DELETE ON messages BEGIN
	UPDATE usage SET messages = messages - 1, storage = storage - OLD.size WHERE id = 1;
END;
`

const (
	metaQuotaStorage  = "quota_storage"
	metaQuotaMessages = "quota_messages"
)

// readQuota reads limits and usage through q (a transaction for a
// consistent view), in one statement: it runs in every APPEND.
func readQuota(ctx context.Context, q querier) (store.Quota, error) {
	var qt store.Quota
	var storage, messages sql.NullInt64
	err := q.QueryRowContext(ctx, `SELECT messages, storage,
		(SELECT value FROM meta WHERE key = ?), (SELECT value FROM meta WHERE key = ?)
		FROM usage WHERE id = 1`, metaQuotaStorage, metaQuotaMessages).Scan(&qt.MessagesUsed, &qt.StorageUsed, &storage, &messages)
	if err != nil {
		return qt, fmt.Errorf("read quota: %w", err)
	}
	qt.StorageLimit, qt.MessageLimit = storage.Int64, messages.Int64
	return qt, nil
}

// checkQuota fails with store.ErrOverQuota if adding msgs messages of
// bytes in total would exceed a limit. It runs inside the write
// transaction (under the user's write lock), so concurrent deliveries are
// counted exactly.
func (w *wtx) checkQuota(msgs, bytes int64) error {
	if msgs <= 0 && bytes <= 0 {
		return nil
	}
	qt, err := readQuota(w.ctx, w.tx)
	if err != nil {
		return err
	}
	if qt.MessageLimit > 0 && qt.MessagesUsed+msgs > qt.MessageLimit {
		return fmt.Errorf("%d of %d messages used, %d more: %w", qt.MessagesUsed, qt.MessageLimit, msgs, store.ErrOverQuota)
	}
	if qt.StorageLimit > 0 && qt.StorageUsed+bytes > qt.StorageLimit {
		return fmt.Errorf("%d of %d bytes used, %d more: %w", qt.StorageUsed, qt.StorageLimit, bytes, store.ErrOverQuota)
	}
	return nil
}

func (a *account) Quota(ctx context.Context) (store.Quota, error) {
	var qt store.Quota
	err := a.read(ctx, "quota", func(tx *sqlTx) error {
		var err error
		qt, err = readQuota(ctx, tx)
		return err
	})
	return qt, err
}

func (a *account) SetQuota(ctx context.Context, storageLimit, messageLimit int64) error {
	if storageLimit < 0 || messageLimit < 0 {
		return fmt.Errorf("set quota: negative limit")
	}
	return a.write(ctx, "set quota", func(w *wtx) error {
		for _, l := range []struct {
			key string
			v   int64
		}{{metaQuotaStorage, storageLimit}, {metaQuotaMessages, messageLimit}} {
			var err error
			if l.v == 0 {
				_, err = w.tx.ExecContext(ctx, `DELETE FROM meta WHERE key = ?`, l.key)
			} else {
				_, err = w.tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)`, l.key, l.v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func totalSize(msgs []store.NewMessage) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Body))
	}
	return n
}

func rowsSize(rows []msgRow) int64 {
	var n int64
	for _, r := range rows {
		n += r.size
	}
	return n
}

// checkUsage compares the quota usage counters with the messages (tern
// check) and, with repair, resets them.
func checkUsage(ctx context.Context, tx querier, repair bool) ([]string, error) {
	var msgs, bytes, cMsgs, cBytes int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages`).Scan(&msgs, &bytes); err != nil {
		return nil, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT messages, storage FROM usage WHERE id = 1`).Scan(&cMsgs, &cBytes); err != nil {
		return nil, fmt.Errorf("read usage: %w", err)
	}
	if msgs == cMsgs && bytes == cBytes {
		return nil, nil
	}
	p := []string{fmt.Sprintf("quota usage is %d messages, %d bytes; the messages add up to %d, %d", cMsgs, cBytes, msgs, bytes)}
	if repair {
		if _, err := tx.ExecContext(ctx, `UPDATE usage SET messages = ?, storage = ? WHERE id = 1`, msgs, bytes); err != nil {
			return p, err
		}
	}
	return p, nil
}
