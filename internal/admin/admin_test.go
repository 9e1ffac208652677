package admin_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/admin"
	"github.com/tern-imap/tern/internal/metrics"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The default address taken by someone else: a warning, no listener, no
// error. The same address given explicitly: an error.
func TestListenDefaultTakenWarnsExplicitFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()

	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	ln, err := admin.Listen(addr, false, log)
	if err != nil || ln != nil {
		t.Fatalf("default address taken: listener %v, err %v; want neither", ln, err)
	}
	if out := logBuf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "admin listener") || !strings.Contains(out, addr) {
		t.Fatalf("no warning naming the address: %q", out)
	}

	logBuf = syncBuffer{}
	ln, err = admin.Listen(addr, true, log)
	if err == nil || ln != nil {
		t.Fatalf("explicit address taken: listener %v, err %v; want an error", ln, err)
	}
	if !strings.Contains(err.Error(), "listen admin "+addr) {
		t.Fatalf("error without context: %v", err)
	}

	if ln, err := admin.Listen("", true, log); ln != nil || err != nil {
		t.Fatalf("empty address: %v %v; want disabled", ln, err)
	}

	ln, err = admin.Listen("127.0.0.1:0", true, log)
	if err != nil || ln == nil {
		t.Fatalf("free port: %v %v", ln, err)
	}
	ln.Close()
	if strings.Contains(logBuf.String(), "not on a loopback") {
		t.Fatalf("loopback address warned about: %q", logBuf.String())
	}
}

// serveAdmin runs the admin handler on a free loopback port.
func serveAdmin(t *testing.T, o admin.Options) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := admin.Listen("127.0.0.1:0", true, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.NewServer(admin.Handler(o), log)
	done := make(chan error, 1)
	go func() { done <- admin.Serve(srv, ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthReadyMetricsPprof(t *testing.T) {
	var storeDown atomic.Bool
	var sawDeadline atomic.Bool
	base := serveAdmin(t, admin.Options{
		Metrics: metrics.New(),
		Ready: []admin.Check{
			{Name: "store", Fn: func(ctx context.Context) error {
				if _, ok := ctx.Deadline(); ok {
					sawDeadline.Store(true)
				}
				if storeDown.Load() {
					return errors.New("database unreachable")
				}
				return nil
			}},
			{Name: "imap", Fn: func(context.Context) error { return nil }},
		},
	})
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	if !sawDeadline.Load() {
		t.Error("readiness check ran without a deadline")
	}
	storeDown.Store(true)
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "store: database unreachable") || strings.Contains(body, "imap") {
		t.Fatalf("/readyz with the store down: %d %q", code, body)
	}
	// Liveness does not depend on readiness.
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz with the store down: %d", code)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{"go_goroutines ", "process_cpu_seconds_total ", `tern_logins_total{result="lockout"} 0`, "# TYPE tern_sessions gauge"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get(t, base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/: %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/heap?debug=1"); code != 200 {
		t.Fatalf("/debug/pprof/heap: %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/cmdline"); code != 200 {
		t.Fatalf("/debug/pprof/cmdline: %d", code)
	}
	if code, _ := get(t, base+"/nothing"); code != 404 {
		t.Fatalf("/nothing: %d", code)
	}
}

// The handlers live on the admin mux only: the process-wide default mux
// (which net/http/pprof's init fills) is never served.
func TestNotDefaultServeMux(t *testing.T) {
	h := admin.Handler(admin.Options{})
	if h == http.DefaultServeMux {
		t.Fatal("admin handler is http.DefaultServeMux")
	}
}
