package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/managesieve"
	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// startManageSieve opens the ManageSieve listener when listen.managesieve
// is set; it shares the store, the TLS certificate and the authenticator
// (hence the login throttling) with IMAP. Nil, nil when disabled.
func (e *env) startManageSieve(cfg *config.Config, st store.Store, tlsConfig func() *tls.Config,
	authn managesieve.Authenticator, scriptsChanged func(user string), log *slog.Logger) (*managesieve.Server, net.Listener, error) {
	if cfg.Listen.ManageSieve == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Listen.ManageSieve)
	if err != nil && !cfg.Listen.ManageSieveExplicit {
		log.Warn("ManageSieve listener not started: default address unavailable; set listen.managesieve or --listen-managesieve to choose another, or empty to disable",
			"addr", cfg.Listen.ManageSieve, "err", err)
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listen managesieve: %w", err)
	}
	srv := managesieve.New(managesieve.Config{
		TLS:          tlsConfig,
		InsecureAuth: cfg.Auth.InsecureAuth,
		Auth:         authn,
		Check:        e.checkSieve,
		Extensions:   sieveExtensions,
		// The interpreter's redirect limit; it has no notify methods.
		MaxRedirects: sieve.DefaultLimits().MaxRedirects,
		MaxConns:     cfg.Limits.MaxConns,
		MaxUserConns: cfg.Limits.MaxManageSieveUserConns,
		// What IMAPSIEVE cached about the user's scripts is stale.
		ScriptsChanged: scriptsChanged,
		Logger:         log,
	}, st)
	return srv, ln, nil
}
