package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/tern-imap/tern/internal/outbound"
	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// Sender takes mail to send: internal/outbound's Queue, which stores a
// message durably before Enqueue returns and sends it later.
type Sender interface {
	Enqueue(ctx context.Context, m outbound.Message) (string, error)
}

// LoopHeader marks a message redirected by a user's Sieve script; its
// value is the user. A message that already carries it for the user is
// not redirected again (loop detection).
const LoopHeader = "X-Tern-Loop"

// maxLoopHeaders: a message that went through this many redirects here
// (by any users) is not redirected again.
const maxLoopHeaders = 8

// accountDuplicates answers the duplicate test (RFC 7352) from the
// account's Sieve state.
type accountDuplicates struct{ acct store.Account }

func (a accountDuplicates) Seen(ctx context.Context, key string) (bool, error) {
	return a.acct.SieveStateSeen(ctx, store.SieveDuplicate, key)
}

// sendOutgoing carries out a script's redirects and vacation reply after
// the message was stored (so a retried delivery does not send twice) and
// records the duplicate test's marks. It reports whether a redirect that
// cancelled the implicit keep was not done, so the caller keeps the
// message. Without an Options.Sender redirects and replies are only
// logged.
func (d *Deliverer) sendOutgoing(ctx context.Context, acct store.Account, in Incoming, res *sieve.Result) (keep bool) {
	redirects := 0
	for _, a := range res.Actions {
		switch a.Kind {
		case sieve.ActionRedirect:
			redirects++
			if !d.redirect(ctx, in, a, redirects) && !a.Copy {
				keep = true
			}
		case sieve.ActionVacation:
			d.vacation(ctx, acct, in, a.Vacation)
		}
	}
	now := time.Now()
	for _, m := range res.DuplicateMarks {
		if err := acct.MarkSieveState(ctx, store.SieveDuplicate, m.Key, now.Add(m.Expiry)); err != nil {
			d.log.Warn("sieve: recording a duplicate id failed", "user", in.User, "err", err)
		}
	}
	return keep
}

// redirect enqueues the message for a.Address with the original envelope
// sender (RFC 5228 §4.2) and a loop header; n counts the redirects of
// this message. It reports whether the message was queued.
func (d *Deliverer) redirect(ctx context.Context, in Incoming, a sieve.Action, n int) bool {
	if d.opts.Sender == nil {
		d.log.Info("sieve: redirect not sent (no outbound relay configured)", "user", in.User, "to", a.Address, "copy", a.Copy)
		return false
	}
	if maxN := d.maxRedirects(); n > maxN {
		d.log.Warn("sieve: redirect over the limit not sent", "user", in.User, "to", a.Address, "limit", maxN)
		return false
	}
	raw := sieve.NewMessage(in.Body)
	header := in.Body[:len(in.Body)-len(raw.Body())]
	if mine, count := loopHeaders(header, in.User); mine || count >= maxLoopHeaders {
		d.log.Warn("sieve: redirect loop; not redirected again", "user", in.User, "to", a.Address, "loop_headers", count)
		return false
	}
	if a.Header != nil {
		header = a.Header
	}
	msg := redirectMessage(in.User, header, raw.Body())
	id, err := d.opts.Sender.Enqueue(ctx, outbound.Message{From: in.From, To: []string{a.Address}, Data: msg})
	if err != nil {
		d.log.Error("sieve: queueing a redirect failed", "user", in.User, "to", a.Address, "err", err)
		return false
	}
	d.log.Info("sieve: redirect queued", "user", in.User, "to", a.Address, "id", id)
	return true
}

func (d *Deliverer) maxRedirects() int {
	if n := d.opts.SieveLimits.MaxRedirects; n > 0 {
		return n
	}
	return sieve.DefaultLimits().MaxRedirects
}

