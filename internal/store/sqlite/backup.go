package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// A backup is a directory laid out like a data directory, plus a manifest:
//
//	tern.db                    snapshot of the user list (VACUUM INTO)
//	users/<id>/mail.db         snapshot of each user's database (VACUUM INTO)
//	users/<id>/blobs/xx/name   every body file that snapshot references
//	                           (bodies kept in mail.db come with it)
//	tls/*                      the self-signed certificate and key, if any
//	outbound/{queue,failed}/*  the outbound mail queue (copyOutbound)
//	tern-backup.json           the manifest, written last: a backup without
//	                           it is incomplete and Restore refuses it
//
// Consistency. Each mail.db snapshot is one SQLite read transaction, so it
// is a committed state of that user's mail; writers are not blocked by it
// (WAL); bodies kept in the database (bodiesTable) are part of it. Body
// files are immutable: writeBlobs creates each under a new random name
// (create, write, fsync, fsync directory) before the
// transaction that references it commits, nothing ever opens one for
// writing again, and a file is removed only after a commit that stopped
// referencing it (expunge), for an Append that certainly did not commit,
// by "tern check --repair", or with its user. So every body a snapshot
// references exists when the snapshot is taken and keeps its bytes; the
// only race is an expunge committed after the snapshot removing a body
// before it is opened for copying (once open, it is read to the end even
// if unlinked). Then the user is snapshotted again (bodies already copied
// are kept, only new ones copied); after maxFreeAttempts such rounds the
// last one holds the user's write lock (BEGIN IMMEDIATE) from the
// snapshot until its few missing bodies are copied.
//
// Users are snapshotted one after the other: each user's mail is a
// consistent state, the user list is that of the start (a user deleted
// before their turn is left out), and there are no cross-user
// transactions to tear.

// ManifestName is the file at the top of a complete backup.
const ManifestName = "tern-backup.json"

// backupFormat is the layout version recorded in the manifest.
const backupFormat = 1

// maxFreeAttempts is how many snapshots of one user are taken without
// blocking writers before the last, locked one.
const maxFreeAttempts = 5

// Manifest describes a complete backup.
type Manifest struct {
	Format      int          `json:"format"`
	Created     time.Time    `json:"created"`
	TernVersion string       `json:"tern_version,omitempty"`
	Users       []BackupUser `json:"users"`
	// Files are the databases and other files besides bodies, with their
	// SHA-256; bodies are checked against the sizes their database records.
	Files     []BackupFile `json:"files"`
	Messages  int64        `json:"messages"`
	Bodies    int64        `json:"bodies"`
	BodyBytes int64        `json:"body_bytes"`
}

// BackupUser is one user in a backup.
type BackupUser struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Mailboxes int64  `json:"mailboxes"`
	Messages  int64  `json:"messages"`
	Bodies    int64  `json:"bodies"`
	BodyBytes int64  `json:"body_bytes"`
	// Snapshots is how many snapshots were taken (more than one when
	// expunges removed bodies before they were copied); Locked says the
	// last one held the user's writers.
	Snapshots int  `json:"snapshots"`
	Locked    bool `json:"locked,omitempty"`
}

