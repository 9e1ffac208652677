package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store/sqlite"
)

func TestGeneratorDeterministicAndValid(t *testing.T) {
	a, b := newGenerator(7, 1), newGenerator(7, 1)
	other := newGenerator(7, 2)
	var multipartSeen, attachments, replies int
	for i := 0; i < 300; i++ {
		ma, mb := a.next(), b.next()
		if !bytes.Equal(ma, mb) {
			t.Fatalf("message %d differs between two generators with the same seed", i)
		}
		if bytes.Equal(ma, other.next()) {
			t.Fatalf("message %d is the same for different streams", i)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(ma))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id"} {
			if msg.Header.Get(h) == "" {
				t.Fatalf("message %d: no %s header", i, h)
			}
		}
		if _, err := msg.Header.Date(); err != nil {
			t.Fatalf("message %d: bad date: %v", i, err)
		}
		if msg.Header.Get("In-Reply-To") != "" {
			replies++
			if !strings.Contains(msg.Header.Get("References"), msg.Header.Get("In-Reply-To")) {
				t.Fatalf("message %d: References lacks In-Reply-To", i)
			}
		}
		mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !strings.HasPrefix(mt, "multipart/") {
			continue
		}
		multipartSeen++
		mr := multipart.NewReader(msg.Body, params["boundary"])
		parts := 0
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("message %d part %d: %v", i, parts, err)
			}
			parts++
			if strings.HasPrefix(p.Header.Get("Content-Disposition"), "attachment") {
				attachments++
				if _, err := io.ReadAll(p); err != nil { // quoted-printable/base64 decoded by NextPart? base64 is not
					t.Fatal(err)
				}
			}
		}
		if parts == 0 {
			t.Fatalf("message %d: multipart without parts", i)
		}
	}
	if multipartSeen < 50 || attachments < 20 || replies < 30 {
		t.Fatalf("too little variety: multipart=%d attachments=%d replies=%d", multipartSeen, attachments, replies)
	}
	for _, size := range []int{2048, 30720, 512000} {
		m := newGenerator(1, 1).sized(size)
		if len(m) < size*8/10 || len(m) > size*12/10 {
			t.Fatalf("sized(%d) = %d bytes", size, len(m))
		}
	}
}

// startTern runs a real tern server on a temporary SQLite store.
func startTern(t *testing.T, users ...string) (addr string) {
	t.Helper()
	addr, _ = startTernStore(t, users...)
	return addr
}

// startTernStore is startTern that also returns the server's store.
func startTernStore(t *testing.T, users ...string) (addr string, st *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	hub := notify.New()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{Notifier: hub})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		h, err := auth.HashPassword("secret")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, u, h); err != nil {
			t.Fatal(err)
		}
	}
	authn, err := auth.New(st, auth.Options{Policy: auth.Policy{FreeFailures: 1000, MaxUserFailures: 1000, MaxIPFailures: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		InsecureAuth: true, Auth: authn, Notify: hub,
		MaxPreAuthConnsPerIP: 1000, ConnRatePerIP: 1e6, ConnBurstPerIP: 1e6, MaxUserIPConns: 1000, MaxUserConns: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, st)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, false)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		st.Close()
	})
	return ln.Addr().String(), st
}

