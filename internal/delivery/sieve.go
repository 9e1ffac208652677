package delivery

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// ScriptSource provides users' Sieve scripts. ActiveScript returns the
// user's active script, or nil and no error when the user has none.
// Options.Scripts nil means no filtering; cmd/tern uses the store when it
// implements this interface.
type ScriptSource interface {
	ActiveScript(ctx context.Context, user string) ([]byte, error)
}

// IncludeSource is implemented by a ScriptSource that can also return a
// named script of a user (or a global one) for "include" (RFC 6609).
type IncludeSource interface {
	Script(ctx context.Context, user, name string, global bool) ([]byte, error)
}

// activeSieveScripter and namedSieveScripter are the parts of an account
// that keeps Sieve scripts (the store's script storage) that delivery
// uses; accounts without them have no scripts.
type activeSieveScripter interface {
	// ActiveSieveScript returns the active script, nil when none is.
	ActiveSieveScript(ctx context.Context) (content []byte, name string, err error)
}

type namedSieveScripter interface {
	SieveScript(ctx context.Context, name string) ([]byte, error)
}

// StoreScripts is the ScriptSource of st: each user's active script as
// the store keeps it (none when the store's accounts keep no scripts).
// "include :global" finds nothing here: global scripts come from
// Options.Global.
// DeliverFiltered asks the account it delivers to, so this costs no
// extra account lookup.
func StoreScripts(st store.Store) ScriptSource { return storeScripts{st} }

type storeScripts struct{ st store.Store }

func (s storeScripts) ActiveScript(ctx context.Context, user string) ([]byte, error) {
	acct, err := s.st.Account(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("sieve scripts of %q: %w", user, err)
	}
	defer acct.Close()
	return activeScriptOf(ctx, acct)
}

func activeScriptOf(ctx context.Context, acct store.Account) ([]byte, error) {
	a, ok := acct.(activeSieveScripter)
	if !ok {
		return nil, nil
	}
	src, _, err := a.ActiveSieveScript(ctx)
	return src, err
}

func (s storeScripts) Script(ctx context.Context, user, name string, global bool) ([]byte, error) {
	if global {
		return nil, fmt.Errorf("global script %q: %w", name, sieve.ErrScriptNotFound)
	}
	acct, err := s.st.Account(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("sieve scripts of %q: %w", user, err)
	}
	defer acct.Close()
	n, ok := acct.(namedSieveScripter)
	if !ok {
		return nil, fmt.Errorf("script %q: %w", name, sieve.ErrScriptNotFound)
	}
	src, err := n.SieveScript(ctx, name)
	if errors.Is(err, store.ErrNoSuchScript) {
		// include :optional skips a missing script (RFC 6609 §3.2).
		return nil, fmt.Errorf("script %q: %w", name, sieve.ErrScriptNotFound)
	}
	return src, err
}

// RejectError is returned by DeliverFiltered when the user's script
// rejected the message: LMTP answers 550 5.7.1 with the reason.
type RejectError struct{ Reason string }

func (e *RejectError) Error() string { return "rejected by the recipient's filter: " + e.Reason }

// Incoming is one message for one recipient.
type Incoming struct {
	User    string // tern user name
	Detail  string // sub-address, "" if none
	Address string // envelope recipient as given (RCPT TO), for the script
	From    string // envelope sender, "" for <>
	// Mailbox, when set, names the target and bypasses the filter (tern
	// deliver --mailbox).
	Mailbox string
	Body    []byte // with trace headers, CRLF
}

// scriptCache keeps compiled scripts by the SHA-256 of their source, so a
// delivery compiles a user's script once, not per message.
type scriptCache struct {
	mu sync.Mutex
	m  map[[32]byte]*sieve.Script
}

const scriptCacheMax = 1024

func (c *scriptCache) compile(src []byte, opts sieve.Options) (*sieve.Script, error) {
	key := sha256.Sum256(src)
	c.mu.Lock()
	s, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := sieve.Compile(src, opts)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= scriptCacheMax {
		c.m = map[[32]byte]*sieve.Script{}
	}
	c.m[key] = s
	c.mu.Unlock()
	return s, nil
}

// accountMailboxes lists an account's mailboxes for the script.
type accountMailboxes struct{ acct store.Account }

