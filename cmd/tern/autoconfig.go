package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tern-imap/tern/internal/autoconfig"
	"github.com/tern-imap/tern/internal/config"
)

// autoconfigServer is the optional HTTP(S) listener serving mail client
// autoconfiguration (listen.autoconfig).
type autoconfigServer struct {
	srv   *http.Server
	ln    net.Listener
	https bool
}

// autoconfigSettings maps the configuration to what the handler
// advertises; the mail domains are LMTP's.
func autoconfigSettings(cfg *config.Config) autoconfig.Config {
	a := cfg.Autoconfig
	socket, _ := a.SubmissionSocket() // validated with the configuration
	return autoconfig.Config{
		Hostname:         a.Hostname,
		IMAPSPort:        a.IMAPSPort,
		IMAPPort:         a.IMAPPort,
		SubmissionHost:   a.SubmissionHost,
		SubmissionPort:   a.SubmissionPort,
		SubmissionSocket: socket,
		Username:         a.Username,
		DisplayName:      a.DisplayName,
		Domains:          cfg.LMTP.Domains,
	}
}

// startAutoconfig opens the autoconfig listener (nil when disabled). With
// autoconfig.tls it serves HTTPS with the IMAP server's certificate, as
// reloaded by SIGHUP.
func startAutoconfig(cfg *config.Config, tlsConfig func() *tls.Config, log *slog.Logger) (*autoconfigServer, error) {
	if cfg.Listen.Autoconfig == "" {
		return nil, nil
	}
	h, err := autoconfig.New(autoconfigSettings(cfg))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen.Autoconfig)
	if err != nil {
		return nil, fmt.Errorf("listen autoconfig: %w", err)
	}
	if cfg.Autoconfig.TLS {
		ln = tls.NewListener(ln, &tls.Config{
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return tlsConfig(), nil },
		})
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       20 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return &autoconfigServer{srv: srv, ln: ln, https: cfg.Autoconfig.TLS}, nil
}

// run logs the listener and serves it on a goroutine counted in wg; a
// failure goes to errs. Nil-safe, like close and shutdown.
func (a *autoconfigServer) run(wg *sync.WaitGroup, errs chan<- error, log *slog.Logger) {
	if a == nil {
		return
	}
	log.Info("listening", "proto", "autoconfig", "addr", a.ln.Addr().String(), "https", a.https)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serve autoconfig: %w", err)
		}
	}()
}

// close closes the listener of a server that never ran.
func (a *autoconfigServer) close() {
	if a != nil {
		a.ln.Close()
	}
}

// shutdown stops the server, waiting for requests in progress until ctx
// is done, then closing what is left.
func (a *autoconfigServer) shutdown(ctx context.Context) {
	if a == nil {
		return
	}
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
}