func runBench(t *testing.T, addr string, args ...string) result {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out := filepath.Join(t.TempDir(), "r.json")
	base := []string{"--host", host, "--port", port, "--password", "secret", "--users", "2", "--json", out,
		"--server-pid", strconv.Itoa(os.Getpid())}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append(base, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("ternbench %v: exit %d\n%s%s", args, code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Error != "" {
		t.Fatalf("%v: %s", args, r.Error)
	}
	return r
}

func TestWorkloadsAgainstTern(t *testing.T) {
	addr := startTern(t, "user1", "user2")
	seed := runBench(t, addr, "--messages", "120", "--concurrency", "2", "seed")
	if seed.Extra["messages"] != 240 {
		t.Fatalf("seeded %v messages, want 240", seed.Extra["messages"])
	}
	// Seeding again adds nothing: it resumes where the mailbox ends.
	if again := runBench(t, addr, "--messages", "120", "seed"); again.Extra["messages"] != 0 {
		t.Fatalf("second seed added %v messages", again.Extra["messages"])
	}
	short := []string{"--duration", "3s", "--count", "40"}
	for _, tc := range []struct {
		args []string
		op   string // an operation that must have been measured
	}{
		{[]string{"sync-headers"}, "fetch"},
		{[]string{"--concurrency", "3", "read"}, "fetch-body"},
		{[]string{"--concurrency", "2", "--sizes", "2048,8192,40000", "append"}, "append-small"},
		{[]string{"--concurrency", "2", "--idlers", "2", "flags"}, "notify"},
		{[]string{"--conns", "20", "idle-fanout"}, "all-notified"},
		{[]string{"search"}, "search-from"},
		{[]string{"--concurrency", "2", "mixed"}, "fetch-body"},
	} {
		r := runBench(t, addr, append(short, tc.args...)...)
		if r.Value <= 0 {
			t.Errorf("%v: %s = %v", tc.args, r.Primary, r.Value)
		}
		op := findOp(r.Ops, tc.op)
		if op.Count == 0 || op.P50ms <= 0 {
			t.Errorf("%v: op %s not measured: %+v", tc.args, tc.op, r.Ops)
		}
		if (r.TimedCPU == nil) != (tc.op == "all-notified") || r.ClientCPUSeconds <= 0 {
			t.Errorf("%v: timed-loop CPU %+v, client CPU %v s", tc.args, r.TimedCPU, r.ClientCPUSeconds)
		}
		if r.Server == nil || r.Server.PeakRSSKiB <= 0 {
			t.Errorf("%v: no server stats", tc.args)
		}
		if tc.op == "fetch" && r.Extra["messages_per_fetch"] != 120 {
			t.Errorf("sync-headers fetched %v messages per pass, want 120", r.Extra["messages_per_fetch"])
		}
	}
	// --compress: the same headers in fewer bytes on the wire.
	plain := runBench(t, addr, append(short, "sync-headers")...)
	comp := runBench(t, addr, append(short, "--compress", "sync-headers")...)
	if !comp.Compress || comp.Extra["messages_per_fetch"] != 120 {
		t.Fatalf("compressed sync-headers: %+v", comp)
	}
	if p, c := plain.Extra["wire_kib_per_fetch"], comp.Extra["wire_kib_per_fetch"]; c <= 0 || c > p/2 {
		t.Errorf("wire KiB per fetch: %.1f plain, %.1f compressed", p, c)
	}
	if r := runBench(t, addr, append(short, "--compress", "--concurrency", "2", "read")...); findOp(r.Ops, "fetch-body").Count == 0 {
		t.Errorf("compressed read: %+v", r.Ops)
	}
	if r := runBench(t, addr, append(short, "--compress", "--conns", "20", "idle-fanout")...); findOp(r.Ops, "all-notified").Count == 0 {
		t.Errorf("compressed idle-fanout (stored blocks from the client): %+v", r.Ops)
	}
}

func TestReportTable(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r result) string {
		p := filepath.Join(dir, name)
		b, _ := json.Marshal(r)
		os.WriteFile(p, b, 0o644)
		return p
	}
	var files []string
	for i, v := range []float64{100, 300, 200} {
		files = append(files, write("t"+strconv.Itoa(i), result{Workload: "read", Label: "tern", Concurrency: 4, Primary: "ops/s", Value: v, HigherBetter: true}))
		files = append(files, write("d"+strconv.Itoa(i), result{Workload: "read", Label: "dovecot", Concurrency: 4, Primary: "ops/s", Value: v / 2, HigherBetter: true}))
	}
	files = append(files, write("f1", result{Workload: "idle-fanout", Label: "tern", Primary: "ms", Value: 10, Extra: map[string]float64{"connections": 50}}))
	files = append(files, write("f2", result{Workload: "idle-fanout", Label: "dovecot", Primary: "ms", Value: 30, Extra: map[string]float64{"connections": 50}}))
	var out, errb bytes.Buffer
	if code := report(files, &out, &errb); code != 0 {
		t.Fatalf("report: %d %s", code, errb.String())
	}
	s := out.String()
	if !strings.Contains(s, "| read c=4 | ops/s | 200 | 100 | 2.00× |") {
		t.Errorf("read row wrong:\n%s", s)
	}
	if !strings.Contains(s, "| idle-fanout n=50 | ms | 10.0 | 30.0 | 3.00× |") {
		t.Errorf("fanout row wrong (lower is better):\n%s", s)
	}
}

// TestLoginsWorkload logs each of five users in once, and stops there
// although --count asks for more: a second login of a user would be
// answered by the server's success cache.
func TestLoginsWorkload(t *testing.T) {
	addr := startTern(t, "s1", "s2", "s3", "s4", "s5")
	r := runBench(t, addr, "--users", "5", "--user", "s%d", "--first-user", "1",
		"--concurrency", "2", "--count", "50", "logins")
	op := findOp(r.Ops, "login")
	if op.Count != 5 || op.Errors != 0 || r.Primary != "logins/s" || r.Value <= 0 {
		t.Fatalf("logins: %s = %v, op %+v; want 5 logins without errors", r.Primary, r.Value, op)
	}
}
