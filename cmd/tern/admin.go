package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/tern-imap/tern/internal/admin"
	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
)

// adminListener is the admin HTTP listener of tern serve and the metrics
// it serves. A nil *adminListener (disabled, or the default address was
// taken) does nothing and its metrics are nil, so nothing is counted.
type adminListener struct {
	ln      net.Listener
	metrics *metrics.Metrics
	srv     *http.Server
}

// openAdmin opens the admin listener as configured (admin.Listen decides
// between a warning and an error) and creates the metrics it will serve.
func openAdmin(cfg *config.Config, ix *index.Indexes, log *slog.Logger) (*adminListener, error) {
	ln, err := admin.Listen(cfg.Listen.Admin, cfg.Listen.AdminExplicit, log)
	if err != nil || ln == nil {
		return nil, err
	}
	m := metrics.New()
	m.RegisterIndex(ix.Stats)
	return &adminListener{ln: ln, metrics: m}, nil
}

// Metrics returns the metrics to feed, nil without an admin listener.
func (a *adminListener) Metrics() *metrics.Metrics {
	if a == nil {
		return nil
	}
	return a.metrics
}

// readyChecks are what /readyz requires: the store answers, and the IMAP
// server accepts on all its listeners (n of them) and is not shutting down.
func readyChecks(backend store.Store, srv *server.Server, n int) []admin.Check {
	checks := []admin.Check{{Name: "store", Fn: func(ctx context.Context) error {
		if p, ok := backend.(store.Pinger); ok {
			return p.Ping(ctx)
		}
		// Any backend: a point lookup of a user that cannot exist.
		if _, err := backend.PasswordHash(ctx, "\x00ping"); err != nil && !errors.Is(err, store.ErrNoSuchUser) {
			return err
		}
		return nil
	}}}
	if n > 0 {
		checks = append(checks, admin.Check{Name: "imap", Fn: func(context.Context) error {
			if !srv.Serving(n) {
				return errors.New("not accepting connections")
			}
			return nil
		}})
	}
	return checks
}

// serve starts the HTTP server in the background; failures go to errc.
func (a *adminListener) serve(checks []admin.Check, log *slog.Logger, errc chan<- error) {
	if a == nil {
		return
	}
	a.srv = admin.NewServer(admin.Handler(admin.Options{Metrics: a.metrics, Ready: checks}), log)
	go func() {
		if err := admin.Serve(a.srv, a.ln); err != nil {
			errc <- err
		}
	}()
}

// addr is the listener's address, "" when there is none.
func (a *adminListener) addr() string {
	if a == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// shutdown stops the HTTP server (waiting for requests in flight until
// ctx ends) or, if it never started, closes the listener.
func (a *adminListener) shutdown(ctx context.Context) {
	if a == nil {
		return
	}
	if a.srv == nil {
		a.ln.Close()
		return
	}
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
}
