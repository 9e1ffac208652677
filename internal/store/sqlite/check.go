package sqlite

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Check verifies the store's consistency and returns a description of each
// problem found: every referenced body file exists with the recorded size,
// reference counts match, no body file is unreferenced, no annotation
// belongs to a mailbox that is gone, the full-text index matches the
// messages (checkText), and per mailbox
// every UID is below UIDNEXT and every modseq at most HIGHESTMODSEQ. With
// repair, what can be fixed is fixed (counters raised, reference counts
// recomputed, unreferenced files and orphaned annotations removed);
// missing or damaged bodies are
// only reported.
func (s *Store) Check(ctx context.Context, repair bool) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name FROM users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("check: list users: %w", err)
	}
	type user struct {
		id   int64
		name string
	}
	var users []user
	for rows.Next() {
		var u user
		if err := rows.Scan(&u.id, &u.name); err != nil {
			rows.Close()
			return nil, fmt.Errorf("check: %w", err)
		}
		users = append(users, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	var problems []string
	for _, usr := range users {
		u, err := s.acquireID(ctx, usr.id, usr.name)
		if err != nil {
			problems = append(problems, fmt.Sprintf("user %q: cannot open: %v", usr.name, err))
			continue
		}
		p, err := u.check(ctx, repair)
		s.release(u)
		if err == nil && repair && len(p) > 0 {
			// Contents the repair queued for indexing are indexed now.
			err = s.indexUser(ctx, usr.id, usr.name)
		}
		for _, x := range p {
			problems = append(problems, fmt.Sprintf("user %q: %s", usr.name, x))
		}
		if err != nil {
			return problems, fmt.Errorf("check user %q: %w", usr.name, err)
		}
	}
	return problems, nil
}

func (u *userDB) check(ctx context.Context, repair bool) ([]string, error) {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	tx, err := u.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var problems []string
	var removeAfter []string

	// Bodies and reference counts.
	type content struct {
		id, size, refs, actual int64
		blob                   string
		inline                 int64 // length of the body kept in the database; -1: in a file
	}
	rows, err := tx.QueryContext(ctx, `SELECT c.id, c.blob, c.size, COALESCE(r.refs, -1),
		(SELECT COUNT(*) FROM messages m WHERE m.content_id = c.id),
		COALESCE(length(b.data) + CASE WHEN b.split & 1 THEN length(c.header) ELSE 0 END, -1),
		CASE WHEN b.split & 2 THEN b.data END
		FROM contents c LEFT JOIN content_refs r ON r.content_id = c.id
		LEFT JOIN bodies b ON b.content_id = c.id ORDER BY c.id`)
	if err != nil {
		return nil, err
	}
	var contents []content
	known := map[string]bool{}
	for rows.Next() {
		var c content
		var packed []byte
		if err := rows.Scan(&c.id, &c.blob, &c.size, &c.refs, &c.actual, &c.inline, &packed); err != nil {
			rows.Close()
			return nil, err
		}
		if packed != nil {
			c.inline = compressedLen(packed, c.inline-int64(len(packed)), c.size, c.blob, &problems)
		}
		contents = append(contents, c)
		known[c.blob] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, c := range contents {
		if !validBlobName(c.blob) {
			problems = append(problems, fmt.Sprintf("body %d has invalid file name %q", c.id, c.blob))
			continue
		}
		if c.inline >= 0 {
			if c.inline != c.size {
				problems = append(problems, fmt.Sprintf("body %s (in the database) has size %d, want %d", c.blob, c.inline, c.size))
			}
		} else if size, err := bodyFileSize(u.blobPath(c.blob), isPacked(c.blob)); err != nil {
			problems = append(problems, fmt.Sprintf("body file %s missing or unreadable: %v", c.blob, err))
		} else if size != c.size {
			problems = append(problems, fmt.Sprintf("body file %s has size %d, want %d", c.blob, size, c.size))
		}
		if c.refs != c.actual {
			if c.refs < 0 {
				problems = append(problems, fmt.Sprintf("body %s has no reference count, but %d messages use it", c.blob, c.actual))
			} else {
				problems = append(problems, fmt.Sprintf("body %s has reference count %d, but %d messages use it", c.blob, c.refs, c.actual))
			}
			if repair {
				if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO content_refs(content_id, refs) VALUES(?, ?)`, c.id, c.actual); err != nil {
					return problems, err
				}
			}
		}
		if c.actual == 0 {
			problems = append(problems, fmt.Sprintf("body %s is not used by any message", c.blob))
			if repair {
				if _, err := tx.ExecContext(ctx, `DELETE FROM contents WHERE id = ?`, c.id); err != nil {
					return problems, err
				}
				if c.inline < 0 {
					removeAfter = append(removeAfter, u.blobPath(c.blob))
				}
			}
		}
	}

	// Files nobody references (including temp files of interrupted writes).
	root := filepath.Join(u.dir, "blobs")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || known[d.Name()] {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		problems = append(problems, fmt.Sprintf("unreferenced file blobs/%s", rel))
		if repair {
			removeAfter = append(removeAfter, p)
		}
		return nil
	})
	if err != nil {
		return problems, fmt.Errorf("walk blobs: %w", err)
	}

	// Mailbox counters.
	rows, err = tx.QueryContext(ctx, `SELECT b.id, b.name, b.uidnext, b.highestmodseq,
		MAX(COALESCE((SELECT MAX(uid) FROM messages WHERE mailbox_id = b.id), 0),
		    COALESCE((SELECT MAX(uid_hi) FROM expunged WHERE mailbox_id = b.id), 0)),
		MAX(COALESCE((SELECT MAX(modseq) FROM messages WHERE mailbox_id = b.id), 0),
		    COALESCE((SELECT MAX(modseq) FROM expunged WHERE mailbox_id = b.id), 0))
		FROM mailboxes b ORDER BY b.id`)
	if err != nil {
		return problems, err
	}
	type mb struct {
		id                 int64
		name               string
		uidNext, maxUID    int64
		highest, maxModSeq int64
	}
	var mbs []mb
	for rows.Next() {
		var m mb
		if err := rows.Scan(&m.id, &m.name, &m.uidNext, &m.highest, &m.maxUID, &m.maxModSeq); err != nil {
			rows.Close()
			return problems, err
		}
		mbs = append(mbs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return problems, err
	}
	for _, m := range mbs {
		if m.maxUID >= m.uidNext {
			problems = append(problems, fmt.Sprintf("mailbox %q: UID %d not below UIDNEXT %d", m.name, m.maxUID, m.uidNext))
			if repair {
				if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext = ? WHERE id = ?`, m.maxUID+1, m.id); err != nil {
					return problems, err
				}
			}
		}
		if m.maxModSeq > m.highest {
			problems = append(problems, fmt.Sprintf("mailbox %q: modseq %d above HIGHESTMODSEQ %d", m.name, m.maxModSeq, m.highest))
			if repair {
				if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq = ? WHERE id = ?`, m.maxModSeq, m.id); err != nil {
					return problems, err
				}
			}
		}
	}
	if p, err := checkUsage(ctx, tx, repair); err != nil {
		return problems, err
	} else {
		problems = append(problems, p...)
	}
	if p, err := checkMetadata(ctx, tx, repair); err != nil {
		return problems, err
	} else {
		problems = append(problems, p...)
	}
	if p, err := u.checkText(ctx, tx, repair); err != nil {
		return problems, err
	} else {
		problems = append(problems, p...)
	}
	if err := tx.Commit(); err != nil {
		return problems, err
	}
	// Repairs are durable before the files they orphaned go, under
	// FsyncOptimized too (commits not synced).
	if u.fsync == FsyncOptimized {
		if err := u.syncLog(); err != nil {
			return problems, err
		}
	}
	for _, p := range removeAfter {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return problems, err
		}
	}
	return problems, nil
}

// compressedLen returns the length of the message whose compressed
// bodies row is packed, after head bytes of stored header (0 or the
// header's length). A row that does not decompress is noted in problems
// and given the content's size (one problem, not two).
func compressedLen(packed []byte, head, size int64, blob string, problems *[]string) int64 {
	data, err := unpackInline(packed, bodyCompressed, size-head)
	if err != nil {
		*problems = append(*problems, fmt.Sprintf("body %s (in the database) is damaged: %v", blob, err))
		return size
	}
	return head + int64(len(data))
}

// bodyFileSize is the message size the body file at path holds: its
// length, or for a packed file the length its segment table gives (the
// table is checked against the file's length).
func bodyFileSize(path string, packed bool) (int64, error) {
	if !packed {
		fi, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return fi.Size(), nil
	}
	p, err := openPacked(path)
	if err != nil {
		return 0, err
	}
	p.Close()
	return p.size, nil
}
