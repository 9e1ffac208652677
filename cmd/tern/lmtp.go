package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/delivery"
	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
)

// newDeliverer builds the delivery settings shared by LMTP and deliver.
// Users' active Sieve scripts, when the store keeps them, run at delivery
// between the operator's global ones (loadGlobalSieve); their redirects
// and vacation replies go to sender (nil: only logged).
func newDeliverer(cfg *config.Config, st store.Store, global *delivery.GlobalScripts, sender delivery.Sender, log *slog.Logger) *delivery.Deliverer {
	return delivery.New(st, delivery.Options{
		Domains:            cfg.LMTP.Domains,
		RecipientDelimiter: cfg.LMTP.RecipientDelimiter,
		PostUser:           cfg.LMTP.PostUser,
		QuotaTempFail:      cfg.LMTP.QuotaFullTempFail,
		Logger:             log,
		Scripts:            delivery.StoreScripts(st),
		Global:             global,
		Sender:             sender,
	})
}

// loadGlobalSieve reads and compiles sieve.before, sieve.after, the
// scripts of sieve.global_dir and those of the sieve.imapsieve_mailbox
// rules; a script that does not compile is an
// error naming its file, line and column.
func loadGlobalSieve(cfg *config.Config) (*delivery.GlobalScripts, error) {
	gc := delivery.GlobalConfig{Before: cfg.Sieve.Before, After: cfg.Sieve.After, Dir: cfg.Sieve.GlobalDir}
	for _, r := range cfg.Sieve.IMAPSieveMailboxes {
		gc.IMAPSieve = append(gc.IMAPSieve, delivery.IMAPSieveRule{Mailbox: r.Name, From: r.From, Causes: r.Causes, Before: r.Before, After: r.After})
	}
	g, err := delivery.LoadGlobalScripts(gc)
	if err != nil {
		return nil, fmt.Errorf("global sieve scripts: %w", err)
	}
	return g, nil
}

// reloadGlobalSieve reads and compiles the global Sieve scripts cfg
// names again and hands them to d (SIGHUP). A script that does not
// compile, or a path that cannot be read, is logged and the scripts in
// use stay.
func reloadGlobalSieve(cfg *config.Config, d *delivery.Deliverer, log *slog.Logger) {
	g, err := loadGlobalSieve(cfg)
	if err != nil {
		log.Error("reload: global sieve scripts not loaded; keeping the current ones", "err", err)
		return
	}
	d.SetGlobal(g)
	before, after, includes := g.Counts()
	log.Info("global sieve scripts loaded", "before", before, "after", after, "includable", includes, "imapsieve_rules", g.IMAPRules())
}

// startLMTP opens the LMTP listener (nil, nil when disabled) delivering
// through d. d uses the same store — and so the same notify hub — as the IMAP server, so IDLE
// sessions see delivered mail at once.
func startLMTP(cfg *config.Config, d *delivery.Deliverer, m *metrics.Metrics) (*delivery.LMTPServer, net.Listener, error) {
	if cfg.Listen.LMTP == "" {
		return nil, nil, nil
	}
	ln, err := delivery.Listen(cfg.Listen.LMTP)
	if err != nil {
		return nil, nil, err
	}
	srv := delivery.NewLMTPServer(d, delivery.LMTPConfig{
		MaxMessageBytes: cfg.Limits.MaxLiteralSize,
		Metrics:         m,
	})
	return srv, ln, nil
}

// serveNotifySocket lets tern deliver and tern import, running as other
// processes, wake this server's IDLE sessions. Failure only costs those
// wake-ups, so it is logged, not fatal.
func serveNotifySocket(cfg *config.Config, hub store.Notifier, log *slog.Logger) net.Listener {
	ln, err := delivery.ServeNotifySocket(filepath.Join(cfg.DataDir, delivery.NotifySocketName), hub, log)
	if err != nil {
		log.Warn("mail stored by tern deliver/import will not wake IDLE sessions", "err", err)
		return nil
	}
	return ln
}

// openStoreNotifying opens the store for a command that stores mail while
// a server may be running: changes are signalled to that server.
func openStoreNotifying(ctx context.Context, cfg *config.Config) (store.Store, func(), error) {
	if kind, _, err := cfg.Backend(); err == nil && kind == config.StorePostgres {
		// The postgres store signals every commit to all servers on the
		// database itself (LISTEN/NOTIFY).
		st, err := openStore(ctx, cfg, nil, nil)
		return st, func() {}, err
	}
	n := delivery.NewSocketNotifier(filepath.Join(cfg.DataDir, delivery.NotifySocketName))
	st, err := openStore(ctx, cfg, n, nil)
	if err != nil {
		return nil, nil, err
	}
	return st, func() { n.Close() }, nil
}

// imapSieveHook runs IMAPSIEVE scripts (sieve.imapsieve) through the
// deliverer, which serve sets once it exists (before any session runs).
type imapSieveHook struct{ d *delivery.Deliverer }

func (h *imapSieveHook) MessagesAdded(ctx context.Context, acct store.Account, user, mailbox string, mailboxID int64, uids []uint32, cause, from string) {
	if h.d == nil {
		return
	}
	h.d.RunIMAPSieve(ctx, delivery.IMAPEvent{Acct: acct, User: user, Mailbox: mailbox, MailboxID: mailboxID, UIDs: uids, Cause: cause, From: from})
}

func (h *imapSieveHook) HasScript(ctx context.Context, acct store.Account, mailbox string, mailboxID int64) bool {
	return h.d != nil && h.d.HasIMAPSieveScript(ctx, acct, mailbox, mailboxID)
}

// Changed forgets the cached IMAPSIEVE scripts of owner (the IMAP side:
// SETMETADATA, DELETE, RENAME; ManageSieve calls it through
// managesieve.Config.ScriptsChanged).
func (h *imapSieveHook) Changed(owner string) {
	if h.d != nil {
		h.d.ForgetIMAPSieve(owner)
	}
}

func (h *imapSieveHook) FlagsChanged(ctx context.Context, acct store.Account, user, mailbox string, mailboxID int64, changed map[uint32][]string) {
	if h.d == nil {
		return
	}
	h.d.RunIMAPSieve(ctx, delivery.IMAPEvent{Acct: acct, User: user, Mailbox: mailbox, MailboxID: mailboxID, Changed: changed, Cause: "FLAG"})
}

// imapSieve returns the server's IMAPSIEVE hook, nil unless
// sieve.imapsieve is on.
func imapSieve(cfg *config.Config, h *imapSieveHook) server.IMAPSieve {
	if !cfg.Sieve.IMAPSieve {
		return nil
	}
	return h
}
