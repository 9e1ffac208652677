// Package outbound is a durable queue of mail that tern itself sends (Sieve
// vacation replies and redirects) through a configured SMTP relay.
//
// Enqueue returns only once the message is on disk (a file in the spool
// directory, fsynced, and its directory entry fsynced), so an accepted
// message survives a crash. A worker sends queued messages one at a time
// with the go-smtp client; a message is removed right after the relay's
// 250 to the end of DATA, so it is not sent again. (A crash between that
// 250 and the removal can still send it twice: no SMTP client can close
// that window.) Temporary failures (connection errors, 4xx) are retried
// with exponential backoff starting at Options.RetryBase; permanent ones
// (5xx), and messages still undelivered after Options.GiveUpAfter, are
// moved to the failed/ directory for the operator and logged.
//
// Another process may add messages to the spool with a Spool (tern
// deliver beside tern serve): the worker rescans queue/ every
// Options.Rescan and sends what it finds.
package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tern-imap/tern/internal/durable"
)

// Defaults for Options.
const (
	DefaultRetryBase   = 2 * time.Second
	DefaultRetryMax    = 10 * time.Minute
	DefaultGiveUpAfter = 5 * 24 * time.Hour
	DefaultTimeout     = 60 * time.Second
	DefaultRescan      = 5 * time.Second
)

// Options configures a Queue.
type Options struct {
	// Relay is the SMTP server (host:port) all mail goes through.
	Relay string
	// Hostname is the EHLO name; "" means the system's host name.
	Hostname string
	// RetryBase is the delay before the first retry; it doubles with
	// every failure up to RetryMax.
	RetryBase, RetryMax time.Duration
	// GiveUpAfter is how long a message is retried before it is moved to
	// failed/.
	GiveUpAfter time.Duration
	// Timeout bounds connecting and each SMTP command.
	Timeout time.Duration
	// Rescan is how often the worker looks for messages other processes
	// put into the spool (Spool); 0 means DefaultRescan.
	Rescan time.Duration
	// TLS: STARTTLS is used whenever the relay offers it, its
	// certificate verified (see TLSOptions).
	TLS TLSOptions
	// Auth, when Username is set, authenticates to the relay (see Auth).
	Auth   Auth
	Logger *slog.Logger
}

// Message is one message to send: the envelope (From may be "", the
// null sender of auto-replies) and the RFC 5322 bytes.
type Message struct {
	From string
	To   []string
	Data []byte
}

// envelope is the first line of a spool file (JSON); the message bytes
// follow it.
type envelope struct {
	From    string    `json:"from"`
	To      []string  `json:"to"`
	Created time.Time `json:"created"`
}

// entry is the worker's state of one queued message.
type entry struct {
	created  time.Time
	next     time.Time
	attempts int
}