func (a accountMailboxes) Mailboxes(ctx context.Context) ([]sieve.MailboxInfo, error) {
	list, err := a.acct.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]sieve.MailboxInfo, 0, len(list))
	for i := range list {
		mb := sieve.MailboxInfo{Name: list[i].Name, ID: list[i].ObjectID()}
		if list[i].SpecialUse != "" {
			mb.SpecialUse = strings.Fields(list[i].SpecialUse)
		}
		out = append(out, mb)
	}
	return out, nil
}

// DeliverFiltered stores a message for one recipient, running the
// operator's before scripts, the user's active Sieve script (when
// Options.Scripts provides one) and the after scripts (Options.Global;
// see globalsieve.go for how they combine). Without any script (or with
// Incoming.Mailbox set) it is Deliver. It returns where copies were
// stored: none when the scripts discarded the message, and a
// *RejectError when one rejected it. A script that fails to compile or
// stops with a runtime error counts as an implicit keep (INBOX). With a
// user script, "keep" means INBOX; the +detail folder rule applies only
// without one (scripts have subaddress for that). An error from the
// ScriptSource is a temporary failure (the MTA retries), so mail is not
// delivered unfiltered while script storage is unavailable.
func (d *Deliverer) DeliverFiltered(ctx context.Context, in Incoming) ([]Result, error) {
	global := d.Global()
	if (d.opts.Scripts == nil && !global.Runs()) || in.Mailbox != "" {
		r, err := d.Deliver(ctx, in.User, in.Mailbox, in.Detail, in.Body)
		if err != nil {
			return nil, err
		}
		return []Result{r}, nil
	}
	acct, err := d.st.Account(ctx, in.User)
	if err != nil {
		return nil, fmt.Errorf("deliver to %q: %w", in.User, err)
	}
	defer acct.Close()
	var src []byte
	switch d.opts.Scripts.(type) {
	case nil:
	case storeScripts:
		src, err = activeScriptOf(ctx, acct)
	default:
		src, err = d.opts.Scripts.ActiveScript(ctx, in.User)
	}
	if err != nil {
		return nil, fmt.Errorf("active sieve script of %q: %w", in.User, err)
	}
	stages := d.stages(global, src)
	if len(stages) == 0 {
		r, err := d.deliverTo(ctx, acct, "", in.Detail, in.Body)
		if err != nil {
			return nil, err
		}
		return []Result{r}, nil
	}
	res := d.runSequence(ctx, in, d.scriptEnv(acct, in, global), stages, nil)
	if src != nil {
		in.Detail = "" // keep means INBOX under the user's own script
	}
	return d.applyResult(ctx, acct, in, res)
}

// scriptEnv is the envelope and the storage hooks the scripts of one
// delivery run with; include :global reads global's directory.
func (d *Deliverer) scriptEnv(acct store.Account, in Incoming, global *GlobalScripts) sieve.Envelope {
	inc := includeResolver{user: in.User, global: global}
	inc.personal, _ = d.opts.Scripts.(IncludeSource)
	return sieve.Envelope{
		From: in.From, To: in.Address,
		UserAddresses: d.userAddresses(in),
		Mailboxes:     accountMailboxes{acct},
		Duplicates:    accountDuplicates{acct},
		Include:       inc,
	}
}