// BackupFile is a file of a backup other than a body.
type BackupFile struct {
	Path   string `json:"path"` // relative, with forward slashes
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// BackupOptions configures Backup.
type BackupOptions struct {
	// TernVersion is recorded in the manifest.
	TernVersion string
	// Progress receives one line per user backed up and per note (files
	// not backed up, users deleted meanwhile). Nil: quiet.
	Progress io.Writer
}

// backup is one run of Backup.
type backup struct {
	ctx      context.Context
	src, dst string
	opts     BackupOptions
	dirs     *dirSet
	m        Manifest
}

// Backup takes a consistent snapshot of the data directory dataDir (which
// may be in use by a running server) into dest, which must not exist or
// be empty. Every file and directory written is fsynced; the manifest is
// written last.
func Backup(ctx context.Context, dataDir, dest string, opts BackupOptions) (*Manifest, error) {
	if _, err := os.Stat(filepath.Join(dataDir, "tern.db")); err != nil {
		return nil, fmt.Errorf("backup: no store in %s: %w", dataDir, err)
	}
	if err := refuseInside(dataDir, dest); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := makeEmptyDir(dest); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	b := &backup{ctx: ctx, src: dataDir, dst: dest, opts: opts, dirs: newDirSet(),
		m: Manifest{Format: backupFormat, Created: time.Now().UTC(), TernVersion: opts.TernVersion}}
	b.dirs.add(dest)
	if err := b.run(); err != nil {
		return nil, fmt.Errorf("backup: %w (%s is incomplete: remove it)", err, dest)
	}
	return &b.m, nil
}

// refuseInside refuses a dest that is the data directory or inside it.
func refuseInside(dataDir, dest string) error {
	d, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	t, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(d, t); t == d || (err == nil && filepath.IsLocal(rel)) {
		return fmt.Errorf("%s is inside the data directory %s", dest, dataDir)
	}
	return nil
}

func (b *backup) note(format string, args ...any) {
	if b.opts.Progress != nil {
		fmt.Fprintf(b.opts.Progress, format+"\n", args...)
	}
}

func (b *backup) run() error {
	userList := filepath.Join(b.dst, "tern.db")
	if err := vacuumInto(b.ctx, filepath.Join(b.src, "tern.db"), userList); err != nil {
		return err
	}
	users, err := snapshotUsers(b.ctx, userList)
	if err != nil {
		return err
	}
	if err := b.dirs.make(filepath.Join(b.dst, "users")); err != nil {
		return err
	}
	var dropped []int64
	for _, u := range users {
		bu, err := b.user(u.id, u.name)
		if err != nil {
			if gone, gerr := userGone(b.ctx, b.src, u.id); gerr != nil || !gone {
				return fmt.Errorf("user %q: %w", u.name, err)
			}
			b.note("user %q: deleted during the backup, left out", u.name)
			dropped = append(dropped, u.id)
			if err := b.removeUser(u.id); err != nil {
				return err
			}
			continue
		}
		b.m.Users = append(b.m.Users, bu)
		b.m.Messages += bu.Messages
		b.m.Bodies += bu.Bodies
		b.m.BodyBytes += bu.BodyBytes
	}
	if err := dropUsers(b.ctx, userList, dropped); err != nil {
		return err
	}
	if err := b.record("tern.db", nil); err != nil {
		return err
	}
	if err := b.copyOthers(); err != nil {
		return err
	}
	if err := b.dirs.syncAll(); err != nil {
		return err
	}
	return b.writeManifest()
}

// removeUser removes what was copied of a user left out.
func (b *backup) removeUser(id int64) error {
	dir := filepath.Join(b.dst, "users", strconv.FormatInt(id, 10))
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove files of a user left out: %w", err)
	}
	b.dirs.forget(dir)
	return nil
}

// record fsyncs a file written into the backup and lists it in the
// manifest with its SHA-256 (size and sum given if already known).
func (b *backup) record(rel string, known *BackupFile) error {
	f := BackupFile{Path: filepath.ToSlash(rel)}
	if known != nil {
		f = *known
	} else {
		var err error
		if f.Size, f.SHA256, err = syncFile(filepath.Join(b.dst, rel), true); err != nil {
			return err
		}
	}
	b.m.Files = append(b.m.Files, f)
	return nil
}

// copyOthers copies the TLS files and the outbound queue and notes what else in the data
// directory is not backed up.
func (b *backup) copyOthers() error {
	entries, err := os.ReadDir(b.src)
	if err != nil {
		return fmt.Errorf("list %s: %w", b.src, err)
	}
	for _, e := range entries {
		switch e.Name() {
		case "tern.db", "tern.db-wal", "tern.db-shm", "users", "notify.sock":
		case "tls":
			if err := b.copyTLS(); err != nil {
				return err
			}
		case "outbound":
			if err := b.copyOutbound(); err != nil {
				return err
			}
		default:
			b.note("not backed up: %s", filepath.Join(b.src, e.Name()))
		}
	}
	return nil
}

