package storecopy

import (
	"context"
	"fmt"
	"slices"

	"github.com/tern-imap/tern/internal/store"
)

// copyAccountState copies what an account keeps besides its messages,
// through the ordinary store.Account calls (none of them changes a
// modseq): subscriptions, quota limits, annotations of the server and of
// every mailbox, Sieve scripts with the active one, and ACLs. Each step
// makes the target's state the source's, removing what the source no
// longer has (a rerun after the source revoked a right, dropped a
// subscription, deactivated a vacation script), so running it again
// changes nothing.
func copyAccountState(ctx context.Context, sa, da store.Account, boxes []store.MailboxInfo) error {
	for _, step := range []struct {
		what string
		fn   func(context.Context, store.Account, store.Account, []store.MailboxInfo) error
	}{
		{"subscriptions", copySubscriptions},
		{"quota", copyQuota},
		{"annotations", copyMetadata},
		{"sieve scripts", copySieve},
		{"acl", copyACLs},
	} {
		if err := step.fn(ctx, sa, da, boxes); err != nil {
			return fmt.Errorf("copy %s: %w", step.what, err)
		}
	}
	return nil
}

func copySubscriptions(ctx context.Context, sa, da store.Account, _ []store.MailboxInfo) error {
	subs, err := sa.Subscriptions(ctx)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := da.SetSubscribed(ctx, s, true); err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
	}
	have, err := da.Subscriptions(ctx)
	if err != nil {
		return err
	}
	for _, s := range have {
		if !slices.Contains(subs, s) {
			if err := da.SetSubscribed(ctx, s, false); err != nil {
				return fmt.Errorf("%q: %w", s, err)
			}
		}
	}
	return nil
}

func copyQuota(ctx context.Context, sa, da store.Account, _ []store.MailboxInfo) error {
	q, err := sa.Quota(ctx)
	if err != nil {
		return err
	}
	return da.SetQuota(ctx, q.StorageLimit, q.MessageLimit)
}

// metadataRoots names every annotation (with MetadataDepthInfinity).
var metadataRoots = []string{"/private", "/shared"}

func copyMetadata(ctx context.Context, sa, da store.Account, boxes []store.MailboxInfo) error {
	names := []string{""} // the server's entries
	for _, b := range boxes {
		names = append(names, b.Name)
	}
	for _, n := range names {
		entries, err := sa.GetMetadata(ctx, n, metadataRoots, store.MetadataDepthInfinity)
		if err != nil {
			return fmt.Errorf("%q: %w", n, err)
		}
		have, err := da.GetMetadata(ctx, n, metadataRoots, store.MetadataDepthInfinity)
		if err != nil {
			return fmt.Errorf("%q in the target: %w", n, err)
		}
		for _, e := range have {
			if !slices.ContainsFunc(entries, func(s store.MetadataEntry) bool { return s.Name == e.Name }) {
				entries = append(entries, store.MetadataEntry{Name: e.Name}) // nil Value: removed
			}
		}
		if len(entries) == 0 {
			continue
		}
		if err := da.SetMetadata(ctx, n, entries); err != nil {
			return fmt.Errorf("%q: %w", n, err)
		}
	}
	return nil
}

func copySieve(ctx context.Context, sa, da store.Account, _ []store.MailboxInfo) error {
	scripts, err := sa.SieveScripts(ctx)
	if err != nil {
		return err
	}
	active := ""
	for _, s := range scripts {
		content, err := sa.SieveScript(ctx, s.Name)
		if err != nil {
			return fmt.Errorf("%q: %w", s.Name, err)
		}
		if err := da.PutSieveScript(ctx, s.Name, content); err != nil {
			return fmt.Errorf("%q: %w", s.Name, err)
		}
		if s.Active {
			active = s.Name
		}
	}
	// The source's active script, or none (which also lets a script the
	// source no longer has be deleted below).
	if err := da.SetActiveSieveScript(ctx, active); err != nil {
		return fmt.Errorf("activate %q: %w", active, err)
	}
	have, err := da.SieveScripts(ctx)
	if err != nil {
		return err
	}
	for _, h := range have {
		if !slices.ContainsFunc(scripts, func(s store.SieveScriptInfo) bool { return s.Name == h.Name }) {
			if err := da.DeleteSieveScript(ctx, h.Name); err != nil {
				return fmt.Errorf("delete %q: %w", h.Name, err)
			}
		}
	}
	return nil
}

func copyACLs(ctx context.Context, sa, da store.Account, boxes []store.MailboxInfo) error {
	for _, b := range boxes {
		entries, err := sa.ACL(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("%q: %w", b.Name, err)
		}
		for _, e := range entries {
			if _, err := da.SetACL(ctx, b.Name, e.Identifier, store.FlagsReplace, e.Rights); err != nil {
				return fmt.Errorf("%q: %s: %w", b.Name, e.Identifier, err)
			}
		}
		have, err := da.ACL(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("%q in the target: %w", b.Name, err)
		}
		for _, h := range have {
			if !slices.ContainsFunc(entries, func(e store.ACLEntry) bool { return e.Identifier == h.Identifier }) {
				// An entry left without rights is removed.
				if _, err := da.SetACL(ctx, b.Name, h.Identifier, store.FlagsReplace, ""); err != nil {
					return fmt.Errorf("%q: remove %s: %w", b.Name, h.Identifier, err)
				}
			}
		}
	}
	return nil
}
