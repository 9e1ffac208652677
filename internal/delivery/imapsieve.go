package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// IMAPSIEVE (RFC 6785): a script runs when a session adds messages to a
// mailbox (APPEND, COPY, MOVE) or changes their flags (FLAG: STORE, or
// the \Seen a FETCH sets). The mailbox's metadata entry
// /shared/imapsieve/script names one of the owner's Sieve scripts (the
// names ManageSieve uses); without that entry the server entry of the
// same name does; an empty value, a mailbox entry naming a missing
// script, or no entry at all run nothing (§2.3.1). Each message gets its
// own execution (§2.2), with sieve.Envelope.IMAP set. The results:
//
//   - keep and the implicit keep leave the message where it is; with
//     imap4flags its flags become the keep's (as if the client had
//     stored them). Header edits never change it (§3.1: IMAP messages
//     are immutable).
//   - fileinto stores a new copy (with the header edits and flags of the
//     action) in the named mailbox, besides the original (§3.3).
//   - redirect sends the message through Options.Sender with the owner's
//     address as envelope sender (§3.4).
//   - When no keep remains (fileinto or redirect without :copy, discard),
//     the original gets \Deleted (§2.2.4); it is not expunged.
//   - A script that fails (runtime error; reject, ereject, vacation and
//     envelope are errors here, §3.11, §4.6) changes nothing.
//
// The runner stores flags through the store directly, not as an IMAP
// STORE, so its own changes never trigger another event (§2.2.3).

// IMAPSieveScriptEntry is the metadata entry that names a mailbox's
// (or, on the server, every mailbox's) IMAPSIEVE script.
const IMAPSieveScriptEntry = "/shared/imapsieve/script"

// IMAPSieveMaxMessages bounds the messages of one event that get the
// script (a COPY of more runs it on the first ones and logs the rest).
const IMAPSieveMaxMessages = 1000

// IMAPEvent is one IMAPSIEVE event.
type IMAPEvent struct {
	Acct      store.Account // the mailbox owner's account
	User      string        // the IMAP user who caused the event
	Mailbox   string        // the mailbox's name in Acct
	MailboxID int64
	UIDs      []uint32 // the messages added (APPEND, COPY)
	Cause     string   // "APPEND", "COPY" or "FLAG"
	From      string   // COPY: the source mailbox (its name in its owner's account)
	// Changed (FLAG) maps each message whose flags changed to the flags
	// that did; UIDs is ignored.
	Changed map[uint32][]string
}

// RunIMAPSieve runs the mailbox's IMAPSIEVE script, if any, on the
// messages of ev. Errors are logged: the IMAP command that caused the
// event has succeeded either way.
func (d *Deliverer) RunIMAPSieve(ctx context.Context, ev IMAPEvent) {
	log := d.log.With("user", ev.Acct.User(), "mailbox", ev.Mailbox, "cause", ev.Cause)
	stages, name := d.imapSieveStages(ctx, ev, log)
	if len(stages) == 0 {
		return
	}
	uids := ev.UIDs
	if ev.Cause == "FLAG" {
		uids = slices.Sorted(maps.Keys(ev.Changed))
	}
	if len(uids) > IMAPSieveMaxMessages {
		log.Warn("imapsieve: script run on the first messages only", "script", name, "messages", len(uids), "limit", IMAPSieveMaxMessages)
		uids = uids[:IMAPSieveMaxMessages]
	}
	flags := map[uint32][]string{}
	err := ev.Acct.Fetch(ctx, ev.MailboxID, uids, store.WantFlags, func(m *store.Message) error {
		flags[m.UID] = slices.Clone(m.Flags)
		return nil
	})
	if err != nil {
		log.Warn("imapsieve: reading flags failed; no script run", "err", err)
		return
	}
	for _, uid := range uids {
		f, ok := flags[uid]
		if !ok {
			continue // expunged meanwhile
		}
		if err := d.imapSieveMessage(ctx, ev, stages, uid, f, ev.Changed[uid]); err != nil {
			log.Warn("imapsieve: script not applied", "script", name, "uid", uid, "err", err)
		}
	}
}

// HasIMAPSieveScript reports whether mailbox (named mailbox, id
// mailboxID in acct) has an IMAPSIEVE script to run on a flag change,
// its own or the operator's (the FLAG cause reads the flags before a
// change only then). The answer is cached (imapsievecache.go).
func (d *Deliverer) HasIMAPSieveScript(ctx context.Context, acct store.Account, mailbox string, mailboxID int64) bool {
	if before, after := d.Global().imapStages(mailbox, "FLAG", ""); len(before)+len(after) > 0 {
		return true
	}
	s, _, err := d.cachedIMAPSieveScript(ctx, acct, mailbox, mailboxID)
	return err == nil && s != nil
}

// imapSieveStages lists the scripts event ev runs: the operator's before
// scripts (sieve.imapsieve_mailbox rules), the mailbox's own script, the
// operator's after scripts. name names the mailbox's own script for
// logs. A mailbox script that cannot be loaded is logged and left out.
func (d *Deliverer) imapSieveStages(ctx context.Context, ev IMAPEvent, log *slog.Logger) ([]stage, string) {
	before, after := d.Global().imapStages(ev.Mailbox, ev.Cause, ev.From)
	script, name, err := d.cachedIMAPSieveScript(ctx, ev.Acct, ev.Mailbox, ev.MailboxID)
	if err != nil {
		log.Warn("imapsieve: the mailbox's script is not run", "err", err)
	}
	stages := before
	if script != nil {
		stages = append(stages, stage{what: "script " + strconv.Quote(name), script: script})
	}
	return append(stages, after...), name
}