// vacation enqueues the reply v (built by the interpreter, RFC 5230 §5)
// with the null envelope sender, unless one went out for v.Key within
// v.Period. The period is claimed before the reply is queued
// (store.SieveStateStore.ClaimSieveState, atomic across processes and
// nodes), so two deliveries of the same sender at once send one reply; a
// reply that cannot be queued gives the claim back.
func (d *Deliverer) vacation(ctx context.Context, acct store.Account, in Incoming, v *sieve.Vacation) {
	if d.opts.Sender == nil {
		d.log.Info("sieve: vacation reply not sent (no outbound relay configured)", "user", in.User, "to", v.To)
		return
	}
	sum := sha256.Sum256([]byte(v.Key))
	key := hex.EncodeToString(sum[:])
	claimed, err := acct.ClaimSieveState(ctx, store.SieveVacation, key, time.Now().Add(v.Period))
	if err != nil {
		d.log.Error("sieve: vacation state unwritable; no reply", "user", in.User, "to", v.To, "err", err)
		return
	}
	if !claimed {
		d.log.Debug("sieve: vacation reply already sent in this period", "user", in.User, "to", v.To)
		return
	}
	id, err := d.opts.Sender.Enqueue(ctx, outbound.Message{From: "", To: []string{v.To}, Data: v.Message})
	if err != nil {
		d.log.Error("sieve: queueing a vacation reply failed", "user", in.User, "to", v.To, "err", err)
		if err := acct.MarkSieveState(context.WithoutCancel(ctx), store.SieveVacation, key, time.Now()); err != nil {
			d.log.Error("sieve: giving back the vacation period failed; no reply to this sender until it ends", "user", in.User, "to", v.To, "err", err)
		}
		return
	}
	d.log.Info("sieve: vacation reply queued", "user", in.User, "to", v.To, "id", id)
}

// redirectMessage is the message to redirect: the loop header for user,
// the header without the Return-Path this delivery added (the next final
// delivery adds its own), then the body.
func redirectMessage(user string, header, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(header) + len(body) + 64)
	fmt.Fprintf(&b, "%s: %s\r\n", LoopHeader, headerSafe(user))
	forEachField(header, func(name string, field []byte) {
		if !strings.EqualFold(name, "Return-Path") {
			b.Write(field)
		}
	})
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n\r\n")) {
		b.WriteString("\r\n")
	}
	b.Write(body)
	return b.Bytes()
}

// loopHeaders reports whether header carries our loop header for user,
// and how many loop headers it carries.
func loopHeaders(header []byte, user string) (mine bool, count int) {
	forEachField(header, func(name string, field []byte) {
		if !strings.EqualFold(name, LoopHeader) {
			return
		}
		count++
		_, v, _ := bytes.Cut(field, []byte(":"))
		if strings.EqualFold(strings.TrimSpace(string(v)), user) {
			mine = true
		}
	})
	return mine, count
}

// forEachField calls fn with each field of a header block (with its
// continuation lines and line ends); the blank line ending the block is
// passed with an empty name.
func forEachField(header []byte, fn func(name string, field []byte)) {
	for len(header) > 0 {
		end := lineEnd(header, 0)
		for end < len(header) && (header[end] == ' ' || header[end] == '\t') {
			end = lineEnd(header, end)
		}
		field := header[:end]
		name, _, _ := bytes.Cut(field, []byte(":"))
		if len(bytes.TrimSpace(field)) == 0 {
			name = nil
		}
		fn(string(bytes.TrimSpace(name)), field)
		header = header[end:]
	}
}

// lineEnd returns the index after the line starting at i (after its LF).
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// userAddresses are the addresses that count as the user's own for
// vacation (RFC 5230 §4.5): the recipient address, and the user name
// when it is an address, else the name at each accepted domain.
func (d *Deliverer) userAddresses(in Incoming) []string {
	out := []string{in.Address}
	if strings.Contains(in.User, "@") {
		return append(out, in.User)
	}
	for _, dom := range d.opts.Domains {
		out = append(out, in.User+"@"+dom)
	}
	return out
}