func (b *backup) copyTLS() error {
	entries, err := os.ReadDir(filepath.Join(b.src, "tls"))
	if err != nil {
		return fmt.Errorf("list TLS files: %w", err)
	}
	if err := b.dirs.make(filepath.Join(b.dst, "tls")); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		rel := filepath.Join("tls", e.Name())
		n, sum, err := copyFile(b.ctx, filepath.Join(b.src, rel), filepath.Join(b.dst, rel), true)
		if err != nil {
			return err
		}
		if err := b.record(rel, &BackupFile{Path: filepath.ToSlash(rel), Size: n, SHA256: sum}); err != nil {
			return err
		}
	}
	return nil
}

// copyOutbound copies the outbound mail queue (internal/outbound): the
// queued and failed messages and their retry states. tmp/ holds only
// writes not yet acknowledged and is left out. A message sent while the
// backup runs may be copied or not (it is removed once the relay has
// it); restoring a backup can therefore send such a message again.
func (b *backup) copyOutbound() error {
	for _, sub := range []string{"queue", "failed"} {
		rel := filepath.Join("outbound", sub)
		entries, err := os.ReadDir(filepath.Join(b.src, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", rel, err)
		}
		for _, dir := range []string{"outbound", rel} {
			if err := b.dirs.make(filepath.Join(b.dst, dir)); err != nil {
				return err
			}
		}
		for _, e := range entries {
			if !e.Type().IsRegular() {
				continue
			}
			f := filepath.Join(rel, e.Name())
			n, sum, err := copyFile(b.ctx, filepath.Join(b.src, f), filepath.Join(b.dst, f), true)
			if errors.Is(err, os.ErrNotExist) {
				continue // sent (or retried) meanwhile
			}
			if err != nil {
				return err
			}
			if err := b.record(f, &BackupFile{Path: filepath.ToSlash(f), Size: n, SHA256: sum}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *backup) writeManifest() error {
	data, err := json.MarshalIndent(&b.m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	return writeFileDurably(filepath.Join(b.dst, ManifestName), append(data, '\n'))
}

// --- one user ---

// userSnapshot is what a mail.db snapshot holds.
type userSnapshot struct {
	mailboxes, messages int64
	bodies              map[string]int64 // body file name -> message size
}

// user backs up one user's database and the bodies it references.
func (b *backup) user(id int64, name string) (BackupUser, error) {
	rel := filepath.Join("users", strconv.FormatInt(id, 10))
	src, dst := filepath.Join(b.src, rel), filepath.Join(b.dst, rel)
	if err := b.dirs.make(dst); err != nil {
		return BackupUser{}, err
	}
	if err := b.dirs.make(filepath.Join(dst, "blobs")); err != nil {
		return BackupUser{}, err
	}
	bu := BackupUser{ID: id, Name: name}
	copied := map[string]int64{} // bodies in dst, from any attempt
	var snap *userSnapshot
	for {
		bu.Snapshots++
		bu.Locked = bu.Snapshots > maxFreeAttempts
		var missing int
		var err error
		snap, missing, err = b.userAttempt(src, dst, copied, bu.Locked)
		if err != nil {
			return bu, err
		}
		if missing == 0 {
			break
		}
		if bu.Locked {
			return bu, fmt.Errorf("%d body files referenced by the database are missing (run tern check)", missing)
		}
	}
	if err := b.dropUnreferenced(dst, copied, snap); err != nil {
		return bu, err
	}
	if err := b.record(filepath.Join(rel, "mail.db"), nil); err != nil {
		return bu, err
	}
	bu.Mailboxes, bu.Messages, bu.Bodies = snap.mailboxes, snap.messages, int64(len(snap.bodies))
	for name := range snap.bodies {
		bu.BodyBytes += copied[name] // the files' bytes (packed ones hold more mail)
	}
	b.note("user %q: %d mailboxes, %d messages, %d body files, %s%s", name, bu.Mailboxes, bu.Messages,
		bu.Bodies, FormatBytes(bu.BodyBytes), snapshotsNote(bu))
	return bu, nil
}

func snapshotsNote(bu BackupUser) string {
	switch {
	case bu.Locked:
		return fmt.Sprintf(" (%d snapshots, writers held during the last)", bu.Snapshots)
	case bu.Snapshots > 1:
		return fmt.Sprintf(" (%d snapshots)", bu.Snapshots)
	}
	return ""
}

// testAfterSnapshot, if set (tests only), is called after each snapshot
// of a user (directory src) and before its bodies are copied.
var testAfterSnapshot func(src string, locked bool)

// userAttempt snapshots src/mail.db into dst/mail.db and copies the
// bodies it references that are not in copied yet. It returns how many
// of them no longer existed. With locked, the user's writers wait from
// before the snapshot until the bodies are copied.
func (b *backup) userAttempt(src, dst string, copied map[string]int64, locked bool) (*userSnapshot, int, error) {
	if locked {
		release, err := lockWriters(b.ctx, filepath.Join(src, "mail.db"))
		if err != nil {
			return nil, 0, err
		}
		defer release()
	}
	out := filepath.Join(dst, "mail.db")
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("remove earlier snapshot: %w", err)
	}
	if err := vacuumInto(b.ctx, filepath.Join(src, "mail.db"), out); err != nil {
		return nil, 0, err
	}
	if testAfterSnapshot != nil {
		testAfterSnapshot(src, locked)
	}
	snap, err := readUserSnapshot(b.ctx, out)
	if err != nil {
		return nil, 0, err
	}
	missing, err := b.copyBodies(src, dst, snap, copied)
	if err != nil {
		return nil, 0, err
	}
	return snap, missing, nil
}

// copyBodies copies the bodies of snap not in copied yet, adds them to
// copied, and returns how many no longer existed (expunged since the
// snapshot).
func (b *backup) copyBodies(src, dst string, snap *userSnapshot, copied map[string]int64) (missing int, err error) {
	var jobs []copyJob
	for _, name := range sortedKeys(snap.bodies) {
		if _, ok := copied[name]; ok {
			continue
		}
		if err := b.dirs.make(filepath.Join(dst, "blobs", name[:2])); err != nil {
			return 0, err
		}
		sub := filepath.Join("blobs", name[:2], name)
		jobs = append(jobs, copyJob{src: filepath.Join(src, sub), dst: filepath.Join(dst, sub)})
	}
	if err := copyAll(b.ctx, jobs); err != nil {
		return 0, err
	}
	for _, j := range jobs {
		name := filepath.Base(j.dst)
		if j.err != nil { // the source is gone (copyAll returns other errors)
			missing++
			continue
		}
		if err := checkBodyCopy(j.dst, name, j.n, snap.bodies[name]); err != nil {
			return 0, err
		}
		copied[name] = j.n
	}
	return missing, nil
}

// checkBodyCopy checks that the copy dst of body file name, n bytes,
// holds the message of size bytes the database names: a packed file
// (packed.go) by its segment table, any other by its length.
func checkBodyCopy(dst, name string, n, size int64) error {
	if !isPacked(name) {
		if n != size {
			return fmt.Errorf("body file %s has %d bytes, the database says %d (run tern check)", name, n, size)
		}
		return nil
	}
	got, err := bodyFileSize(dst, true)
	if err != nil {
		return fmt.Errorf("body file %s: %w (run tern check)", name, err)
	}
	if got != size {
		return fmt.Errorf("body file %s holds %d bytes of mail, the database says %d (run tern check)", name, got, size)
	}
	return nil
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// dropUnreferenced removes bodies copied in an earlier attempt that the
// final snapshot no longer references (expunged meanwhile).
func (b *backup) dropUnreferenced(dst string, copied map[string]int64, snap *userSnapshot) error {
	for name := range copied {
		if _, ok := snap.bodies[name]; ok {
			continue
		}
		if err := os.Remove(filepath.Join(dst, "blobs", name[:2], name)); err != nil {
			return fmt.Errorf("remove body expunged during the backup: %w", err)
		}
	}
	return nil
}

// --- SQLite ---

// liveDSN opens an existing database of a data directory for reading, or
// for taking its write lock, without creating it.
func liveDSN(path string) string {
	return "file:" + path + "?mode=rw&_txlock=immediate&_pragma=busy_timeout(10000)"
}

// snapshotDSN opens a snapshot in a backup read-only: it is not in WAL
// mode and nobody else writes it, so no lock or journal files are needed.
func snapshotDSN(path string) string {
	return "file:" + path + "?mode=ro&immutable=1"
}

// vacuumInto writes a consistent copy of the database src to the new file
// dst in one read transaction (VACUUM INTO): writers carry on meanwhile.
func vacuumInto(ctx context.Context, src, dst string) error {
	db, err := sqldb.Open(liveDSN(src))
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	return nil
}

// lockWriters takes the write lock of the database at path (BEGIN
// IMMEDIATE) and returns the function that releases it. Writers in every
// process wait meanwhile (their busy timeout is 10s).
func lockWriters(ctx context.Context, path string) (release func(), err error) {
	db, err := sqldb.Open(liveDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("lock writers of %s: %w", path, err)
	}
	return func() {
		tx.Rollback()
		db.Close()
	}, nil
}

type userRow struct {
	id   int64
	name string
}

// snapshotUsers lists the users in a tern.db snapshot.
func snapshotUsers(ctx context.Context, path string) ([]userRow, error) {
	db, err := sqldb.Open(snapshotDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT id, name FROM users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []userRow
	for rows.Next() {
		var u userRow
		if err := rows.Scan(&u.id, &u.name); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// userGone reports whether user id is no longer in the live tern.db.
func userGone(ctx context.Context, dataDir string, id int64) (bool, error) {
	db, err := sqldb.Open(liveDSN(filepath.Join(dataDir, "tern.db")))
	if err != nil {
		return false, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id = ?`, id).Scan(&n); err != nil {
		return false, fmt.Errorf("look up user %d: %w", id, err)
	}
	return n == 0, nil
}

// dropUsers deletes users left out of the backup from its tern.db.
func dropUsers(ctx context.Context, path string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	db, err := sqldb.Open("file:" + path + "?mode=rw&_pragma=synchronous(FULL)")
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	for _, id := range ids {
		if _, err := db.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
			return fmt.Errorf("leave out user %d: %w", id, err)
		}
	}
	return nil
}

// readUserSnapshot reads the counts and body files of a mail.db snapshot.
func readUserSnapshot(ctx context.Context, path string) (*userSnapshot, error) {
	db, err := sqldb.Open(snapshotDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	s := &userSnapshot{bodies: map[string]int64{}}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes`).Scan(&s.mailboxes); err != nil {
		return nil, fmt.Errorf("count mailboxes in %s: %w", path, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages`).Scan(&s.messages); err != nil {
		return nil, fmt.Errorf("count messages in %s: %w", path, err)
	}
	// Bodies kept in the database (bodiesTable) come with the snapshot;
	// only the others are files. A snapshot of a database from before
	// schema version 4 has no bodies table.
	var hasBodies int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'bodies'`).Scan(&hasBodies); err != nil {
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	q := `SELECT blob, size FROM contents`
	if hasBodies > 0 {
		q = `SELECT c.blob, c.size FROM contents c WHERE NOT EXISTS (SELECT 1 FROM bodies b WHERE b.content_id = c.id)`
	}
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list bodies in %s: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var size int64
		if err := rows.Scan(&name, &size); err != nil {
			return nil, fmt.Errorf("list bodies in %s: %w", path, err)
		}
		if !validBlobName(name) {
			return nil, fmt.Errorf("body file name %q in %s is invalid (run tern check)", name, path)
		}
		s.bodies[name] = size
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bodies in %s: %w", path, err)
	}
	return s, nil
}

// validBlobName is what check accepts as a body file name: it names a
// file in blobs/<first two characters>/ and nothing else.
func validBlobName(name string) bool {
	return len(name) >= 3 && !strings.ContainsAny(name, `/\.`)
}

// FormatBytes formats a byte count for people: 1.5 MiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
