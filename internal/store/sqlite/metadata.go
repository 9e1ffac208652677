package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tern-imap/tern/internal/store"
	"github.com/tern-imap/tern/internal/store/backend"
)

// metadataSchema keeps annotations (RFC 5464), added in schema version
// 5. mailbox_id 0 holds the server's entries (mailbox ids start at 1).
// Entry names are stored in lower case, so byte order is name order and
// a name's descendants are the range [name+"/", name+"0"). A mailbox's
// rows are keyed by its id, so they follow it through RENAME; the
// trigger drops them with the mailbox row (DELETE; a mailbox that stays
// as a \Noselect parent loses them in DeleteMailbox).
const metadataSchema = `
CREATE TABLE IF NOT EXISTS metadata(
	mailbox_id INTEGER NOT NULL,
	entry TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY(mailbox_id, entry)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS mailboxes_metadata AFTER DELETE ON mailboxes BEGIN
	DELETE FROM metadata WHERE mailbox_id = OLD.id;
END;
`

// serverMetadataID is the mailbox_id of server annotations.
const serverMetadataID = 0

// metadataMailboxID resolves the mailbox of an annotation: "" is the
// server.
func metadataMailboxID(ctx context.Context, q querier, mailbox string) (int64, error) {
	if mailbox == "" {
		return serverMetadataID, nil
	}
	n, err := backend.LookupName(mailbox)
	if err != nil {
		return 0, err
	}
	m, err := mboxByName(ctx, q, n)
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
	found := map[string][]byte{}
	err := a.read(ctx, "get metadata", func(tx *sqlTx) error {
		id, err := metadataMailboxID(ctx, tx, mailbox)
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := readMetadata(ctx, tx, id, n, depth, found); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]store.MetadataEntry, 0, len(found))
	for n, v := range found {
		out = append(out, store.MetadataEntry{Name: n, Value: v})
	}
	slices.SortFunc(out, func(x, y store.MetadataEntry) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// readMetadata adds entry name of mailbox id, and its descendants down to
// depth, to found.
func readMetadata(ctx context.Context, q querier, id int64, name string, depth store.MetadataDepth, found map[string][]byte) error {
	query := `SELECT entry, value FROM metadata WHERE mailbox_id = ? AND entry = ?`
	args := []any{id, name}
	switch depth {
	case store.MetadataDepth1:
		query = `SELECT entry, value FROM metadata WHERE mailbox_id = ? AND (entry = ? OR
			(entry > ? AND entry < ? AND instr(substr(entry, ?), '/') = 0))`
		args = append(args, name+"/", name+"0", len(name)+2)
	case store.MetadataDepthInfinity:
		query = `SELECT entry, value FROM metadata WHERE mailbox_id = ? AND (entry = ? OR (entry > ? AND entry < ?))`
		args = append(args, name+"/", name+"0")
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read metadata: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var v []byte
		if err := rows.Scan(&n, &v); err != nil {
			return fmt.Errorf("read metadata: %w", err)
		}
		if v == nil {
			v = []byte{}
		}
		found[n] = v
	}
	return rows.Err()
}

func (a *account) SetMetadata(ctx context.Context, mailbox string, entries []store.MetadataEntry) error {
	set, err := backend.NormMetadataSet(entries)
	if err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	return a.write(ctx, "set metadata", func(w *wtx) error {
		id, err := metadataMailboxID(ctx, w.tx, mailbox)
		if err != nil {
			return err
		}
		for _, e := range set {
			if err := writeMetadata(ctx, w.tx, id, e); err != nil {
				return err
			}
		}
		return checkMetadataLimits(ctx, w.tx)
	})
}

func writeMetadata(ctx context.Context, q querier, id int64, e store.MetadataEntry) error {
	var err error
	if e.Value == nil {
		_, err = q.ExecContext(ctx, `DELETE FROM metadata WHERE mailbox_id = ? AND entry = ?`, id, e.Name)
	} else {
		_, err = q.ExecContext(ctx, `INSERT OR REPLACE INTO metadata(mailbox_id, entry, value) VALUES(?, ?, ?)`, id, e.Name, e.Value)
	}
	if err != nil {
		return fmt.Errorf("write metadata %q: %w", e.Name, err)
	}
	return nil
}

// checkMetadataLimits fails with store.ErrMetadataTooMany when the user's
// annotations, as the transaction left them, exceed a limit. Inside the
// write transaction, so concurrent sessions cannot both pass it.
func checkMetadataLimits(ctx context.Context, q querier) error {
	var n, total int64
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(length(value)), 0) FROM metadata`).Scan(&n, &total); err != nil {
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

// checkMetadata reports annotations of mailboxes that no longer exist
// (tern check) and, with repair, removes them.
func checkMetadata(ctx context.Context, q querier, repair bool) ([]string, error) {
	const orphans = `FROM metadata WHERE mailbox_id <> 0 AND mailbox_id NOT IN (SELECT id FROM mailboxes)`
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) `+orphans).Scan(&n); err != nil {
		return nil, fmt.Errorf("check metadata: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	p := []string{fmt.Sprintf("%d annotations of deleted mailboxes", n)}
	if repair {
		if _, err := q.ExecContext(ctx, `DELETE `+orphans); err != nil {
			return p, fmt.Errorf("remove orphaned metadata: %w", err)
		}
	}
	return p, nil
}
