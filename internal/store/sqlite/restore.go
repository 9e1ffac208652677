package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Progress receives one line per user restored. Nil: quiet.
	Progress io.Writer
	// Logger is given to the store opened to check the result. Nil:
	// slog.Default().
	Logger *slog.Logger
}

// restore is one run of Restore.
type restore struct {
	ctx      context.Context
	src, dst string
	opts     RestoreOptions
	dirs     *dirSet
	m        *Manifest
}

// Restore brings the backup in src back as the data directory dataDir,
// which must not exist or be empty. The databases are copied as they are
// (verified against the manifest's SHA-256), so every mailbox keeps its
// UIDVALIDITY, UIDs, flags and modseqs and every user their id. Every file
// and directory written is fsynced. At the end the store is opened and
// checked; problems make Restore fail.
func Restore(ctx context.Context, src, dataDir string, opts RestoreOptions) (*Manifest, error) {
	m, err := ReadManifest(src)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := makeEmptyDir(dataDir); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	r := &restore{ctx: ctx, src: src, dst: dataDir, opts: opts, dirs: newDirSet(), m: m}
	r.dirs.add(dataDir)
	if err := r.run(); err != nil {
		return nil, fmt.Errorf("restore: %w (%s is incomplete: remove it before trying again)", err, dataDir)
	}
	return m, nil
}

// ReadManifest reads and validates the manifest of the backup in dir.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is not a complete tern backup (no %s)", dir, ManifestName)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", filepath.Join(dir, ManifestName), err)
	}
	if m.Format != backupFormat {
		return nil, fmt.Errorf("backup format %d is not supported (this tern reads %d)", m.Format, backupFormat)
	}
	for _, f := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) || f.Path == ManifestName {
			return nil, fmt.Errorf("manifest names a file outside the backup: %q", f.Path)
		}
	}
	return &m, nil
}

func (r *restore) run() error {
	for _, f := range r.m.Files {
		if err := r.copyVerified(f); err != nil {
			return err
		}
	}
	for _, u := range r.m.Users {
		if err := r.bodies(u); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
		if r.opts.Progress != nil {
			fmt.Fprintf(r.opts.Progress, "user %q: %d mailboxes, %d messages, %d bodies, %s\n",
				u.Name, u.Mailboxes, u.Messages, u.Bodies, FormatBytes(u.BodyBytes))
		}
	}
	if err := r.dirs.syncAll(); err != nil {
		return err
	}
	return r.check()
}

// copyVerified copies one manifest file, making its directories, and
// compares size and SHA-256.
func (r *restore) copyVerified(f BackupFile) error {
	rel := filepath.FromSlash(f.Path)
	if err := r.makeParents(rel); err != nil {
		return err
	}
	n, sum, err := copyFile(r.ctx, filepath.Join(r.src, rel), filepath.Join(r.dst, rel), true)
	if err != nil {
		return err
	}
	if n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("%s in the backup is damaged: %d bytes with SHA-256 %s, the manifest says %d bytes with %s",
			f.Path, n, sum, f.Size, f.SHA256)
	}
	return nil
}

// makeParents creates the directories of rel below r.dst.
func (r *restore) makeParents(rel string) error {
	parts := strings.Split(filepath.Dir(rel), string(filepath.Separator))
	dir := r.dst
	for _, p := range parts {
		if p == "." {
			continue
		}
		dir = filepath.Join(dir, p)
		if err := r.dirs.make(dir); err != nil {
			return err
		}
	}
	return nil
}

// bodies copies a user's body files (their sizes are checked afterwards
// against the database by check).
func (r *restore) bodies(u BackupUser) error {
	rel := filepath.Join("users", strconv.FormatInt(u.ID, 10), "blobs")
	if err := r.makeParents(filepath.Join(rel, "x")); err != nil {
		return err
	}
	subs, err := os.ReadDir(filepath.Join(r.src, rel))
	if err != nil {
		return fmt.Errorf("list bodies: %w", err)
	}
	var jobs []copyJob
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		if jobs, err = r.bodyJobs(filepath.Join(rel, sub.Name()), jobs); err != nil {
			return err
		}
	}
	if int64(len(jobs)) != u.Bodies {
		return fmt.Errorf("the backup holds %d body files, the manifest says %d", len(jobs), u.Bodies)
	}
	if err := copyAll(r.ctx, jobs); err != nil {
		return err
	}
	for _, j := range jobs {
		if j.err != nil {
			return j.err
		}
	}
	return nil
}

// bodyJobs makes the directory rel (blobs/xx) and adds its body files to
// jobs.
func (r *restore) bodyJobs(rel string, jobs []copyJob) ([]copyJob, error) {
	files, err := os.ReadDir(filepath.Join(r.src, rel))
	if err != nil {
		return jobs, fmt.Errorf("list bodies: %w", err)
	}
	if err := r.dirs.make(filepath.Join(r.dst, rel)); err != nil {
		return jobs, err
	}
	for _, f := range files {
		if !f.Type().IsRegular() || !validBlobName(f.Name()) {
			continue
		}
		p := filepath.Join(rel, f.Name())
		jobs = append(jobs, copyJob{src: filepath.Join(r.src, p), dst: filepath.Join(r.dst, p)})
	}
	return jobs, nil
}

// check opens the restored store and runs Check on it.
func (r *restore) check() error {
	st, err := Open(r.ctx, r.dst, Options{Logger: r.opts.Logger})
	if err != nil {
		return fmt.Errorf("open restored store: %w", err)
	}
	problems, err := st.Check(r.ctx, false)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("check restored store: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("restored store has %d problem(s), first: %s", len(problems), problems[0])
	}
	return nil
}
