package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tern-imap/tern/internal/store"
)

// op names a store operation in tern_store_operation_duration_seconds.
type op int

const (
	opAccount op = iota
	opPasswordHash
	opMailboxes
	opMailbox
	opCreateMailbox
	opDeleteMailbox
	opRenameMailbox
	opSubscriptions
	opSetSubscribed
	opStatus
	opSnapshot
	opClaimRecent
	opChanges
	opVanished
	opFetch
	opOpenBody
	opAppend
	opStoreFlags
	opExpunge
	opCopy
	opMove
	opQuota
	opSetQuota
	opGetMetadata
	opSetMetadata
	opSieveScripts
	opSieveScript
	opPutSieveScript
	opDeleteSieveScript
	opRenameSieveScript
	opSetActiveSieveScript
	opActiveSieveScript
	opSieveStateSeen
	opMarkSieveState
	opClaimSieveState
	opACL
	opSetACL
	opSharedMailboxes
	opSharers
	numOps
)

var opNames = [numOps]string{
	"account", "password_hash", "mailboxes", "mailbox", "create_mailbox", "delete_mailbox",
	"rename_mailbox", "subscriptions", "set_subscribed", "status", "snapshot", "claim_recent",
	"changes", "vanished", "fetch", "open_body", "append", "store_flags", "expunge", "copy",
	"move", "quota", "set_quota", "get_metadata", "set_metadata",
	"sieve_scripts", "sieve_script", "put_sieve_script", "delete_sieve_script", "rename_sieve_script",
	"set_active_sieve_script", "active_sieve_script", "sieve_state_seen", "mark_sieve_state",
	"claim_sieve_state",
	"acl", "set_acl", "shared_mailboxes", "sharers",
}

// storeTimer holds one precreated observer per operation.
type storeTimer [numOps]prometheus.Observer

func (t *storeTimer) since(o op, start time.Time) {
	t[o].Observe(time.Since(start).Seconds())
}

// WrapStore returns st with the latency of every call the server makes
// (opening accounts, password lookups and every store.Account method)
// recorded by operation. On a nil *Metrics it returns st unchanged.
//
// Fetch is timed as a whole, including the time its callback spends
// writing messages to the client.
func (m *Metrics) WrapStore(st store.Store) store.Store {
	if m == nil {
		return st
	}
	t := new(storeTimer)
	for o := op(0); o < numOps; o++ {
		t[o] = m.storeLatency.WithLabelValues(opNames[o])
	}
	return &timedStore{Store: st, t: t}
}

type timedStore struct {
	store.Store
	t *storeTimer
}

func (s *timedStore) PasswordHash(ctx context.Context, name string) (string, error) {
	defer s.t.since(opPasswordHash, time.Now())
	return s.Store.PasswordHash(ctx, name)
}

func (s *timedStore) Sharers(ctx context.Context, user string) ([]string, error) {
	defer s.t.since(opSharers, time.Now())
	return s.Store.Sharers(ctx, user)
}

func (s *timedStore) Account(ctx context.Context, user string) (store.Account, error) {
	start := time.Now()
	a, err := s.Store.Account(ctx, user)
	s.t.since(opAccount, start)
	if err != nil {
		return nil, err
	}
	return &timedAccount{Account: a, t: s.t}, nil
}

// timedAccount times every method of store.Account.
type timedAccount struct {
	store.Account
	t *storeTimer
}

func (a *timedAccount) Mailboxes(ctx context.Context) ([]store.MailboxInfo, error) {
	defer a.t.since(opMailboxes, time.Now())
	return a.Account.Mailboxes(ctx)
}

func (a *timedAccount) Mailbox(ctx context.Context, name string) (store.MailboxInfo, error) {
	defer a.t.since(opMailbox, time.Now())
	return a.Account.Mailbox(ctx, name)
}

func (a *timedAccount) CreateMailbox(ctx context.Context, name, specialUse string) error {
	defer a.t.since(opCreateMailbox, time.Now())
	return a.Account.CreateMailbox(ctx, name, specialUse)
}

func (a *timedAccount) DeleteMailbox(ctx context.Context, name string) error {
	defer a.t.since(opDeleteMailbox, time.Now())
	return a.Account.DeleteMailbox(ctx, name)
}

