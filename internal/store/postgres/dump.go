package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/blob"
)

// Backups of a postgres store (tern backup / tern restore with
// --store postgres://...). The database goes through PostgreSQL's own
// tools: pg_dump in its custom format, taken in a snapshot this code
// exports, so the counts in the manifest and the list of bodies to copy
// come from exactly the state the dump holds; pg_restore brings it back
// into an empty database. Bodies kept in a blob store (file: or s3://)
// are copied into DEST/blobs/<key> by content key, each checked against
// its SHA-256. A body referenced in the snapshot cannot be deleted by the
// blob collector before blob_grace has passed since it lost its last
// reference (blobs.go), which is after the snapshot: a backup whose
// copying took longer than that grace is refused, since a body could
// have gone in between.

// DumpFormat names the layout of a postgres backup directory.
const DumpFormat = "tern-postgres-backup-1"

// Names inside a backup directory.
const (
	dumpFile     = "tern.pgdump"
	dumpBlobs    = "blobs"
	dumpManifest = "tern-backup.json"
)

// DumpManifest describes a postgres backup; it is written last.
type DumpManifest struct {
	Format        string    `json:"format"`
	Created       time.Time `json:"created"`
	TernVersion   string    `json:"tern_version,omitempty"`
	SchemaVersion int       `json:"schema_version"`
	Users         int64     `json:"users"`
	Messages      int64     `json:"messages"`
	// DumpSHA256 is the SHA-256 of tern.pgdump.
	DumpSHA256 string `json:"dump_sha256"`
	// Blobs and BlobBytes count the bodies copied from the blob store
	// (none when every body is in the database).
	Blobs     int64  `json:"blobs"`
	BlobBytes int64  `json:"blob_bytes"`
	BlobStore string `json:"blob_store,omitempty"`
	// Bodies lists the files of blobs/: name (the body's content key, the
	// hex SHA-256 of its bytes) and size. A later backup with Since takes
	// them from here (dumpsince.go).
	Bodies map[string]int64 `json:"bodies,omitempty"`
	// ReusedBlobs and ReusedBytes count the bodies of Blobs that were taken
	// from an earlier backup (DumpOptions.Since) instead of the blob store.
	// The backup holds them all the same (hard links or copies).
	ReusedBlobs int64 `json:"reused_blobs,omitempty"`
	ReusedBytes int64 `json:"reused_bytes,omitempty"`
}

// DumpOptions configures Dump.
type DumpOptions struct {
	// Blobs is the store's blob store (nil: bodies in the database).
	Blobs blob.Store
	// Grace is the blob collector's grace (store.blob_grace); the copy
	// of the bodies must end within it. 0: an hour.
	Grace       time.Duration
	TernVersion string
	Progress    io.Writer // nil: quiet
	// Since is an earlier complete backup: bodies its manifest lists and
	// its blobs/ holds intact are hard-linked (else copied) from there
	// instead of fetched from the blob store. "": fetch every body.
	Since string
}

