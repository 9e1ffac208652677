package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/delivery"
	"github.com/tern-imap/tern/internal/outbound"
)

// outboundQueue is the optional queue of mail tern sends (sieve.smtp).
type outboundQueue struct{ q *outbound.Queue }

// openOutbound opens the outbound queue under data_dir/outbound when
// sieve.smtp is set. It does not contact the relay: tern starts while the
// relay is down, and queued mail waits.
// LMTP delivery queues Sieve redirects and vacation replies into it
// (sender).
func openOutbound(cfg *config.Config, log *slog.Logger) (*outboundQueue, error) {
	if cfg.Sieve.SMTP == "" {
		return &outboundQueue{}, nil
	}
	opts := outbound.Options{
		Relay:  cfg.Sieve.SMTP,
		Logger: log,
		TLS: outbound.TLSOptions{
			Require: cfg.Sieve.SMTPRequireTLS, CAFile: cfg.Sieve.SMTPTLSCAFile, Insecure: cfg.Sieve.SMTPTLSInsecure,
		},
	}
	if cfg.Sieve.SMTPUsername != "" {
		pw, err := os.ReadFile(cfg.Sieve.SMTPPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("sieve.smtp_password_file: %w", err)
		}
		opts.Auth = outbound.Auth{Username: cfg.Sieve.SMTPUsername, Password: strings.TrimRight(string(pw), "\r\n")}
	}
	q, err := outbound.Open(filepath.Join(cfg.DataDir, "outbound"), opts)
	if err != nil {
		return nil, err
	}
	log.Info("outbound mail queue", "relay", cfg.Sieve.SMTP, "queued", q.Len(),
		"require_tls", opts.TLS.Require, "auth", opts.Auth.Username != "")
	return &outboundQueue{q: q}, nil
}

// close stops the queue's worker; queued mail stays on disk. Safe to call
// twice and on a disabled queue.
func (o *outboundQueue) close(ctx context.Context) {
	if o == nil || o.q == nil {
		return
	}
	o.q.Close(ctx)
	o.q = nil
}

// sender is the queue as the deliverer's Sender; nil (no sending) when
// sieve.smtp is not set.
func (o *outboundQueue) sender() delivery.Sender {
	if o == nil || o.q == nil {
		return nil
	}
	return o.q
}

// spoolSender is where tern deliver puts Sieve redirects and vacation
// replies: the spool of data_dir/outbound, which tern serve's queue
// sends (it rescans the spool); nil when sieve.smtp is not set.
func spoolSender(cfg *config.Config) (delivery.Sender, error) {
	if cfg.Sieve.SMTP == "" {
		return nil, nil
	}
	sp, err := outbound.OpenSpool(filepath.Join(cfg.DataDir, "outbound"))
	if err != nil {
		return nil, err
	}
	return sp, nil
}