func (a *timedAccount) RenameMailbox(ctx context.Context, oldName, newName string) error {
	defer a.t.since(opRenameMailbox, time.Now())
	return a.Account.RenameMailbox(ctx, oldName, newName)
}

func (a *timedAccount) Subscriptions(ctx context.Context) ([]string, error) {
	defer a.t.since(opSubscriptions, time.Now())
	return a.Account.Subscriptions(ctx)
}

func (a *timedAccount) SetSubscribed(ctx context.Context, name string, subscribed bool) error {
	defer a.t.since(opSetSubscribed, time.Now())
	return a.Account.SetSubscribed(ctx, name, subscribed)
}

func (a *timedAccount) Status(ctx context.Context, name string) (store.MailboxStatus, error) {
	defer a.t.since(opStatus, time.Now())
	return a.Account.Status(ctx, name)
}

func (a *timedAccount) Snapshot(ctx context.Context, mailboxID int64) (store.MailboxStatus, []uint32, error) {
	defer a.t.since(opSnapshot, time.Now())
	return a.Account.Snapshot(ctx, mailboxID)
}

func (a *timedAccount) ClaimRecent(ctx context.Context, mailboxID int64, upTo uint32) (uint32, error) {
	defer a.t.since(opClaimRecent, time.Now())
	return a.Account.ClaimRecent(ctx, mailboxID, upTo)
}

func (a *timedAccount) Changes(ctx context.Context, mailboxID int64, sinceModSeq uint64, sinceUID uint32) (store.ChangeSet, error) {
	defer a.t.since(opChanges, time.Now())
	return a.Account.Changes(ctx, mailboxID, sinceModSeq, sinceUID)
}

func (a *timedAccount) Vanished(ctx context.Context, mailboxID int64, sinceModSeq uint64) ([]uint32, error) {
	defer a.t.since(opVanished, time.Now())
	return a.Account.Vanished(ctx, mailboxID, sinceModSeq)
}

func (a *timedAccount) Fetch(ctx context.Context, mailboxID int64, uids []uint32, want store.Want, fn func(*store.Message) error) error {
	defer a.t.since(opFetch, time.Now())
	return a.Account.Fetch(ctx, mailboxID, uids, want, fn)
}

// MatchFlags passes store.FlagMatcher through, timed as a Fetch.
func (a *timedAccount) MatchFlags(ctx context.Context, mailboxID int64, uids []uint32, match func(flags []string) bool) ([]uint32, []uint64, error) {
	fm, ok := a.Account.(store.FlagMatcher)
	if !ok {
		return nil, nil, store.ErrNoFlagMatch
	}
	defer a.t.since(opFetch, time.Now())
	return fm.MatchFlags(ctx, mailboxID, uids, match)
}

func (a *timedAccount) OpenBody(ctx context.Context, mailboxID int64, uid uint32) (store.Body, error) {
	defer a.t.since(opOpenBody, time.Now())
	return a.Account.OpenBody(ctx, mailboxID, uid)
}

func (a *timedAccount) Append(ctx context.Context, mailbox string, msgs []store.NewMessage) (store.AppendResult, error) {
	defer a.t.since(opAppend, time.Now())
	return a.Account.Append(ctx, mailbox, msgs)
}

func (a *timedAccount) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op store.FlagOp, flags []string, unchangedSince uint64, hasUnchangedSince bool) (store.StoreResult, error) {
	defer a.t.since(opStoreFlags, time.Now())
	return a.Account.StoreFlags(ctx, mailboxID, uids, op, flags, unchangedSince, hasUnchangedSince)
}

func (a *timedAccount) Expunge(ctx context.Context, mailboxID int64, uids []uint32, onlyDeleted bool) ([]uint32, error) {
	defer a.t.since(opExpunge, time.Now())
	return a.Account.Expunge(ctx, mailboxID, uids, onlyDeleted)
}

func (a *timedAccount) Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	defer a.t.since(opCopy, time.Now())
	return a.Account.Copy(ctx, srcMailboxID, uids, dest)
}

func (a *timedAccount) Move(ctx context.Context, srcMailboxID int64, uids []uint32, dest string) (store.CopyResult, error) {
	defer a.t.since(opMove, time.Now())
	return a.Account.Move(ctx, srcMailboxID, uids, dest)
}