// Dump backs the database at url up into dest (created; an existing
// one must be empty). Nodes may keep serving.
func Dump(ctx context.Context, url, dest string, opts DumpOptions) (*DumpManifest, error) {
	url = withoutPoolParams(url)
	if opts.Grace <= 0 {
		opts.Grace = time.Hour
	}
	prev, err := openPrev(opts.Since, opts.Progress)
	if err != nil {
		return nil, fmt.Errorf("backup: --since: %w", err)
	}
	if err := emptyDir(dest); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	pgDump, err := pgTool("pg_dump")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start := time.Now()
	// The exporting transaction stays open until pg_dump has taken its
	// snapshot over; reading the counts and bodies in it sees the same
	// state as the dump.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	m := &DumpManifest{Format: DumpFormat, Created: start.UTC(), TernVersion: opts.TernVersion}
	var snapshot string
	err = tx.QueryRow(ctx, `SELECT pg_export_snapshot(), (SELECT version FROM tern_schema),
		(SELECT count(*) FROM users), (SELECT count(*) FROM messages)`).Scan(&snapshot, &m.SchemaVersion, &m.Users, &m.Messages)
	if err != nil {
		return nil, fmt.Errorf("backup: read the snapshot (is this a tern database?): %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT hash, refs > 0 FROM bodies WHERE data IS NULL AND NOT (object_gone AND refs = 0) ORDER BY hash`)
	if err != nil {
		return nil, fmt.Errorf("backup: list bodies: %w", err)
	}
	var refs []blobRef
	var hash []byte
	var needed bool
	if _, err := pgx.ForEachRow(rows, []any{&hash, &needed}, func() error {
		refs = append(refs, blobRef{blobKey(hash), needed})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("backup: list bodies: %w", err)
	}
	dumpPath := filepath.Join(dest, dumpFile)
	progress(opts.Progress, "dumping the database (%d users, %d messages) with %s", m.Users, m.Messages, pgDump)
	cmd := exec.CommandContext(ctx, pgDump, "--format=custom", "--no-owner", "--no-privileges",
		"--snapshot="+snapshot, "--file="+dumpPath, "--dbname="+url)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("backup: pg_dump: %w: %s", err, bytes.TrimSpace(out))
	}
	if err := tx.Rollback(ctx); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if m.DumpSHA256, err = syncAndHash(dumpPath); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if len(refs) > 0 {
		if opts.Blobs == nil {
			return nil, fmt.Errorf("backup: %d bodies are in a blob store; give it (--blob-store)", len(refs))
		}
		m.BlobStore = opts.Blobs.String()
		dir := filepath.Join(dest, dumpBlobs)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		progress(opts.Progress, "copying %d bodies from %s%s", len(refs), opts.Blobs, prev.from())
		c := &bodyCopy{blobs: opts.Blobs, dir: dir, prev: prev, progress: opts.Progress, m: m}
		if err := c.run(ctx, refs); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if took := time.Since(start); took >= opts.Grace {
			return nil, fmt.Errorf("backup: copying the bodies took %s, longer than the blob collector's grace (%s): a body may have been deleted after the snapshot; raise store.blob_grace for the backup's duration and run it again", took.Round(time.Second), opts.Grace)
		}
	}
	if err := writeManifest(dest, m); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// RestoreOptions configures RestoreDump.
type RestoreOptions struct {
	// Blobs receives the backup's bodies kept outside the database (nil:
	// the backup must have none).
	Blobs    blob.Store
	Progress io.Writer
}

// RestoreDump restores the backup in src into the database at url, which
// must hold no tern schema yet. The bodies go into opts.Blobs first, so
// that no restored row ever names a missing body; then pg_restore loads
// the dump in one transaction.
func RestoreDump(ctx context.Context, src, url string, opts RestoreOptions) (*DumpManifest, error) {
	url = withoutPoolParams(url)
	m, err := ReadDumpManifest(src)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	dumpPath := filepath.Join(src, dumpFile)
	sum, err := fileSHA256(dumpPath)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if sum != m.DumpSHA256 {
		return nil, fmt.Errorf("restore: %s does not match the manifest's SHA-256: damaged backup", dumpPath)
	}
	if m.SchemaVersion > schemaVersion {
		return nil, fmt.Errorf("restore: the backup has schema version %d, this tern knows up to %d: %w", m.SchemaVersion, schemaVersion, errNewerSchema)
	}
	pgRestore, err := pgTool("pg_restore")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := noTernSchema(ctx, url); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if m.Blobs > 0 {
		if opts.Blobs == nil {
			return nil, fmt.Errorf("restore: the backup has %d bodies from a blob store (%s); give the target blob store (--blob-store)", m.Blobs, m.BlobStore)
		}
		progress(opts.Progress, "putting %d bodies into %s", m.Blobs, opts.Blobs)
		n, err := putBlobsFrom(ctx, filepath.Join(src, dumpBlobs), opts.Blobs)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if n != m.Blobs {
			return nil, fmt.Errorf("restore: the backup holds %d bodies, its manifest says %d: damaged backup", n, m.Blobs)
		}
	}
	progress(opts.Progress, "restoring the database (%d users, %d messages) with %s", m.Users, m.Messages, pgRestore)
	cmd := exec.CommandContext(ctx, pgRestore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
		"--dbname="+url, dumpPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("restore: pg_restore: %w: %s", err, bytes.TrimSpace(out))
	}
	return m, nil
}

// withoutPoolParams drops pgxpool's own settings (pool_max_conns, ...)
// from a URL or keyword/value connection string: a single connection,
// pg_dump and pg_restore do not know them.
func withoutPoolParams(conn string) string {
	if u, err := neturl.Parse(conn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		for k := range q {
			if strings.HasPrefix(k, "pool_") {
				q.Del(k)
			}
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	var kept []string
	for _, f := range strings.Fields(conn) {
		if !strings.HasPrefix(f, "pool_") {
			kept = append(kept, f)
		}
	}
	return strings.Join(kept, " ")
}

// ReadDumpManifest reads and checks the manifest of the backup in dir.
func ReadDumpManifest(dir string) (*DumpManifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, dumpManifest))
	if err != nil {
		return nil, fmt.Errorf("no complete backup in %s: %w", dir, err)
	}
	var probe struct {
		Format any `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	if probe.Format != DumpFormat {
		return nil, fmt.Errorf("%s holds no postgres store backup (an embedded store's backup is restored with --data DIR, and moved to PostgreSQL with tern store copy)", dir)
	}
	var m DumpManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", dir, err)
	}
	return &m, nil
}

// IsDump reports whether dir holds a (complete) postgres backup.
func IsDump(dir string) bool {
	_, err := ReadDumpManifest(dir)
	return err == nil
}

// noTernSchema fails unless the database at url has no tern tables.
func noTernSchema(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var found bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('tern_schema') IS NOT NULL OR to_regclass('users') IS NOT NULL`).Scan(&found); err != nil {
		return err
	}
	if found {
		return errors.New("the target database already holds a tern store; restore into a new, empty database")
	}
	return nil
}

// copyBlobOut copies the object key of bs into the new file path, checking
// its content against the key, and fsyncs the file.
func copyBlobOut(ctx context.Context, bs blob.Store, key, path string) (int64, error) {
	obj, err := bs.Open(ctx, key)
	if err != nil {
		return 0, err
	}
	defer obj.Close()
	return writeChecked(io.NewSectionReader(obj, 0, obj.Size()), key, path)
}

// writeChecked writes r into the new file path, fsyncs it, and checks
// its content against key (its hex SHA-256).
func writeChecked(r io.Reader, key, path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != key {
		err = errors.New("content does not match its key: damaged object")
	}
	return n, err
}

// putBlobsFrom puts every file of dir (named by its content key) into bs,
// checking each against its key, and returns how many it put.
func putBlobsFrom(ctx context.Context, dir string, bs blob.Store) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		key := e.Name()
		if err := blob.CheckKey(key); err != nil {
			return n, fmt.Errorf("%s: %w", dir, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, key))
		if err != nil {
			return n, err
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != key {
			return n, fmt.Errorf("body %s: content does not match its key: damaged backup", key)
		}
		if err := bs.Put(ctx, key, data); err != nil {
			return n, fmt.Errorf("body %s: %w", key, err)
		}
		n++
	}
	return n, nil
}

// pgTool finds a PostgreSQL client program: in $TERN_PG_BIN, else in
// the newest /usr/lib/postgresql/N/bin (Debian; a newer pg_dump reads
// older servers, not the other way round), else on $PATH.
func pgTool(name string) (string, error) {
	if d := os.Getenv("TERN_PG_BIN"); d != "" {
		return filepath.Join(d, name), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found (install PostgreSQL's client programs, or set TERN_PG_BIN): %w", name, err)
	}
	return p, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// emptyDir creates dir, or accepts it if it exists and is empty.
func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

// writeManifest writes m as dest's manifest, durably, and syncs dest.
func writeManifest(dest string, m *DumpManifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dest, dumpManifest)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(dest)
}

// syncAndHash fsyncs the file at path and returns its SHA-256.
func syncAndHash(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return "", err
	}
	return fileSHA256(path)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, strings.TrimSuffix(format, "\n")+"\n", args...)
	}
}
