// Package delivery gets mail into tern and out again: the LMTP server
// (RFC 2033), local delivery of one message (tern deliver), import from
// Maildir and mbox, and export to both.
//
// Every path stores mail through store.Account.Append, so the store's
// notifier wakes IDLE sessions however a message arrived, and quotas are
// enforced by the store atomically with the write.
package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// Options configures a Deliverer.
type Options struct {
	// Domains are the recipient domains accepted. Empty accepts any.
	Domains []string
	// RecipientDelimiter separates a user from a detail
	// ("alice+lists@example.org"). Empty disables sub-addressing.
	RecipientDelimiter string
	// PostUser is the local part that posts into shared folders (the
	// "Shared Folders" of store.SharedOwner): "<PostUser><delimiter>
	// <folder>@domain" is delivered into that folder, if its ACL gives
	// store.Anyone the post right "p" (RFC 4314 §2.1; Cyrus's postuser).
	// Empty: "+folder@domain". Needs RecipientDelimiter.
	PostUser string
	// QuotaTempFail makes over-quota a temporary failure (452 4.2.2,
	// exit 75) instead of a permanent one (552 5.2.2).
	QuotaTempFail bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Scripts provides users' active Sieve scripts; nil: no filtering.
	Scripts ScriptSource
	// Global are the operator's scripts run before and after each user's
	// and included with "include :global" (LoadGlobalScripts); nil: none.
	// SetGlobal replaces them while the Deliverer runs.
	Global *GlobalScripts
	// SieveLimits bound each script execution (zero: the defaults).
	SieveLimits sieve.Limits
	// Sender queues the mail Sieve scripts send (redirect, vacation);
	// nil: those actions are only logged.
	Sender Sender
}

// Deliverer maps recipient addresses to users and stores messages.
type Deliverer struct {
	st      store.Store
	opts    Options
	log     *slog.Logger
	scripts scriptCache
	// global holds the operator's scripts (Options.Global, then
	// SetGlobal); each delivery loads it once and uses that set.
	global atomic.Pointer[GlobalScripts]
	// imapSieve caches which IMAPSIEVE script each mailbox runs.
	imapSieve imapSieveCache
}

// New returns a Deliverer storing into st.
func New(st store.Store, opts Options) *Deliverer {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Deliverer{st: st, opts: opts, log: log}
	d.global.Store(opts.Global)
	return d
}

// SetGlobal replaces the operator's scripts (a reload): deliveries that
// start afterwards use g, those running finish with the set they began
// with.
func (d *Deliverer) SetGlobal(g *GlobalScripts) { d.global.Store(g) }

// Global returns the operator's scripts in use (nil: none).
func (d *Deliverer) Global() *GlobalScripts { return d.global.Load() }

// Recipient is a resolved recipient address.
type Recipient struct {
	Address string // as given (RCPT TO)
	User    string // tern user name
	Detail  string // sub-address after the delimiter, "" if none
	// Shared: the recipient is the shared folder Detail (User is
	// store.SharedOwner), posted to through Options.PostUser.
	Shared bool
}

// ErrBadDomain is returned by Resolve for a domain not in Options.Domains.
var ErrBadDomain = errors.New("recipient domain not accepted")

// Resolve maps an address to a user. The local part (without a
// +detail) names the user; a user named by the whole address
// ("alice@example.org") is found as well. A user name differing only in
// case matches when no exact one exists. Unknown users give
// store.ErrNoSuchUser (possibly wrapped).
func (d *Deliverer) Resolve(ctx context.Context, addr string) (Recipient, error) {
	r := Recipient{Address: addr}
	local, domain := addr, ""
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		local, domain = addr[:i], addr[i+1:]
	}
	if len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"' {
		local = local[1 : len(local)-1]
	}
	if local == "" {
		return r, fmt.Errorf("recipient %q: empty local part: %w", addr, store.ErrNoSuchUser)
	}
	if domain != "" && len(d.opts.Domains) > 0 && !containsFold(d.opts.Domains, domain) {
		return r, fmt.Errorf("recipient %q: %w: %w", addr, ErrBadDomain, store.ErrNoSuchUser)
	}
	user := local
	if delim := d.opts.RecipientDelimiter; delim != "" {
		prefix := d.opts.PostUser + delim
		if len(local) > len(prefix) && strings.EqualFold(local[:len(prefix)], prefix) {
			return d.resolveShared(ctx, r, local[len(prefix):])
		}
		if i := strings.Index(local, delim); i > 0 {
			user, r.Detail = local[:i], local[i+len(delim):]
		}
	}
	var cands []string
	if domain != "" {
		cands = append(cands, user+"@"+domain)
	}
	cands = append(cands, user)
	if l := strings.ToLower(user); l != user {
		if domain != "" {
			cands = append(cands, l+"@"+strings.ToLower(domain))
		}
		cands = append(cands, l)
	}
	for _, c := range cands {
		if store.IsReservedUser(c) {
			continue // reserved for accounts of no user (store.SharedOwner)
		}
		_, err := d.st.PasswordHash(ctx, c)
		if err == nil {
			r.User = c
			return r, nil
		}
		if !errors.Is(err, store.ErrNoSuchUser) {
			return r, fmt.Errorf("look up recipient %q: %w", addr, err)
		}
	}
	return r, fmt.Errorf("recipient %q: %w", addr, store.ErrNoSuchUser)
}

