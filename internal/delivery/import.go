package delivery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// ImportOptions configures Import.
type ImportOptions struct {
	// Mailbox receives the source's top folder (a single mbox file, or a
	// Maildir's INBOX); the source's other folders go below it. Empty:
	// the top folder goes to INBOX and the others keep their names.
	Mailbox string
	// MboxFormat is how "From " lines in bodies were quoted: "mboxrd"
	// (default: one '>' is removed from every ">...>From " line) or
	// "mboxo" (only ">From " loses its '>').
	MboxFormat string
	// Progress, if set, is called about every 200ms and once at the end.
	Progress func(Progress)
}

// Progress reports how far an import or export is.
type Progress struct {
	Messages   int   // messages handled (stored or skipped)
	Total      int   // messages in the source, -1 if unknown (mbox)
	Bytes      int64 // source bytes handled
	TotalBytes int64 // source bytes, -1 if unknown
	Elapsed    time.Duration
}

// ImportStats summarizes an import.
type ImportStats struct {
	Imported   int      // messages stored
	Duplicates int      // messages already in their mailbox, skipped
	Mailboxes  []string // mailboxes written to (or checked), in order
	Bytes      int64    // bytes stored
}

// srcMessage is one message read from a source.
type srcMessage struct {
	body  []byte // CRLF
	flags []string
	date  time.Time // zero if unknown
	size  int64     // bytes of the source it came from (progress)
}

// srcFolder is one folder of a source. name uses "/" and is relative to
// the source's top ("" is the top folder itself).
type srcFolder struct {
	name  string
	count int   // messages, -1 if unknown
	bytes int64 // source bytes
	each  func(fn func(srcMessage) error) error
}

// Import copies the mail at path — an mbox file, a Maildir (Maildir++ with
// .Sub.Folder directories, or one directory per folder), or a directory
// tree of mbox files — into acct. It is idempotent: a message whose exact
// bytes are already in the target mailbox (counted with multiplicity) is
// skipped, so importing the same source twice, or resuming an interrupted
// import, stores nothing twice.
func Import(ctx context.Context, acct store.Account, src string, opts ImportOptions) (ImportStats, error) {
	var stats ImportStats
	switch opts.MboxFormat {
	case "", "mboxrd", "mboxo":
	default:
		return stats, fmt.Errorf("import: unknown mbox format %q (mboxrd or mboxo)", opts.MboxFormat)
	}
	folders, err := scanSource(src, opts.MboxFormat == "mboxo")
	if err != nil {
		return stats, fmt.Errorf("import %s: %w", src, err)
	}
	if len(folders) == 0 {
		return stats, fmt.Errorf("import %s: no Maildir or mbox found", src)
	}
	prog := newProgressor(opts.Progress, folders)
	defer prog.finish()
	for _, f := range folders {
		target := targetName(opts.Mailbox, f.name)
		if err := ensureMailbox(ctx, acct, target); err != nil {
			return stats, fmt.Errorf("import folder %q: %w", f.name, err)
		}
		stats.Mailboxes = append(stats.Mailboxes, target)
		imp := &folderImporter{ctx: ctx, acct: acct, mailbox: target, stats: &stats, prog: prog}
		if err := f.each(imp.add); err != nil {
			return stats, fmt.Errorf("import folder %q: %w", f.name, err)
		}
		if err := imp.flush(); err != nil {
			return stats, fmt.Errorf("import folder %q: %w", f.name, err)
		}
	}
	return stats, nil
}

