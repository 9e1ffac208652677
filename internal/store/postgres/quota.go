package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

// Quota usage lives in the user's row (users.used_messages,
// used_storage), changed by every write that adds or removes messages in
// the transaction that does it (addUsage). The row is locked by every
// write of the user (account.write), so checkQuota's read and the insert
// after it are atomic: concurrent deliveries, through any node, cannot
// overshoot a limit.

// addUsageSQL changes user $1's usage by $2 messages of $3 bytes.
const addUsageSQL = `UPDATE users SET used_messages = used_messages + $2, used_storage = used_storage + $3 WHERE id = $1`

// addUsage changes the user's usage by msgs messages of bytes.
func (w *wtx) addUsage(msgs, bytes int64) error {
	if msgs == 0 && bytes == 0 {
		return nil
	}
	if _, err := w.tx.Exec(w.ctx, addUsageSQL, w.a.id, msgs, bytes); err != nil {
		return fmt.Errorf("update usage: %w", err)
	}
	return nil
}

// quotaSQL reads user $1's limits and usage.
const quotaSQL = `SELECT quota_storage, quota_messages, used_storage, used_messages FROM users WHERE id = $1`

func readQuota(ctx context.Context, q querier, user int64) (store.Quota, error) {
	return scanQuota(q.QueryRow(ctx, quotaSQL, user))
}

// mboxQuotaSQL reads user $1's mailbox named $2 (mboxByNameSQL) and the
// user's quota (quotaSQL) in one row, for APPEND (withQuota).
const mboxQuotaSQL = `SELECT ` + mboxCols + `, q.* FROM mailboxes,
	LATERAL (SELECT quota_storage, quota_messages, used_storage, used_messages FROM users WHERE id = $1) q
	WHERE user_id = $1 AND name = $2`

// withQuota is a row of mboxQuotaSQL: scanned as a mailbox (scanMbox),
// it fills qt from the columns that follow.
type withQuota struct {
	pgx.Row
	qt *store.Quota
}

func (r withQuota) Scan(dest ...any) error {
	return r.Row.Scan(append(dest, quotaFields(r.qt)...)...)
}

// quotaFields are the destinations of quotaSQL's columns.
func quotaFields(qt *store.Quota) []any {
	return []any{&qt.StorageLimit, &qt.MessageLimit, &qt.StorageUsed, &qt.MessagesUsed}
}

// scanQuota reads the row of quotaSQL.
func scanQuota(row pgx.Row) (store.Quota, error) {
	var qt store.Quota
	if err := row.Scan(quotaFields(&qt)...); err != nil {
		return qt, fmt.Errorf("read quota: %w", err)
	}
	return qt, nil
}

// checkQuota fails with store.ErrOverQuota if adding msgs messages of
// bytes in total would exceed a limit.
func (w *wtx) checkQuota(msgs, bytes int64) error {
	if msgs <= 0 && bytes <= 0 {
		return nil
	}
	qt, err := readQuota(w.ctx, w.tx, w.a.id)
	if err != nil {
		return err
	}
	return quotaAllows(qt, msgs, bytes)
}

// quotaAllows fails with store.ErrOverQuota if adding msgs messages of
// bytes in total to qt's usage would exceed a limit.
func quotaAllows(qt store.Quota, msgs, bytes int64) error {
	if qt.MessageLimit > 0 && qt.MessagesUsed+msgs > qt.MessageLimit {
		return fmt.Errorf("%d of %d messages used, %d more: %w", qt.MessagesUsed, qt.MessageLimit, msgs, store.ErrOverQuota)
	}
	if qt.StorageLimit > 0 && qt.StorageUsed+bytes > qt.StorageLimit {
		return fmt.Errorf("%d of %d bytes used, %d more: %w", qt.StorageUsed, qt.StorageLimit, bytes, store.ErrOverQuota)
	}
	return nil
}

func (a *account) Quota(ctx context.Context) (store.Quota, error) {
	if a.closed.Load() {
		return store.Quota{}, fmt.Errorf("quota: %w", errAccountClosed)
	}
	return readQuota(ctx, a.s.pool, a.id)
}

func (a *account) SetQuota(ctx context.Context, storageLimit, messageLimit int64) error {
	if storageLimit < 0 || messageLimit < 0 {
		return fmt.Errorf("set quota: negative limit")
	}
	return a.write(ctx, "set quota", func(w *wtx) error {
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		_, err := w.tx.Exec(ctx, `UPDATE users SET quota_storage = $2, quota_messages = $3 WHERE id = $1`, a.id, storageLimit, messageLimit)
		return err
	})
}
