package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// serverMetadataID is the mailbox_id of server annotations.
const serverMetadataID = 0

// metadataMailboxID resolves the mailbox of an annotation: "" is the
// server.
func (a *account) metadataMailboxID(ctx context.Context, q querier, mailbox string) (int64, error) {
	if mailbox == "" {
		return serverMetadataID, nil
	}
	n, err := backend.LookupName(mailbox)
	if err != nil {
		return 0, err
	}
	m, err := a.mboxByName(ctx, q, n)
	if err != nil {
		return 0, err
	}
	return m.id, nil
}

func (a *account) GetMetadata(ctx context.Context, mailbox string, entries []string, depth store.MetadataDepth) ([]store.MetadataEntry, error) {
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		n, err := store.NormMetadataEntry(e)
		if err != nil {
			return nil, fmt.Errorf("get metadata: %w", err)
		}
		names = append(names, n)
	}
	var out []store.MetadataEntry
	err := a.read(ctx, "get metadata", func(tx pgx.Tx) error {
		id, err := a.metadataMailboxID(ctx, tx, mailbox)
		if err != nil {
			return err
		}
		// Names are lower case and compared bytewise: an entry's
		// descendants are the range (name+"/", name+"0"); its children
		// are those with no further "/".
		cond := `e.entry = n.name`
		switch depth {
		case store.MetadataDepth1:
			cond += ` OR (e.entry > n.name || '/' AND e.entry < n.name || '0' AND strpos(substr(e.entry, length(n.name) + 2), '/') = 0)`
		case store.MetadataDepthInfinity:
			cond += ` OR (e.entry > n.name || '/' AND e.entry < n.name || '0')`
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT e.entry, e.value FROM metadata e JOIN unnest($3::text[]) AS n(name) ON `+cond+`
			WHERE e.user_id = $1 AND e.mailbox_id = $2 ORDER BY e.entry`, a.id, id, names)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MetadataEntry, error) {
			var e store.MetadataEntry
			err := r.Scan(&e.Name, &e.Value)
			if e.Value == nil {
				e.Value = []byte{}
			}
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.MetadataEntry{}
	}
	return out, nil
}

func (a *account) SetMetadata(ctx context.Context, mailbox string, entries []store.MetadataEntry) error {
	set, err := backend.NormMetadataSet(entries)
	if err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	return a.write(ctx, "set metadata", func(w *wtx) error {
		ctx := w.ctx // the commit's context, not the caller's (see groupcommit.go)
		id, err := a.metadataMailboxID(ctx, w.tx, mailbox)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		for _, e := range set {
			if e.Value == nil {
				b.Queue(`DELETE FROM metadata WHERE user_id = $1 AND mailbox_id = $2 AND entry = $3`, a.id, id, e.Name)
			} else {
				b.Queue(`INSERT INTO metadata(user_id, mailbox_id, entry, value) VALUES($1, $2, $3, $4)
					ON CONFLICT (user_id, mailbox_id, entry) DO UPDATE SET value = excluded.value`, a.id, id, e.Name, e.Value)
			}
		}
		if err := w.tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write metadata: %w", err)
		}
		return a.checkMetadataLimits(ctx, w.tx)
	})
}

// checkMetadataLimits fails with store.ErrMetadataTooMany when the user's
// annotations, as the transaction left them, exceed a limit.
func (a *account) checkMetadataLimits(ctx context.Context, q querier) error {
	var n, total int64
	if err := q.QueryRow(ctx, `SELECT count(*), COALESCE(sum(length(value)), 0) FROM metadata WHERE user_id = $1`, a.id).Scan(&n, &total); err != nil {
		return fmt.Errorf("count metadata: %w", err)
	}
	if n > store.MetadataMaxEntries {
		return fmt.Errorf("%d entries, limit %d: %w", n, store.MetadataMaxEntries, store.ErrMetadataTooMany)
	}
	if total > store.MetadataMaxTotal {
		return fmt.Errorf("%d bytes of values, limit %d: %w", total, store.MetadataMaxTotal, store.ErrMetadataTooMany)
	}
	return nil
}
