package outbound

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tern-imap/tern/internal/durable"
)

// Spool puts messages into a queue's spool directory without sending
// them: for a process (tern deliver) that runs beside the one whose Queue
// owns the spool and its worker (tern serve), which picks them up within
// its Options.Rescan. Enqueue is as durable as Queue.Enqueue.
type Spool struct{ dir string }

// OpenSpool opens (creating) the spool directory dir for writing.
func OpenSpool(dir string) (*Spool, error) {
	if err := makeSpool(dir); err != nil {
		return nil, err
	}
	return &Spool{dir: dir}, nil
}

// Enqueue stores m durably and returns its id.
func (s *Spool) Enqueue(ctx context.Context, m Message) (string, error) {
	id, _, err := writeTmp(ctx, s.dir, m)
	if err != nil {
		return "", err
	}
	if err := publish(s.dir, id); err != nil {
		return "", err
	}
	return id, syncQueue(s.dir)
}

// makeSpool creates the spool's directories.
func makeSpool(dir string) error {
	for _, sub := range []string{"tmp", "queue", "failed"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return fmt.Errorf("outbound queue: %w", err)
		}
	}
	return nil
}

// writeTmp checks m and writes it to tmp/<id>, fsynced; the id starts
// with the time, so ids sort by age. publish makes it a queued message.
func writeTmp(ctx context.Context, dir string, m Message) (string, envelope, error) {
	var env envelope
	if len(m.To) == 0 {
		return "", env, errors.New("enqueue: no recipients")
	}
	for _, a := range append([]string{m.From}, m.To...) {
		if strings.ContainsAny(a, "\r\n<>") {
			return "", env, fmt.Errorf("enqueue: invalid address %q", a)
		}
	}
	if err := ctx.Err(); err != nil {
		return "", env, fmt.Errorf("enqueue: %w", err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	id := fmt.Sprintf("%d-%s", time.Now().UnixNano(), hex.EncodeToString(rnd[:]))
	env = envelope{From: m.From, To: m.To, Created: time.Now().UTC()}
	head, err := json.Marshal(env)
	if err != nil {
		return "", env, fmt.Errorf("enqueue: %w", err)
	}
	tmp := filepath.Join(dir, "tmp", id)
	if err := durable.WriteNew(tmp, append(append(head, '\n'), m.Data...)); err != nil {
		os.Remove(tmp)
		return "", env, fmt.Errorf("enqueue: %w", err)
	}
	return id, env, nil
}

// publish moves tmp/<id> into queue/; syncQueue then makes that durable.
func publish(dir, id string) error {
	tmp := filepath.Join(dir, "tmp", id)
	if err := os.Rename(tmp, filepath.Join(dir, "queue", id)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

func syncQueue(dir string) error {
	if err := durable.SyncDir(filepath.Join(dir, "queue")); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}
