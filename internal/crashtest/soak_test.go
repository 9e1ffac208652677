package crashtest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/notify"
	imapserver "github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

// TestSoak runs many clients with a mixed workload against an in-process
// server for TERN_SOAK_DURATION (skipped when unset; not run in CI) and
// checks: no command failed, the goroutine count and the heap return to
// where they were. TERN_SOAK_CLIENTS sets the number of clients (200).
//
//	TERN_SOAK_DURATION=10m TERN_SOAK_CLIENTS=300 go test -run Soak -timeout 0 -v ./internal/crashtest/
func TestSoak(t *testing.T) {
	ds := os.Getenv("TERN_SOAK_DURATION")
	if ds == "" {
		t.Skip("set TERN_SOAK_DURATION to run the soak test")
	}
	dur, err := time.ParseDuration(ds)
	if err != nil {
		t.Fatal(err)
	}
	nclients := 200
	if s := os.Getenv("TERN_SOAK_CLIENTS"); s != "" {
		if nclients, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	hub := notify.New()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Notifier: hub})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const nusers = 20
	hash, err := auth.HashPassword("secret")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < nusers; i++ {
		if err := st.CreateUser(ctx, fmt.Sprintf("u%d", i), hash); err != nil {
			t.Fatal(err)
		}
	}
	authn, err := auth.New(st, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(imapserver.Config{InsecureAuth: true, Auth: authn, Notify: hub,
		// Every client connects from 127.0.0.1, again and again.
		MaxPreAuthConnsPerIP: nclients + 10, ConnRatePerIP: 1e6, ConnBurstPerIP: 1e6,
		MaxUserIPConns: nclients + 10, MaxUserConns: nclients + 10,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, false)
	defer srv.Shutdown(ctx)
	addr := ln.Addr().String()

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	g0, h0 := runtime.NumGoroutine(), heap()

	var ops, fails atomic.Int64
	var failMu sync.Mutex
	var failures []string
	loginSem := make(chan struct{}, 4) // see the note on concurrent logins in crash_test.go
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i := 0; i < nclients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			user := fmt.Sprintf("u%d", i%nusers)
			for time.Now().Before(deadline) {
				loginSem <- struct{}{}
				c, err := dial(addr)
				if err == nil {
					err = c.login(user, "secret")
				}
				<-loginSem
				fail := func(err error) {
					fails.Add(1)
					failMu.Lock()
					if len(failures) < 20 {
						failures = append(failures, err.Error())
					}
					failMu.Unlock()
				}
				if err != nil {
					fail(err)
					if c != nil {
						c.close()
					}
					continue
				}
				for n := 0; n < 50 && time.Now().Before(deadline); n++ {
					var err error
					switch r.IntN(8) {
					case 0, 1:
						_, err = c.appendMsg("INBOX", `\Seen`, randomMessage(r, i, n), r.IntN(2) == 0)
					case 2:
						_, _, err = c.ok("SELECT INBOX")
					case 3:
						if _, _, err = c.ok("SELECT INBOX"); err == nil {
							_, _, err = c.ok("UID FETCH 1:20 (FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])")
						}
					case 4:
						if _, _, err = c.ok("SELECT INBOX"); err == nil {
							_, _, err = c.ok("UID SEARCH OR SUBJECT message FROM load UNSEEN")
						}
					case 5:
						if _, _, err = c.ok("SELECT INBOX"); err == nil {
							_, _, err = c.ok(`UID STORE 1:5 +FLAGS (\Flagged)`)
						}
					case 6:
						if _, _, err = c.ok("SELECT INBOX"); err == nil {
							if _, _, err = c.ok(`UID STORE 1:3 +FLAGS.SILENT (\Deleted)`); err == nil {
								_, _, err = c.ok("EXPUNGE")
							}
						}
					case 7:
						_, _, err = c.ok(`LIST "" *`)
					}
					if err == nil {
						ops.Add(1)
					} else {
						fail(err)
						break
					}
				}
				c.ok("LOGOUT")
				c.close()
			}
		}()
	}
	wg.Wait()
	// Let the server finish closing the sessions.
	time.Sleep(2 * time.Second)
	g1, h1 := runtime.NumGoroutine(), heap()
	t.Logf("%d clients, %v: %d commands, %d failures; goroutines %d -> %d; heap %d KiB -> %d KiB",
		nclients, dur, ops.Load(), fails.Load(), g0, g1, h0>>10, h1>>10)
	if fails.Load() > 0 {
		t.Errorf("failures:\n%s", strings.Join(failures, "\n"))
	}
	if g1 > g0+5 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutine leak: %d -> %d\n%s", g0, g1, buf[:runtime.Stack(buf, true)])
	}
	if h1 > h0+16<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB", h0>>10, h1>>10)
	}
}