// imapSieveScript returns the compiled script the mailbox's (else the
// server's) metadata names, or nil when none is to run.
func (d *Deliverer) imapSieveScript(ctx context.Context, acct store.Account, mailbox string) (*sieve.Script, string, error) {
	name, found, err := metadataValue(ctx, acct, mailbox)
	if err == nil && !found {
		name, _, err = metadataValue(ctx, acct, "")
	}
	if err != nil || name == "" {
		return nil, "", err
	}
	src, err := acct.SieveScript(ctx, name)
	if errors.Is(err, store.ErrNoSuchScript) {
		return nil, "", nil // §2.3.1: a missing script runs nothing
	}
	if err != nil {
		return nil, "", fmt.Errorf("script %q: %w", name, err)
	}
	s, err := d.scripts.compile(src, sieve.Options{})
	if err != nil {
		return nil, "", fmt.Errorf("script %q does not compile: %w", name, err)
	}
	return s, name, nil
}

// metadataValue reads IMAPSieveScriptEntry of mailbox ("" for the
// server); found reports whether the entry exists (even if empty).
func metadataValue(ctx context.Context, acct store.Account, mailbox string) (string, bool, error) {
	entries, err := acct.GetMetadata(ctx, mailbox, []string{IMAPSieveScriptEntry}, store.MetadataDepth0)
	if err != nil {
		return "", false, fmt.Errorf("metadata of %q: %w", mailbox, err)
	}
	for _, e := range entries {
		if strings.EqualFold(e.Name, IMAPSieveScriptEntry) && e.Value != nil {
			return strings.TrimSpace(string(e.Value)), true, nil
		}
	}
	return "", false, nil
}

// imapSieveMessage runs the scripts of stages on one message (as one
// sequence, globalsieve.go) and carries out the result.
func (d *Deliverer) imapSieveMessage(ctx context.Context, ev IMAPEvent, stages []stage, uid uint32, flags, changed []string) error {
	body, err := ev.Acct.OpenBody(ctx, ev.MailboxID, uid)
	if err != nil {
		return fmt.Errorf("open message: %w", err)
	}
	raw, err := io.ReadAll(io.NewSectionReader(body, 0, body.Size()))
	body.Close()
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	owner := ev.Acct.User()
	in := Incoming{User: owner, Address: d.ownAddress(owner), From: d.ownAddress(owner), Body: raw}
	env := d.scriptEnv(ev.Acct, in, d.Global())
	env.From, env.To = "", ""
	env.IMAP = &sieve.IMAPEvent{Cause: ev.Cause, Mailbox: ev.Mailbox, User: ev.User, Email: d.ownAddress(ev.User), Flags: flags, ChangedFlags: changed}
	res := d.runSequence(ctx, in, env, stages, nil)
	keep := res.ImplicitKeep
	var keepFlags []string
	if res.ImplicitKeep {
		keepFlags = res.ImplicitKeepFlags
	}
	redirects := 0
	for _, a := range res.Actions {
		d.log.Debug("imapsieve action", "user", owner, "mailbox", ev.Mailbox, "uid", uid, "action", a.String())
		switch a.Kind {
		case sieve.ActionKeep:
			keep = true
			if a.Flags != nil {
				keepFlags = a.Flags
			}
		case sieve.ActionFileinto:
			dv := sieve.Delivery{Mailbox: a.Mailbox, Flags: a.Flags, Create: a.Create, SpecialUse: a.SpecialUse, MailboxID: a.MailboxID, Header: a.Header}
			if _, err := d.storeCopy(ctx, ev.Acct, in, dv); err != nil {
				return err
			}
		case sieve.ActionRedirect:
			redirects++
			if !d.redirect(ctx, in, a, redirects) && !a.Copy {
				keep = true // not sent: the original stays as it is
			}
		}
	}
	switch {
	case !keep:
		_, err = ev.Acct.StoreFlags(ctx, ev.MailboxID, []uint32{uid}, store.FlagsAdd, []string{`\Deleted`}, 0, false)
	case keepFlags != nil && !sameFlags(keepFlags, flags):
		_, err = ev.Acct.StoreFlags(ctx, ev.MailboxID, []uint32{uid}, store.FlagsReplace, storableFlags(keepFlags), 0, false)
	}
	if err != nil {
		return fmt.Errorf("store flags: %w", err)
	}
	return nil
}

// ownAddress is a user's address: the user name when it is one, else
// the name at the first accepted domain.
func (d *Deliverer) ownAddress(user string) string {
	if strings.Contains(user, "@") || len(d.opts.Domains) == 0 {
		return user
	}
	return user + "@" + d.opts.Domains[0]
}

// sameFlags compares flag lists as sets (system flags case-insensitively).
func sameFlags(a, b []string) bool {
	norm := func(l []string) []string {
		out := make([]string, len(l))
		for i, f := range l {
			if strings.HasPrefix(f, `\`) {
				f = strings.ToLower(f)
			}
			out[i] = f
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}
