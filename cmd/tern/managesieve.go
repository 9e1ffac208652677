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

// checkIMAPSieveURL warns when the ManageSieve server that IMAPSIEVE=
// advertises (sieve.imapsieve_url; RFC 6785 §2.1: where clients manage
// the scripts /shared/imapsieve/script names) cannot be this server's
// ManageSieve listener ln (nil: not listening): the listener is off, the
// ports differ, or the URL names an IP address the listener is not on. A
// proxy or port forwarding may make such a URL right, so it is a
// warning, not an error.
func checkIMAPSieveURL(cfg *config.Config, ln net.Listener, log *slog.Logger) {
	u := cfg.Sieve.IMAPSieveURL
	if !cfg.Sieve.IMAPSieve || u == "" {
		return
	}
	host, port, err := config.ParseSieveServerURL(u)
	if err != nil {
		return // Validate refused it already
	}
	if ln == nil {
		log.Warn("sieve.imapsieve_url advertises a ManageSieve server, but this server's ManageSieve listener is off", "url", u)
		return
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return
	}
	if addr.Port != port {
		log.Warn("sieve.imapsieve_url names another port than the ManageSieve listener; clients will look for ManageSieve there",
			"url", u, "url_port", port, "listener", addr.String())
	}
	if ip := net.ParseIP(host); ip != nil && !addr.IP.IsUnspecified() && !ip.Equal(addr.IP) {
		log.Warn("sieve.imapsieve_url names another address than the ManageSieve listener",
			"url", u, "listener", addr.String())
	}
}