// resolveShared resolves the shared folder a PostUser address names: it
// must exist, hold messages and give anyone "p". Otherwise the answer is
// store.ErrNoSuchUser, the same for each reason.
func (d *Deliverer) resolveShared(ctx context.Context, r Recipient, folder string) (Recipient, error) {
	acct, err := d.st.Account(ctx, store.SharedOwner)
	if err != nil {
		if errors.Is(err, store.ErrNoSuchUser) {
			return r, fmt.Errorf("recipient %q: no shared folders: %w", r.Address, err)
		}
		return r, fmt.Errorf("look up recipient %q: %w", r.Address, err)
	}
	defer acct.Close()
	if err := checkPostable(ctx, acct, folder); err != nil {
		return r, fmt.Errorf("recipient %q: %w", r.Address, err)
	}
	r.User, r.Detail, r.Shared = store.SharedOwner, folder, true
	return r, nil
}

// checkPostable returns nil if folder of acct exists, holds messages and
// its ACL gives store.Anyone "p"; store.ErrNoSuchUser (wrapped) if not.
func checkPostable(ctx context.Context, acct store.Account, folder string) error {
	mi, err := acct.Mailbox(ctx, folder)
	if errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrInvalidName) || (err == nil && mi.NoSelect) {
		return fmt.Errorf("shared folder %q: %w", folder, store.ErrNoSuchUser)
	}
	if err != nil {
		return fmt.Errorf("shared folder %q: %w", folder, err)
	}
	acl, err := acct.ACL(ctx, folder)
	if errors.Is(err, store.ErrNoSuchMailbox) {
		return fmt.Errorf("shared folder %q: %w", folder, store.ErrNoSuchUser)
	}
	if err != nil {
		return fmt.Errorf("acl of shared folder %q: %w", folder, err)
	}
	for _, e := range acl {
		if e.Identifier == store.Anyone && strings.Contains(e.Rights, "p") {
			return nil
		}
	}
	return fmt.Errorf("shared folder %q: anyone may not post: %w", folder, store.ErrNoSuchUser)
}

// DeliverShared stores msg in the shared folder (store.SharedOwner's
// mailbox), checking the post right again: the ACL may have changed
// since the recipient was resolved. There is no fallback folder.
func (d *Deliverer) DeliverShared(ctx context.Context, folder string, msg []byte) (Result, error) {
	acct, err := d.st.Account(ctx, store.SharedOwner)
	if err != nil {
		return Result{}, fmt.Errorf("deliver to shared folder %q: %w", folder, err)
	}
	defer acct.Close()
	if err := checkPostable(ctx, acct, folder); err != nil {
		return Result{}, err
	}
	res, err := acct.Append(ctx, folder, []store.NewMessage{{Body: msg}})
	if errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrNoSelect) {
		return Result{}, fmt.Errorf("deliver to shared folder %q: %w: %w", folder, err, store.ErrNoSuchUser)
	}
	if err != nil {
		return Result{}, fmt.Errorf("deliver to shared folder %q: %w", folder, err)
	}
	return Result{Mailbox: folder, UID: res.UIDs[0]}, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Result reports one stored message.
type Result struct {
	Mailbox string
	UID     uint32
}

// Deliver stores msg for user in mailbox, or — when mailbox is "" — in
// the folder named by detail if that exists and can hold messages, else
// in INBOX. A named mailbox that does not exist falls back to INBOX too
// (mail is never refused for a folder name).
func (d *Deliverer) Deliver(ctx context.Context, user, mailbox, detail string, msg []byte) (Result, error) {
	acct, err := d.st.Account(ctx, user)
	if err != nil {
		return Result{}, fmt.Errorf("deliver to %q: %w", user, err)
	}
	defer acct.Close()
	return d.deliverTo(ctx, acct, mailbox, detail, msg)
}

// deliverTo is Deliver into an open account.
func (d *Deliverer) deliverTo(ctx context.Context, acct store.Account, mailbox, detail string, msg []byte) (Result, error) {
	user := acct.User()
	target := mailbox
	if target == "" && detail != "" {
		if mi, err := acct.Mailbox(ctx, detail); err == nil && !mi.NoSelect {
			target = mi.Name
		}
	}
	if target == "" {
		target = "INBOX"
	}
	nm := []store.NewMessage{{Body: msg}}
	res, err := acct.Append(ctx, target, nm)
	if target != "INBOX" && (errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrNoSelect)) {
		d.log.Info("delivery folder missing; delivering to INBOX", "user", user, "mailbox", target)
		target = "INBOX"
		res, err = acct.Append(ctx, target, nm)
	}
	if err != nil {
		return Result{}, fmt.Errorf("deliver to %q mailbox %q: %w", user, target, err)
	}
	return Result{Mailbox: target, UID: res.UIDs[0]}, nil
}

// TraceHeaders returns msg (CRLF-normalized) preceded by Return-Path
// (the envelope sender, <> for bounces) and Delivered-To (the recipient
// address). Either is omitted when its argument is nil.
func TraceHeaders(msg []byte, returnPath, deliveredTo *string) []byte {
	var b bytes.Buffer
	b.Grow(len(msg) + 128)
	if returnPath != nil {
		b.WriteString("Return-Path: <")
		b.WriteString(headerSafe(*returnPath))
		b.WriteString(">\r\n")
	}
	if deliveredTo != nil {
		b.WriteString("Delivered-To: ")
		b.WriteString(headerSafe(*deliveredTo))
		b.WriteString("\r\n")
	}
	b.Write(msg)
	return ToCRLF(b.Bytes())
}

// headerSafe keeps an address from breaking the header block.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
}

// ToCRLF turns bare LF line endings into CRLF; existing CRLFs stay. It
// returns b itself when there is nothing to change.
func ToCRLF(b []byte) []byte {
	n := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	if n == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+n)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// ToLF turns CRLF line endings into LF (for Maildir and mbox files).
func ToLF(b []byte) []byte {
	if !bytes.Contains(b, []byte("\r\n")) {
		return b
	}
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
}
