package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/admin"
	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/store"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// records parses the JSON log lines written so far.
func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// monitoredServer is a test server with metrics, its admin listener on a
// free loopback port and its log (server and authenticator) as JSON in
// logs.
type monitoredServer struct {
	*testServer
	m     *metrics.Metrics
	admin string // base URL
	logs  *lockedBuffer
}

func newMonitoredServer(t *testing.T, policy auth.Policy) *monitoredServer {
	t.Helper()
	m := metrics.New()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := newTestServer(t, serverOpts{
		mutate: func(c *server.Config) {
			c.Metrics = m
			c.Logger = log
			c.InsecureAuth = true // for the plaintext (sendfile) test
		},
		wrapStore:  m.WrapStore,
		authPolicy: policy,
		authLog:    log,
	})
	m.RegisterIndex(ts.index.Stats)
	ln, err := admin.Listen("127.0.0.1:0", true, log)
	if err != nil {
		t.Fatal(err)
	}
	checks := []admin.Check{
		{Name: "store", Fn: func(ctx context.Context) error {
			_, err := ts.store.PasswordHash(ctx, "\x00ping")
			if err != nil && !strings.Contains(err.Error(), store.ErrNoSuchUser.Error()) {
				return err
			}
			return nil
		}},
		{Name: "imap", Fn: func(context.Context) error {
			if !ts.srv.Serving(2) {
				return io.ErrClosedPipe
			}
			return nil
		}},
	}
	hs := admin.NewServer(admin.Handler(admin.Options{Metrics: m, Ready: checks}), log)
	go admin.Serve(hs, ln)
	t.Cleanup(func() { hs.Close() })
	return &monitoredServer{testServer: ts, m: m, admin: "http://" + ln.Addr().String(), logs: logs}
}