// Queue is a durable outbound mail queue over a spool directory.
type Queue struct {
	dir  string
	opts Options
	log  *slog.Logger
	tls  *tls.Config

	mu      sync.Mutex
	pending map[string]*entry

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Open opens (creating) the spool directory dir, picks up messages left
// there by an earlier run (due at once) and starts the worker. It does not
// contact the relay.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.Relay == "" {
		return nil, errors.New("outbound queue: no relay configured")
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	if opts.GiveUpAfter <= 0 {
		opts.GiveUpAfter = DefaultGiveUpAfter
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Rescan <= 0 {
		opts.Rescan = DefaultRescan
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
		if opts.Hostname == "" {
			opts.Hostname = "localhost"
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	tc, err := tlsConfig(opts.Relay, opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("outbound queue: %w", err)
	}
	if err := makeSpool(dir); err != nil {
		return nil, err
	}
	q := &Queue{
		dir:     dir,
		tls:     tc,
		opts:    opts,
		log:     opts.Logger.With("component", "outbound", "relay", opts.Relay),
		pending: map[string]*entry{},
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := q.load(); err != nil {
		return nil, err
	}
	go q.run()
	return q, nil
}

// load registers the spool's messages; half-written files in tmp/ were
// never acknowledged and are removed once they are old enough that no
// other process (Spool) can still be writing them.
func (q *Queue) load() error {
	tmp, err := os.ReadDir(filepath.Join(q.dir, "tmp"))
	if err != nil {
		return fmt.Errorf("outbound queue: %w", err)
	}
	for _, f := range tmp {
		if fi, err := f.Info(); err == nil && time.Since(fi.ModTime()) > staleTmp {
			os.Remove(filepath.Join(q.dir, "tmp", f.Name()))
		}
	}
	q.dropOrphanRetries()
	if err := q.scan(); err != nil {
		return err
	}
	if len(q.pending) > 0 {
		q.log.Info("queued messages from an earlier run", "count", len(q.pending))
	}
	return nil
}

// staleTmp is the age after which a file in tmp/ is a leftover.
const staleTmp = time.Hour

// scan registers the messages in queue/ that the queue does not know
// yet (left by an earlier run or put there by a Spool), due at once.
// Only the worker (and Open, before it starts) calls it.
func (q *Queue) scan() error {
	q.mu.Lock()
	files, err := os.ReadDir(filepath.Join(q.dir, "queue"))
	var unknown []string
	for _, f := range files {
		if isRetryFile(f.Name()) {
			continue
		}
		if _, known := q.pending[f.Name()]; !known {
			unknown = append(unknown, f.Name())
		}
	}
	q.mu.Unlock()
	if err != nil {
		return fmt.Errorf("outbound queue: %w", err)
	}
	now := time.Now()
	for _, id := range unknown {
		env, _, err := q.read(id)
		if err != nil {
			q.log.Error("unreadable queue file; moving it to failed/", "id", id, "err", err)
			q.fail(id)
			continue
		}
		e := &entry{created: env.Created, next: now}
		if st, ok := q.readRetry(id); ok {
			e.attempts, e.next = st.Attempts, st.Next
		}
		q.mu.Lock()
		q.pending[id] = e
		q.mu.Unlock()
	}
	return nil
}

// Enqueue stores m durably and returns its id; the worker sends it soon.
func (q *Queue) Enqueue(ctx context.Context, m Message) (string, error) {
	id, env, err := writeTmp(ctx, q.dir, m)
	if err != nil {
		return "", err
	}
	// Published and registered at once, so that scan never finds it
	// unregistered (and the worker never sends it twice).
	q.mu.Lock()
	if err := publish(q.dir, id); err != nil {
		q.mu.Unlock()
		return "", err
	}
	q.pending[id] = &entry{created: env.Created, next: time.Now()}
	q.mu.Unlock()
	if err := syncQueue(q.dir); err != nil {
		return "", err
	}
	q.log.Debug("queued", "id", id, "from", m.From, "to", m.To, "size", len(m.Data))
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return id, nil
}

// Len returns the number of messages waiting to be sent.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Close stops the worker after the message it is sending, or when ctx
// ends. Queued messages stay in the spool for the next Open.
func (q *Queue) Close(ctx context.Context) error {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close outbound queue: %w", ctx.Err())
	}
}

// run is the worker: it sends due messages, oldest first, then sleeps
// until the next is due, Enqueue wakes it, or Close stops it.
func (q *Queue) run() {
	defer close(q.done)
	lastScan := time.Now()
	for {
		if time.Since(lastScan) >= q.opts.Rescan {
			if err := q.scan(); err != nil {
				q.log.Error("scanning the spool", "err", err)
			}
			lastScan = time.Now()
		}
		id, wait := q.due()
		if id != "" {
			q.attempt(id)
			select {
			case <-q.stop:
				return
			default:
			}
			continue
		}
		t := time.NewTimer(min(wait, q.opts.Rescan))
		select {
		case <-q.stop:
			t.Stop()
			return
		case <-q.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// due returns a message due now (the lowest id, so older first), or how
// long until the next one is due.
func (q *Queue) due() (string, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	wait := time.Hour
	best := ""
	for id, e := range q.pending {
		if d := e.next.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		if best == "" || id < best {
			best = id
		}
	}
	return best, wait
}

// attempt tries to send message id once and records the outcome.
func (q *Queue) attempt(id string) {
	env, data, err := q.read(id)
	if err != nil {
		q.log.Error("unreadable queue file; moving it to failed/", "id", id, "err", err)
		q.fail(id)
		return
	}
	rejected, err := q.send(env, data)
	log := q.log.With("id", id, "from", env.From, "to", env.To)
	for _, r := range rejected {
		log.Warn("recipient rejected by the relay", "rcpt", r.rcpt, "err", r.err)
	}
	switch {
	case err == nil:
		if err := q.remove(id); err != nil {
			log.Error("sent, but removing it from the queue failed", "err", err)
		}
		log.Info("sent", "rejected", len(rejected))
	case permanent(err):
		log.Error("relay refused the message; moved to failed/", "err", err)
		q.fail(id)
	default:
		q.mu.Lock()
		e := q.pending[id]
		e.attempts++
		delay := q.opts.RetryBase << min(e.attempts-1, 30)
		if delay <= 0 || delay > q.opts.RetryMax {
			delay = q.opts.RetryMax
		}
		e.next = time.Now().Add(delay)
		expired := time.Since(e.created) > q.opts.GiveUpAfter
		st := retryState{Attempts: e.attempts, Next: e.next, LastError: err.Error()}
		q.mu.Unlock()
		if werr := q.writeRetry(id, st); werr != nil {
			log.Warn("retry state not saved; after a restart it is due at once", "err", werr)
		}
		if expired {
			log.Error("undelivered for too long; moved to failed/", "err", err, "attempts", e.attempts)
			q.fail(id)
			return
		}
		log.Warn("sending failed; will retry", "err", err, "attempts", e.attempts, "retry_in", delay)
	}
}

// permanent reports whether the relay refused with a 5xx reply.
func permanent(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code >= 500 && se.Code < 600
}

type rejection struct {
	rcpt string
	err  error
}

// errAllRejected: the relay refused every recipient permanently.
var errAllRejected = &smtp.SMTPError{Code: 550, Message: "all recipients rejected"}

// send runs one SMTP transaction. Recipients refused with 5xx are
// returned (and left out); any other failure fails the whole attempt.
func (q *Queue) send(env envelope, data []byte) ([]rejection, error) {
	ctx, cancel := context.WithTimeout(context.Background(), q.opts.Timeout)
	defer cancel()
	c, _, err := q.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Mail(env.From, nil); err != nil {
		return nil, fmt.Errorf("MAIL FROM: %w", err)
	}
	var rejected []rejection
	for _, to := range env.To {
		if err := c.Rcpt(to, nil); err != nil {
			if !permanent(err) {
				return nil, fmt.Errorf("RCPT TO %s: %w", to, err)
			}
			rejected = append(rejected, rejection{to, err})
		}
	}
	if len(rejected) == len(env.To) {
		return rejected, errAllRejected
	}
	w, err := c.Data()
	if err != nil {
		return rejected, fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return rejected, fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return rejected, fmt.Errorf("end of DATA: %w", err)
	}
	c.Quit() // the relay has the message; a failing QUIT changes nothing
	return rejected, nil
}

// read parses spool file id.
func (q *Queue) read(id string) (envelope, []byte, error) {
	var env envelope
	raw, err := os.ReadFile(filepath.Join(q.dir, "queue", id))
	if err != nil {
		return env, nil, err
	}
	head, data, ok := bytes.Cut(raw, []byte("\n"))
	if !ok {
		return env, nil, errors.New("no envelope line")
	}
	if err := json.Unmarshal(head, &env); err != nil {
		return env, nil, fmt.Errorf("envelope: %w", err)
	}
	if len(env.To) == 0 {
		return env, nil, errors.New("envelope without recipients")
	}
	return env, data, nil
}

// remove deletes a sent message, durably.
func (q *Queue) remove(id string) error {
	q.mu.Lock()
	delete(q.pending, id)
	q.mu.Unlock()
	if err := os.Remove(filepath.Join(q.dir, "queue", id)); err != nil {
		return err
	}
	os.Remove(filepath.Join(q.dir, "queue", id+retrySuffix))
	return durable.SyncDir(filepath.Join(q.dir, "queue"))
}

// fail moves message id to failed/.
func (q *Queue) fail(id string) {
	q.mu.Lock()
	delete(q.pending, id)
	q.mu.Unlock()
	if err := os.Rename(filepath.Join(q.dir, "queue", id), filepath.Join(q.dir, "failed", id)); err != nil {
		q.log.Error("move to failed/", "id", id, "err", err)
		return
	}
	// The retry state goes along: attempts and the last error, for the
	// operator.
	os.Rename(filepath.Join(q.dir, "queue", id+retrySuffix), filepath.Join(q.dir, "failed", id+retrySuffix))
	durable.SyncDir(filepath.Join(q.dir, "queue"))
	durable.SyncDir(filepath.Join(q.dir, "failed"))
}

// Retry state. After a temporary failure the attempt count, the time of
// the next attempt and the last error are written to queue/<id>.retry
// (JSON, written to tmp/ and renamed over the old one), so a restart
// keeps the backoff instead of trying everything at once. A message
// without one (new, or written by a Spool) is due at once.

const retrySuffix = ".retry"

type retryState struct {
	Attempts  int       `json:"attempts"`
	Next      time.Time `json:"next"`
	LastError string    `json:"last_error,omitempty"`
}

func isRetryFile(name string) bool { return strings.HasSuffix(name, retrySuffix) }

func (q *Queue) writeRetry(id string, st retryState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(q.dir, "tmp", id+retrySuffix)
	os.Remove(tmp) // a leftover of a crash
	if err := durable.WriteNew(tmp, append(data, '\n')); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(q.dir, "queue", id+retrySuffix)); err != nil {
		os.Remove(tmp)
		return err
	}
	return durable.SyncDir(filepath.Join(q.dir, "queue"))
}

// readRetry reads message id's retry state; ok is false when there is
// none or it is unreadable (then the message is due at once).
func (q *Queue) readRetry(id string) (retryState, bool) {
	var st retryState
	data, err := os.ReadFile(filepath.Join(q.dir, "queue", id+retrySuffix))
	if err != nil {
		return st, false
	}
	if err := json.Unmarshal(data, &st); err != nil {
		q.log.Warn("unreadable retry state; sending at once", "id", id, "err", err)
		return st, false
	}
	return st, true
}

// dropOrphanRetries removes retry states whose message is gone (a crash
// between removing a message and its state).
func (q *Queue) dropOrphanRetries() {
	files, err := os.ReadDir(filepath.Join(q.dir, "queue"))
	if err != nil {
		return
	}
	for _, f := range files {
		if id, ok := strings.CutSuffix(f.Name(), retrySuffix); ok {
			if _, err := os.Stat(filepath.Join(q.dir, "queue", id)); errors.Is(err, os.ErrNotExist) {
				os.Remove(filepath.Join(q.dir, "queue", f.Name()))
			}
		}
	}
}
