// Package admin is tern's admin listener: Prometheus metrics on
// /metrics, liveness on /healthz, readiness on /readyz and the net/http/pprof
// handlers under /debug/pprof/, all on one private mux (never
// http.DefaultServeMux). It listens on loopback by default: pprof and
// the metrics are for operators, not for the network.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/tern-imap/tern/internal/metrics"
)

// DefaultCheckTimeout bounds each readiness check.
const DefaultCheckTimeout = 2 * time.Second

// Check is one readiness condition: Fn returns nil when it holds.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Options configures the admin handler.
type Options struct {
	// Metrics is served on /metrics; nil serves 404 there.
	Metrics *metrics.Metrics
	// Ready are the checks /readyz runs, in order; all must pass.
	Ready []Check
	// CheckTimeout bounds each check (0: DefaultCheckTimeout).
	CheckTimeout time.Duration
}

// Handler returns the admin mux.
func Handler(o Options) http.Handler {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics.Handler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /readyz", readyHandler(o.Ready, o.CheckTimeout))
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also heap, goroutine, block, ... by name
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// readyHandler answers 200 "ok" when every check passes, else 503 with
// the failing checks, one a line.
func readyHandler(checks []Check, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var failed []string
		for _, c := range checks {
			if err := runCheck(r.Context(), c, timeout); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", c.Name, err))
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(failed, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

func runCheck(ctx context.Context, c Check, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.Fn(ctx)
}

// NewServer returns the HTTP server for the admin handler. It bounds how
// long a client may take to send its request headers and how long an
// idle keep-alive connection stays; responses are not time-bounded, since
// /debug/pprof/profile and trace stream for as long as asked.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Listen opens the admin listener on addr; "" disables it (nil, nil).
// explicit says whether addr was given (by flag or config file) rather
// than being the default: the default address may be taken by another
// program (or another tern), so failing to bind it only logs a warning
// and returns nil, nil — the server runs without the admin listener. An
// explicit address that cannot be bound is an error.
func Listen(addr string, explicit bool, log *slog.Logger) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if explicit {
			return nil, fmt.Errorf("listen admin %s: %w", addr, err)
		}
		log.Warn("admin listener (metrics, health, pprof) not started: default address unavailable; set listen.admin or --listen-admin to choose another, or empty to disable",
			"addr", addr, "err", err)
		return nil, nil
	}
	if !loopback(ln.Addr()) {
		log.Warn("admin listener is not on a loopback address: metrics and pprof are reachable from the network", "addr", ln.Addr().String())
	}
	return ln, nil
}

func loopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Serve runs srv on ln until Shutdown; it returns nil once shut down.
func Serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin: %w", err)
	}
	return nil
}