func (a *timedAccount) Quota(ctx context.Context) (store.Quota, error) {
	defer a.t.since(opQuota, time.Now())
	return a.Account.Quota(ctx)
}

func (a *timedAccount) SetQuota(ctx context.Context, storageLimit, messageLimit int64) error {
	defer a.t.since(opSetQuota, time.Now())
	return a.Account.SetQuota(ctx, storageLimit, messageLimit)
}

func (a *timedAccount) GetMetadata(ctx context.Context, mailbox string, entries []string, depth store.MetadataDepth) ([]store.MetadataEntry, error) {
	defer a.t.since(opGetMetadata, time.Now())
	return a.Account.GetMetadata(ctx, mailbox, entries, depth)
}

func (a *timedAccount) SetMetadata(ctx context.Context, mailbox string, entries []store.MetadataEntry) error {
	defer a.t.since(opSetMetadata, time.Now())
	return a.Account.SetMetadata(ctx, mailbox, entries)
}

func (a *timedAccount) SieveScripts(ctx context.Context) ([]store.SieveScriptInfo, error) {
	defer a.t.since(opSieveScripts, time.Now())
	return a.Account.SieveScripts(ctx)
}

func (a *timedAccount) SieveScript(ctx context.Context, name string) ([]byte, error) {
	defer a.t.since(opSieveScript, time.Now())
	return a.Account.SieveScript(ctx, name)
}

func (a *timedAccount) PutSieveScript(ctx context.Context, name string, content []byte) error {
	defer a.t.since(opPutSieveScript, time.Now())
	return a.Account.PutSieveScript(ctx, name, content)
}

func (a *timedAccount) DeleteSieveScript(ctx context.Context, name string) error {
	defer a.t.since(opDeleteSieveScript, time.Now())
	return a.Account.DeleteSieveScript(ctx, name)
}

func (a *timedAccount) RenameSieveScript(ctx context.Context, oldName, newName string) error {
	defer a.t.since(opRenameSieveScript, time.Now())
	return a.Account.RenameSieveScript(ctx, oldName, newName)
}

func (a *timedAccount) SetActiveSieveScript(ctx context.Context, name string) error {
	defer a.t.since(opSetActiveSieveScript, time.Now())
	return a.Account.SetActiveSieveScript(ctx, name)
}

func (a *timedAccount) ActiveSieveScript(ctx context.Context) ([]byte, string, error) {
	defer a.t.since(opActiveSieveScript, time.Now())
	return a.Account.ActiveSieveScript(ctx)
}

func (a *timedAccount) SieveStateSeen(ctx context.Context, kind store.SieveStateKind, key string) (bool, error) {
	defer a.t.since(opSieveStateSeen, time.Now())
	return a.Account.SieveStateSeen(ctx, kind, key)
}

func (a *timedAccount) MarkSieveState(ctx context.Context, kind store.SieveStateKind, key string, expires time.Time) error {
	defer a.t.since(opMarkSieveState, time.Now())
	return a.Account.MarkSieveState(ctx, kind, key, expires)
}

func (a *timedAccount) ClaimSieveState(ctx context.Context, kind store.SieveStateKind, key string, expires time.Time) (bool, error) {
	defer a.t.since(opClaimSieveState, time.Now())
	return a.Account.ClaimSieveState(ctx, kind, key, expires)
}

func (a *timedAccount) ACL(ctx context.Context, mailbox string) ([]store.ACLEntry, error) {
	defer a.t.since(opACL, time.Now())
	return a.Account.ACL(ctx, mailbox)
}

func (a *timedAccount) SetACL(ctx context.Context, mailbox, identifier string, op store.FlagOp, rights string) (string, error) {
	defer a.t.since(opSetACL, time.Now())
	return a.Account.SetACL(ctx, mailbox, identifier, op, rights)
}

func (a *timedAccount) SharedMailboxes(ctx context.Context, identifiers []string) ([]store.SharedMailbox, error) {
	defer a.t.since(opSharedMailboxes, time.Now())
	return a.Account.SharedMailboxes(ctx, identifiers)
}