func (ms *monitoredServer) get(path string) (int, string) {
	ms.t.Helper()
	resp, err := http.Get(ms.admin + path)
	if err != nil {
		ms.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ms.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape returns every sample of /metrics by its series text
// (`name{label="v",...}`, labels in the order Prometheus writes them).
func (ms *monitoredServer) scrape() map[string]float64 {
	ms.t.Helper()
	code, body := ms.get("/metrics")
	if code != 200 {
		ms.t.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			ms.t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric polls /metrics until series has value want.
func (ms *monitoredServer) waitMetric(series string, want float64) {
	ms.t.Helper()
	ms.pollMetric(series, fmt.Sprint(want), func(got float64) bool { return got == want })
}

// pollMetric polls /metrics for up to 5 s until series is present and
// its value satisfies ok (want says what ok wants, for the failure). A
// counter is moved after the write it counts returns, so a client can
// see its answer a moment before the counter moves.
func (ms *monitoredServer) pollMetric(series, want string, ok func(float64) bool) {
	ms.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, present := ms.scrape()[series]
		if present && ok(got) {
			return
		}
		if time.Now().After(deadline) {
			ms.t.Fatalf("%s = %v (present %v), want %s", series, got, present, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsAfterCommands(t *testing.T) {
	ms := newMonitoredServer(t, auth.Policy{MaxUserFailures: 2})
	ms.addUser("alice", "pw-alice")
	ms.appendMessages("alice", "INBOX", 2)

	if code, body := ms.get("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	ms.waitReady(200)

	alice := ms.dialTLS()
	alice.expect("LOGIN alice wrong-password", "NO [AUTHENTICATIONFAILED]")
	alice.ok("LOGIN alice pw-alice")
	alice.expect("SELECT NoSuchBox", "NO")
	alice.ok("SELECT INBOX")
	alice.ok("FETCH 1:2 (FLAGS)")
	alice.ok("UID FETCH 1:* (UID RFC822.SIZE)")
	alice.expect("FROBNICATE", "BAD") // the parser knows no such command

	mallory := ms.dialTLS()
	mallory.expect("LOGIN mallory guess1", "NO [AUTHENTICATIONFAILED]")
	mallory.expect("LOGIN mallory guess2", "NO [AUTHENTICATIONFAILED]")
	mallory.expect("LOGIN mallory guess3", "NO [UNAVAILABLE]")

	got := ms.scrape()
	for series, want := range map[string]float64{
		`tern_logins_total{result="success"}`:                     1,
		`tern_logins_total{result="failure"}`:                     3,
		`tern_logins_total{result="lockout"}`:                     1,
		`tern_logins_total{result="limit"}`:                       0,
		`tern_commands_total{command="LOGIN",result="OK"}`:        1,
		`tern_commands_total{command="LOGIN",result="NO"}`:        4,
		`tern_commands_total{command="SELECT",result="OK"}`:       1,
		`tern_commands_total{command="SELECT",result="NO"}`:       1,
		`tern_commands_total{command="FETCH",result="OK"}`:        1,
		`tern_commands_total{command="UID FETCH",result="OK"}`:    1,
		`tern_commands_total{command="invalid",result="BAD"}`:     1,
		`tern_commands_total{command="STORE",result="OK"}`:        0, // precreated
		`tern_command_duration_seconds_count{command="FETCH"}`:    1,
		`tern_command_duration_seconds_count{command="LOGIN"}`:    5,
		`tern_connections_accepted_total{listener="imaps"}`:       2,
		`tern_connections_accepted_total{listener="imap"}`:        0,
		`tern_connections_open{listener="imaps",tls="true"}`:      2,
		`tern_connections_open{listener="imap",tls="false"}`:      0,
		`tern_sessions{state="selected"}`:                         1,
		`tern_sessions{state="not_authenticated"}`:                1,
		`tern_sessions{state="authenticated"}`:                    0,
		`tern_index_mailboxes`:                                    1,
		`tern_store_operation_duration_seconds_count{op="fetch"}`: 2,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	for _, series := range []string{
		`tern_received_bytes_total`, `tern_sent_bytes_total`,
		`tern_store_operation_duration_seconds_count{op="snapshot"}`,
		`tern_store_operation_duration_seconds_count{op="password_hash"}`,
		`tern_store_operation_duration_seconds_count{op="account"}`,
		`tern_index_memory_bytes`, `tern_index_reads_total{result="hit"}`, `tern_index_loads_total`,
		`go_goroutines`, `process_cpu_seconds_total`,
	} {
		if got[series] <= 0 {
			t.Errorf("%s = %v, want > 0", series, got[series])
		}
	}

	// STARTTLS moves a plain connection to tls="true".
	plain := ms.dial()
	ms.waitMetric(`tern_connections_open{listener="imap",tls="false"}`, 1)
	plain.ok("STARTTLS")
	tc := tls.Client(plain.conn, &tls.Config{RootCAs: ms.roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	ms.waitMetric(`tern_connections_open{listener="imap",tls="false"}`, 0)
	ms.waitMetric(`tern_connections_open{listener="imap",tls="true"}`, 1)
	tc.Close()

	// Sessions and connections leave the gauges when they end.
	alice.ok("LOGOUT")
	mallory.conn.Close()
	ms.waitMetric(`tern_sessions{state="selected"}`, 0)
	ms.waitMetric(`tern_sessions{state="not_authenticated"}`, 0)
	ms.waitMetric(`tern_connections_open{listener="imaps",tls="true"}`, 0)
	ms.waitMetric(`tern_connections_open{listener="imap",tls="true"}`, 0)
	ms.waitMetric(`tern_commands_total{command="LOGOUT",result="OK"}`, 1)

	// Not ready once the server stops accepting.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms.srv.Shutdown(sctx)
	ms.waitReady(503)
}

// waitReady polls /readyz until it answers code.
func (ms *monitoredServer) waitReady(code int) {
	ms.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, body := ms.get("/readyz")
		if got == code {
			return
		}
		if time.Now().After(deadline) {
			ms.t.Fatalf("/readyz: %d %q, want %d", got, body, code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// appendMessages stores n small messages in a user's mailbox.
func (ts *testServer) appendMessages(user, mailbox string, n int) {
	ts.t.Helper()
	ctx := context.Background()
	acct, err := ts.store.Account(ctx, user)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer acct.Close()
	var msgs []store.NewMessage
	for i := range n {
		msgs = append(msgs, store.NewMessage{Body: []byte("Subject: m" + strconv.Itoa(i) + "\r\n\r\nsecret body text\r\n")})
	}
	if _, err := acct.Append(ctx, mailbox, msgs); err != nil {
		ts.t.Fatal(err)
	}
}

// One info line per session end, with the session id that every line of
// the session (the authenticator's too) carries; never the password or
// message content.
func TestSessionEndLog(t *testing.T) {
	ms := newMonitoredServer(t, auth.Policy{})
	ms.addUser("alice", "s3cret-pw")
	ms.appendMessages("alice", "INBOX", 1)

	c := ms.dialTLS()
	c.expect("LOGIN alice wrong-pw", "NO")
	c.ok("LOGIN alice s3cret-pw")
	c.ok("SELECT INBOX")
	c.ok("FETCH 1 (BODY[])")
	c.ok("LOGOUT")
	quitter := ms.dialTLS() // ends by closing the connection
	quitter.ok("CAPABILITY")
	quitter.conn.Close()

	var ends []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for len(ends) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d session end lines; log:\n%s", len(ends), ms.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
		ends = ends[:0]
		for _, r := range ms.logs.records(t) {
			if r["msg"] == "session ended" {
				ends = append(ends, r)
			}
		}
	}
	byReason := map[string]map[string]any{}
	for _, e := range ends {
		if e["level"] != "INFO" {
			t.Errorf("session end at level %v", e["level"])
		}
		for _, k := range []string{"session", "remote", "user", "duration", "commands", "bytes_in", "bytes_out", "reason"} {
			if _, ok := e[k]; !ok {
				t.Errorf("session end line lacks %q: %v", k, e)
			}
		}
		byReason[e["reason"].(string)] = e
	}
	end := byReason["logout"]
	if end == nil {
		t.Fatalf("no session ended by logout: %v", ends)
	}
	if end["user"] != "alice" || end["commands"] != float64(5) || end["bytes_in"].(float64) <= 0 || end["bytes_out"].(float64) <= 0 {
		t.Errorf("logout session end: %v", end)
	}
	if q := byReason["client closed connection"]; q == nil || q["user"] != "" || q["commands"] != float64(1) {
		t.Errorf("closed session end: %v (all %v)", q, ends)
	}
	if end["session"] == byReason["client closed connection"]["session"] {
		t.Errorf("two sessions share the id %v", end["session"])
	}

	// Every line of alice's session carries its id: the server's and the
	// authenticator's.
	id := end["session"]
	seen := map[string]bool{}
	for _, r := range ms.logs.records(t) {
		if r["session"] == id {
			seen[r["msg"].(string)] = true
		}
		if r["remote"] == end["remote"] && r["session"] != id {
			t.Errorf("line of the session without its id: %v", r)
		}
	}
	for _, msg := range []string{"authentication failed", "authenticated", "logged in", "session ended"} {
		if !seen[msg] {
			t.Errorf("no %q line with session %v; log:\n%s", msg, id, ms.logs.String())
		}
	}
	for _, secret := range []string{"s3cret-pw", "wrong-pw", "secret body text"} {
		if strings.Contains(ms.logs.String(), secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

// TestMetricsCountSendfileBytes: a body sent by sendfile (plaintext, above
// imap.BulkMin, kept in a file) bypasses the connection's Write; its bytes
// are counted all the same.
func TestMetricsCountSendfileBytes(t *testing.T) {
	ms := newMonitoredServer(t, auth.Policy{})
	ms.addUser("alice", "pw")
	c := ms.dial()
	c.ok("LOGIN alice pw")
	msg := bigMessage(300 << 10)
	c.appendMsg("INBOX", "", msg)
	c.ok("EXAMINE INBOX")
	before := ms.scrape()[`tern_sent_bytes_total`]
	c.ok("FETCH 1 BODY.PEEK[]")
	want := before + float64(len(msg))
	ms.pollMetric(`tern_sent_bytes_total`, fmt.Sprintf(">= %v (the body's %d bytes more)", want, len(msg)),
		func(got float64) bool { return got >= want })
}

// TestListReadsSubscriptionsOnlyWhenAsked: a plain LIST does not read the
// subscriptions from the store; a LIST that selects or returns them, and
// LSUB, do (and show them).
func TestListReadsSubscriptionsOnlyWhenAsked(t *testing.T) {
	ms := newMonitoredServer(t, auth.Policy{})
	ms.addUser("alice", "pw-alice")
	c := ms.dialTLS()
	c.ok("LOGIN alice pw-alice")
	c.ok("CREATE Later")
	c.ok("SUBSCRIBE INBOX")
	const series = `tern_store_operation_duration_seconds_count{op="subscriptions"}`
	before := ms.scrape()[series]
	for _, step := range []struct {
		cmd, line string
		reads     float64
	}{
		{`LIST "" *`, `* LIST (\HasNoChildren) "/" INBOX`, 0},
		{`LIST (SUBSCRIBED) "" *`, `* LIST (\HasNoChildren \Subscribed) "/" INBOX`, 1},
		{`LIST "" * RETURN (SUBSCRIBED)`, `* LIST (\HasNoChildren) "/" Later`, 1},
		{`LSUB "" *`, `* LSUB () "/" INBOX`, 1},
	} {
		before += step.reads
		lines := c.ok(step.cmd)
		if !slices.Contains(lines, step.line) {
			t.Errorf("%s: no %q in %q", step.cmd, step.line, lines)
		}
		if got := ms.scrape()[series]; got != before {
			t.Errorf("after %s: %v reads of the subscriptions, want %v", step.cmd, got, before)
		}
	}
}