func targetName(prefix, name string) string {
	switch {
	case prefix == "" && name == "":
		return "INBOX"
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return path.Join(prefix, name)
}

func ensureMailbox(ctx context.Context, acct store.Account, name string) error {
	mi, err := acct.Mailbox(ctx, name)
	if err == nil && !mi.NoSelect {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNoSuchMailbox) {
		return err
	}
	if err := acct.CreateMailbox(ctx, name, ""); err != nil && !errors.Is(err, store.ErrMailboxExists) {
		return fmt.Errorf("create mailbox %q: %w", name, err)
	}
	return nil
}

const (
	importBatchMessages = 64
	importBatchBytes    = 8 << 20
)

// folderImporter batches one folder's messages into Appends, skipping
// those already present.
type folderImporter struct {
	ctx     context.Context
	acct    store.Account
	mailbox string
	stats   *ImportStats
	prog    *progressor

	index      *dupIndex
	batch      []store.NewMessage
	batchBytes int
}

func (fi *folderImporter) add(m srcMessage) error {
	if err := fi.ctx.Err(); err != nil {
		return err
	}
	if fi.index == nil {
		idx, err := newDupIndex(fi.ctx, fi.acct, fi.mailbox)
		if err != nil {
			return err
		}
		fi.index = idx
	}
	dup, err := fi.index.take(m.body)
	if err != nil {
		return err
	}
	if dup {
		fi.stats.Duplicates++
		fi.prog.add(1, m.size)
		return nil
	}
	fi.batch = append(fi.batch, store.NewMessage{Body: m.body, Flags: m.flags, InternalDate: m.date})
	fi.batchBytes += len(m.body)
	fi.prog.add(1, m.size)
	if len(fi.batch) >= importBatchMessages || fi.batchBytes >= importBatchBytes {
		return fi.flush()
	}
	return nil
}

func (fi *folderImporter) flush() error {
	if len(fi.batch) == 0 {
		return nil
	}
	if _, err := fi.acct.Append(fi.ctx, fi.mailbox, fi.batch); err != nil {
		return err
	}
	fi.stats.Imported += len(fi.batch)
	fi.stats.Bytes += int64(fi.batchBytes)
	fi.batch, fi.batchBytes = fi.batch[:0], 0
	return nil
}

// dupIndex finds messages already in a mailbox by exact content. It reads
// only sizes up front; bodies of the same size as an incoming message are
// hashed when first needed. Each existing message matches at most one
// incoming message.
type dupIndex struct {
	ctx    context.Context
	acct   store.Account
	id     int64
	bySize map[int64][]uint32 // not yet hashed
	hashes map[[32]byte]int   // hashed, unmatched, by content
}

func newDupIndex(ctx context.Context, acct store.Account, mailbox string) (*dupIndex, error) {
	mi, err := acct.Mailbox(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	_, uids, err := acct.Snapshot(ctx, mi.ID)
	if err != nil {
		return nil, err
	}
	d := &dupIndex{ctx: ctx, acct: acct, id: mi.ID, bySize: map[int64][]uint32{}, hashes: map[[32]byte]int{}}
	if len(uids) == 0 {
		return d, nil
	}
	err = acct.Fetch(ctx, mi.ID, uids, store.WantSize, func(m *store.Message) error {
		d.bySize[m.Size] = append(d.bySize[m.Size], m.UID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// take reports whether an unmatched existing message has exactly body,
// and if so marks it matched.
func (d *dupIndex) take(body []byte) (bool, error) {
	size := int64(len(body))
	if uids, ok := d.bySize[size]; ok {
		delete(d.bySize, size)
		for _, uid := range uids {
			h, err := d.hashStored(uid)
			if err != nil {
				return false, err
			}
			d.hashes[h]++
		}
	}
	if len(d.hashes) == 0 {
		return false, nil
	}
	h := sha256.Sum256(body)
	if d.hashes[h] > 0 {
		d.hashes[h]--
		return true, nil
	}
	return false, nil
}

func (d *dupIndex) hashStored(uid uint32) ([32]byte, error) {
	b, err := d.acct.OpenBody(d.ctx, d.id, uid)
	if err != nil {
		return [32]byte{}, err
	}
	defer b.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(b, 0, b.Size())); err != nil {
		return [32]byte{}, fmt.Errorf("read UID %d: %w", uid, err)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}

// scanSource finds the folders at path.
func scanSource(src string, mboxo bool) ([]srcFolder, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		f, err := mboxFolder(src, "", fi.Size(), mboxo)
		if err != nil {
			return nil, err
		}
		return []srcFolder{f}, nil
	}
	if isMaildir(src) {
		return scanMaildir(src)
	}
	return scanMboxTree(src, mboxo)
}

// progressor rate-limits Progress callbacks.
type progressor struct {
	fn    func(Progress)
	p     Progress
	start time.Time
	last  time.Time
}

func newProgressor(fn func(Progress), folders []srcFolder) *progressor {
	p := &progressor{fn: fn, start: time.Now()}
	for _, f := range folders {
		if f.count < 0 || p.p.Total < 0 {
			p.p.Total = -1
		} else {
			p.p.Total += f.count
		}
		p.p.TotalBytes += f.bytes
	}
	return p
}

func (p *progressor) add(msgs int, bytes int64) {
	p.p.Messages += msgs
	p.p.Bytes += bytes
	if p.fn == nil {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond {
		p.last = now
		p.p.Elapsed = now.Sub(p.start)
		p.fn(p.p)
	}
}

func (p *progressor) finish() {
	if p.fn != nil {
		p.p.Elapsed = time.Since(p.start)
		p.fn(p.p)
	}
}