// applyResult carries out a script's decisions: reject, the deliveries
// (keep plus fileinto INBOX is one copy), then redirects, the vacation
// reply and the duplicate marks (sendOutgoing), only once the message
// is stored.
func (d *Deliverer) applyResult(ctx context.Context, acct store.Account, in Incoming, res *sieve.Result) ([]Result, error) {
	for _, a := range res.Actions {
		d.log.Debug("sieve action", "user", in.User, "action", a.String(), "line", a.Line)
		switch a.Kind {
		case sieve.ActionReject, sieve.ActionEreject:
			return nil, &RejectError{Reason: a.Reason}
		}
	}
	var out []Result
	var firstErr error
	for _, dv := range res.Deliveries() {
		r, err := d.storeCopy(ctx, acct, in, dv)
		if err != nil {
			d.log.Error("sieve: storing a copy failed", "user", in.User, "mailbox", dv.Mailbox, "err", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		out = append(out, r)
	}
	if len(out) == 0 && firstErr != nil {
		return nil, firstErr
	}
	if d.sendOutgoing(ctx, acct, in, res) && len(out) == 0 {
		// A redirect that was to replace the keep was not done: the
		// implicit keep applies, so the message is not lost.
		r, err := d.storeCopy(ctx, acct, in, sieve.Delivery{Mailbox: "INBOX", Header: res.FinalHeader})
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// storeCopy stores one delivery: the mailbox named by :mailboxid, else
// the one with the :specialuse flag, else the named one (created with
// :create), else INBOX — a missing folder never loses the message.
func (d *Deliverer) storeCopy(ctx context.Context, acct store.Account, in Incoming, dv sieve.Delivery) (Result, error) {
	body := in.Body
	if dv.Header != nil {
		msg := sieve.NewMessage(in.Body)
		body = append(append([]byte{}, dv.Header...), msg.Body()...)
	}
	target := dv.Mailbox
	if target == "INBOX" && in.Detail != "" && dv.SpecialUse == "" && dv.MailboxID == "" {
		// Only global scripts ran: their keep follows the +detail rule.
		if mi, err := acct.Mailbox(ctx, in.Detail); err == nil && !mi.NoSelect {
			target = mi.Name
		}
	}
	if dv.MailboxID != "" || dv.SpecialUse != "" {
		if name, ok := findTarget(ctx, acct, dv); ok {
			target = name
		}
	}
	nm := []store.NewMessage{{Body: body, Flags: storableFlags(dv.Flags)}}
	ar, err := acct.Append(ctx, target, nm)
	if errors.Is(err, store.ErrNoSuchMailbox) && dv.Create {
		use := ""
		if dv.SpecialUse != "" {
			use = dv.SpecialUse
		}
		if cerr := acct.CreateMailbox(ctx, target, use); cerr != nil && !errors.Is(cerr, store.ErrMailboxExists) {
			d.log.Info("sieve: fileinto :create failed", "user", in.User, "mailbox", target, "err", cerr)
		}
		ar, err = acct.Append(ctx, target, nm)
	}
	if target != "INBOX" && (errors.Is(err, store.ErrNoSuchMailbox) || errors.Is(err, store.ErrNoSelect) || errors.Is(err, store.ErrInvalidName)) {
		d.log.Info("sieve: fileinto folder missing; delivering to INBOX", "user", in.User, "mailbox", target)
		target = "INBOX"
		ar, err = acct.Append(ctx, target, nm)
	}
	if err != nil {
		return Result{}, fmt.Errorf("deliver to %q mailbox %q: %w", in.User, target, err)
	}
	return Result{Mailbox: target, UID: ar.UIDs[0]}, nil
}

func findTarget(ctx context.Context, acct store.Account, dv sieve.Delivery) (string, bool) {
	list, err := acct.Mailboxes(ctx)
	if err != nil {
		return "", false
	}
	if dv.MailboxID != "" {
		for i := range list {
			if list[i].ObjectID() == dv.MailboxID && !list[i].NoSelect {
				return list[i].Name, true
			}
		}
	}
	if dv.SpecialUse != "" {
		for i := range list {
			for _, u := range strings.Fields(list[i].SpecialUse) {
				if strings.EqualFold(u, dv.SpecialUse) && !list[i].NoSelect {
					return list[i].Name, true
				}
			}
		}
	}
	return "", false
}

// storableFlags keeps the flags an IMAP mailbox can hold: the system
// flags but \Recent, and keywords that are IMAP atoms.
func storableFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			switch strings.ToLower(f) {
			case `\seen`, `\answered`, `\flagged`, `\deleted`, `\draft`:
				out = append(out, f)
			}
			continue
		}
		if isAtom(f) {
			out = append(out, f)
		}
	}
	return out
}

func isAtom(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// logResults is the one "delivered" log line per stored copy.
func logResults(log *slog.Logger, proto, user string, size int, res []Result) {
	if len(res) == 0 {
		log.Info("discarded by sieve", "proto", proto, "user", user, "size", size)
	}
	for _, r := range res {
		log.Info("delivered", "proto", proto, "user", user, "mailbox", r.Mailbox, "uid", r.UID, "size", size)
	}
}
