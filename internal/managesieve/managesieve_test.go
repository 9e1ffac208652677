package managesieve

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/store"
)

// The greeting is the capability list and OK (RFC 5804 §1.7); before TLS
// with insecure_auth off no SASL mechanism is offered and AUTHENTICATE is
// refused with ENCRYPT-NEEDED; after STARTTLS the capabilities are sent
// again, with PLAIN and without STARTTLS.
func TestGreetingSTARTTLSAndCapabilities(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	c, greeting := ts.dial()
	wantGreeting := "\"IMPLEMENTATION\" \"tern\"\r\n\"SASL\" \"\"\r\n\"SIEVE\" \"fileinto vacation variables\"\r\n" +
		"\"STARTTLS\"\r\n\"MAXREDIRECTS\" \"4\"\r\n\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\nOK \"tern ManageSieve ready\"\r\n"
	if greeting != wantGreeting {
		t.Fatalf("greeting %q, want %q", greeting, wantGreeting)
	}
	want(t, "AUTHENTICATE before TLS", c.do(`AUTHENTICATE "PLAIN" "`+plain("alice", testPassword)+`"`),
		`NO (ENCRYPT-NEEDED) "Use STARTTLS before authenticating"`)
	want(t, "LISTSCRIPTS before login", c.do("LISTSCRIPTS"), `NO "Authenticate first"`)

	caps := c.startTLS(ts.roots)
	if !strings.Contains(caps, "\"SASL\" \"PLAIN\"\r\n") || strings.Contains(caps, "STARTTLS") {
		t.Fatalf("capabilities after STARTTLS: %q", caps)
	}
	want(t, "second STARTTLS", c.do("STARTTLS"), `NO "TLS is already active"`)
	want(t, "wrong password", c.do(`AUTHENTICATE "PLAIN" "`+plain("alice", "wrong")+`"`), `NO "Authentication failed"`)
	want(t, "authenticate", c.do(`Authenticate "plain" "`+plain("alice", testPassword)+`"`), `OK "Logged in"`)
	caps = c.do("CAPABILITY")
	if !strings.Contains(caps, "\"OWNER\" \"alice\"\r\n") || !strings.Contains(caps, "\"SASL\" \"\"\r\n") {
		t.Fatalf("capabilities after login: %q", caps)
	}
	want(t, "AUTHENTICATE twice", c.do(`AUTHENTICATE "PLAIN" "`+plain("alice", testPassword)+`"`), `NO "Already authenticated"`)
	want(t, "LOGOUT", c.do("LOGOUT"), `OK "Logout completed"`)
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("after LOGOUT: %v, want EOF", err)
	}
}

// Plaintext pipelined behind STARTTLS ends the session instead of
// being dropped or run after the handshake (CVE-2011-0411).
func TestSTARTTLSPipelinedInjection(t *testing.T) {
	ts := newTestServer(t, testOpts{insecureAuth: true})
	c, _ := ts.dial()
	c.send("STARTTLS\r\nLISTSCRIPTS\r\n")
	want(t, "STARTTLS", c.response(), `OK "Begin TLS negotiation now"`)
	tc := tls.Client(c.nc, &tls.Config{RootCAs: ts.roots, ServerName: "localhost"})
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS handshake succeeded after plaintext was pipelined behind STARTTLS")
	}
}

// AUTHENTICATE PLAIN without an initial response: an empty challenge,
// then the client's string (quoted or literal); "*" aborts; bad
// responses are refused.
func TestAuthenticateContinuation(t *testing.T) {
	ts := newTestServer(t, testOpts{insecureAuth: true})
	c, greeting := ts.dial()
	if !strings.Contains(greeting, "\"SASL\" \"PLAIN\"\r\n") {
		t.Fatalf("insecure_auth greeting without PLAIN: %q", greeting)
	}
	c.send("AUTHENTICATE \"PLAIN\"\r\n")
	if line, _ := c.br.ReadString('\n'); line != "\"\"\r\n" {
		t.Fatalf("challenge %q", line)
	}
	want(t, "abort", c.do(`"*"`), `NO "Authentication aborted"`)
	want(t, "bad base64", c.do(`AUTHENTICATE "PLAIN" "%%%"`), `NO "Invalid base64 in SASL response"`)
	want(t, "other authzid", c.do(`AUTHENTICATE "PLAIN" "`+base64Of("bob\x00alice\x00"+testPassword)+`"`),
		`NO "Authorization identity not allowed"`)
	want(t, "unknown mechanism", c.do(`AUTHENTICATE "CRAM-MD5"`), `NO "Unsupported authentication mechanism"`)

	c.send("AUTHENTICATE \"PLAIN\"\r\n")
	c.br.ReadString('\n')
	resp := plain("alice", testPassword)
	want(t, "literal response", c.do(fmt.Sprintf("{%d+}\r\n%s", len(resp), resp)), `OK "Logged in"`)
	want(t, "UNAUTHENTICATE", c.do("UNAUTHENTICATE"), `OK "Back to the not authenticated state"`)
	want(t, "after UNAUTHENTICATE", c.do("LISTSCRIPTS"), `NO "Authenticate first"`)
	want(t, "login as bob", c.do(`AUTHENTICATE "PLAIN" "`+plain("bob", testPassword)+`"`), `OK "Logged in"`)
	want(t, "bob's list", c.do("LISTSCRIPTS"), `OK "Listscripts completed"`)
}

func base64Of(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The authenticator (shared with IMAP) throttles: once a user is locked
// out, ManageSieve answers NO (TRYLATER) even for the right password.
func TestAuthenticateThrottled(t *testing.T) {
	ts := newTestServer(t, testOpts{insecureAuth: true, policy: auth.Policy{FreeFailures: 10, MaxUserFailures: 3}})
	c, _ := ts.dial()
	for range 3 {
		want(t, "wrong password", c.do(`AUTHENTICATE "PLAIN" "`+plain("alice", "wrong")+`"`), `NO "Authentication failed"`)
	}
	want(t, "locked out", c.do(`AUTHENTICATE "PLAIN" "`+plain("alice", testPassword)+`"`),
		`NO (TRYLATER) "Too many failed attempts; try again later"`)
}

// The script commands with RFC 5804 semantics and response codes.
func TestScripts(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	c := ts.login("alice")
	script := "require \"fileinto\";\r\nif header :contains \"Subject\" \"[list]\" {\r\n  fileinto \"Lists\";\r\n}\r\n"

	want(t, "PUTSCRIPT literal+", c.do(fmt.Sprintf("PUTSCRIPT \"lists\" {%d+}\r\n%s", len(script), script)), `OK "Script stored"`)
	want(t, "PUTSCRIPT literal", c.do(fmt.Sprintf("PUTSCRIPT {5}\r\nother {%d}\r\n%s", 5, "keep;")), `OK "Script stored"`)
	want(t, "PUTSCRIPT quoted", c.do(`PUTSCRIPT "a \"q\" \\ name" "discard;"`), `OK "Script stored"`)
	want(t, "LISTSCRIPTS", c.do("LISTSCRIPTS"), `OK "Listscripts completed"`)
	if got := c.do("LISTSCRIPTS"); got != "\"a \\\"q\\\" \\\\ name\"\r\n\"lists\"\r\n\"other\"\r\nOK \"Listscripts completed\"\r\n" {
		t.Fatalf("LISTSCRIPTS = %q", got)
	}
	if got := c.do(`GETSCRIPT "lists"`); got != fmt.Sprintf("{%d}\r\n%s\r\nOK \"Getscript completed\"\r\n", len(script), script) {
		t.Fatalf("GETSCRIPT = %q", got)
	}
	want(t, "GETSCRIPT missing", c.do(`GETSCRIPT "nope"`), `NO (NONEXISTENT) "There is no script by that name"`)

	// A script the checker rejects is neither stored nor checked OK; its
	// multi-line error goes out as a literal.
	bad := "keep;\r\nbogus;\r\n"
	resp := c.do(fmt.Sprintf("PUTSCRIPT \"bad\" {%d+}\r\n%s", len(bad), bad))
	if !strings.HasPrefix(resp, "NO {") || !strings.Contains(resp, "line 2: unknown command \"bogus\"\nerror: script has 1 error") {
		t.Fatalf("PUTSCRIPT of a bad script: %q", resp)
	}
	want(t, "GETSCRIPT of refused script", c.do(`GETSCRIPT "bad"`), `NO (NONEXISTENT) "There is no script by that name"`)
	resp = c.do(fmt.Sprintf("CHECKSCRIPT {%d+}\r\n%s", len(bad), bad))
	if !strings.HasPrefix(resp, "NO {") || !strings.Contains(resp, "unknown command") {
		t.Fatalf("CHECKSCRIPT of a bad script: %q", resp)
	}
	want(t, "CHECKSCRIPT good", c.do(`CHECKSCRIPT "keep;"`), `OK "Script is valid"`)
	want(t, "CHECKSCRIPT warning", c.do(`CHECKSCRIPT "# warnme"`), `OK (WARNINGS) "line 1: warning: this is only a warning"`)
	want(t, "PUTSCRIPT warning", c.do(`PUTSCRIPT "warned" "# warnme"`), `OK (WARNINGS) "line 1: warning: this is only a warning"`)

	// Activation; the active script cannot be deleted; rename keeps it active.
	want(t, "SETACTIVE", c.do(`SETACTIVE "lists"`), `OK "Active script set"`)
	want(t, "SETACTIVE missing", c.do(`SETACTIVE "nope"`), `NO (NONEXISTENT) "There is no script by that name"`)
	want(t, "DELETESCRIPT active", c.do(`DELETESCRIPT "lists"`), `NO (ACTIVE) "The script is active; deactivate it first"`)
	want(t, "RENAMESCRIPT onto existing", c.do(`RENAMESCRIPT "lists" "other"`), `NO (ALREADYEXISTS) "A script by that name already exists"`)
	want(t, "RENAMESCRIPT missing", c.do(`RENAMESCRIPT "nope" "x"`), `NO (NONEXISTENT) "There is no script by that name"`)
	want(t, "RENAMESCRIPT", c.do(`RENAMESCRIPT "lists" "Mailing lists"`), `OK "Script renamed"`)
	if got := c.do("LISTSCRIPTS"); !strings.Contains(got, "\"Mailing lists\" ACTIVE\r\n") || strings.Count(got, "ACTIVE") != 1 {
		t.Fatalf("LISTSCRIPTS after rename: %q", got)
	}
	a := ts.account("alice")
	if src, name, err := a.ActiveSieveScript(context.Background()); err != nil || name != "Mailing lists" || string(src) != script {
		t.Fatalf("ActiveSieveScript = %q, %q, %v", src, name, err)
	}

	// A stored script that no longer compiles cannot be activated.
	if err := a.PutSieveScript(context.Background(), "stale", []byte("bogus;")); err != nil {
		t.Fatal(err)
	}
	if resp := c.do(`SETACTIVE "stale"`); !strings.HasPrefix(resp, "NO {") || !strings.Contains(resp, "line 1: unknown command") {
		t.Fatalf("SETACTIVE of an invalid script: %q", resp)
	}
	if _, name, _ := a.ActiveSieveScript(context.Background()); name != "Mailing lists" {
		t.Fatalf("active script after a refused SETACTIVE: %q", name)
	}

	want(t, "deactivate", c.do(`SETACTIVE ""`), `OK "Active script set"`)
	want(t, "DELETESCRIPT", c.do(`DELETESCRIPT "Mailing lists"`), `OK "Script deleted"`)
	want(t, "DELETESCRIPT missing", c.do(`DELETESCRIPT "Mailing lists"`), `NO (NONEXISTENT) "There is no script by that name"`)
	want(t, "bad name", c.do(`PUTSCRIPT "" "keep;"`), `NO "Invalid script name"`)
	want(t, "NOOP", c.do(`NOOP`), `OK "Done"`)
	want(t, "NOOP tag", c.do(`NOOP "STARTTLS-SYNC-42"`), `OK (TAG "STARTTLS-SYNC-42") "Done"`)

	// Other users see none of it.
	b := ts.login("bob")
	want(t, "bob's list", b.do("LISTSCRIPTS"), `OK "Listscripts completed"`)
	want(t, "bob GETSCRIPT", b.do(`GETSCRIPT "other"`), `NO (NONEXISTENT) "There is no script by that name"`)
}

// HAVESPACE and PUTSCRIPT over the limits answer QUOTA/MAXSIZE and
// QUOTA/MAXSCRIPTS (RFC 5804 §1.3, §2.5); a too large literal is read
// and dropped, and the session goes on.
func TestQuota(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	c := ts.login("alice")
	max := store.SieveMaxScriptSize
	want(t, "HAVESPACE fits", c.do(fmt.Sprintf(`HAVESPACE "s" %d`, max)), `OK "Putscript would succeed"`)
	want(t, "HAVESPACE too large", c.do(fmt.Sprintf(`HAVESPACE "s" %d`, max+1)),
		fmt.Sprintf(`NO (QUOTA/MAXSIZE) "Script too large (limit %d bytes)"`, max))
	want(t, "HAVESPACE string size", c.do(`HAVESPACE "s" "10"`), `NO "Argument 2 of HAVESPACE must be a number"`)
	want(t, "HAVESPACE bad name", c.do(`HAVESPACE "a`+"\u2028"+`b" 10`), `NO "Invalid script name"`)

	big := strings.Repeat("#", max+1)
	want(t, "PUTSCRIPT too large", c.do(fmt.Sprintf("PUTSCRIPT \"big\" {%d+}\r\n%s", len(big), big)),
		fmt.Sprintf(`NO (QUOTA/MAXSIZE) "Script too large (limit %d bytes)"`, max))
	want(t, "session goes on", c.do("NOOP"), `OK "Done"`)

	a := ts.account("alice")
	for i := range store.SieveMaxScripts {
		if err := a.PutSieveScript(context.Background(), fmt.Sprintf("s%02d", i), []byte("keep;")); err != nil {
			t.Fatal(err)
		}
	}
	want(t, "HAVESPACE new name", c.do(`HAVESPACE "new" 10`), fmt.Sprintf(`NO (QUOTA/MAXSCRIPTS) "Too many scripts (limit %d)"`, store.SieveMaxScripts))
	want(t, "HAVESPACE existing name", c.do(`HAVESPACE "s01" 10`), `OK "Putscript would succeed"`)
	want(t, "PUTSCRIPT new name", c.do(`PUTSCRIPT "new" "keep;"`), fmt.Sprintf(`NO (QUOTA/MAXSCRIPTS) "Too many scripts (limit %d)"`, store.SieveMaxScripts))
	want(t, "PUTSCRIPT replace", c.do(`PUTSCRIPT "s01" "discard;"`), `OK "Script stored"`)
}

// Bad input: syntax errors get NO and the session goes on; unknown
// commands too; a line over the limit ends the session with BYE; a
// session that keeps failing before login is closed; a silent one times
// out.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t, testOpts{insecureAuth: true, mutate: func(c *Config) {
		c.MaxLineLength = 1024
		c.PreAuthTimeout = 300 * time.Millisecond
	}})
	c, _ := ts.dial()
	for _, tc := range []struct{ line, resp string }{
		{`FROB`, `NO "Unknown command \"FROB\""`},
		{`NOOP "unterminated`, `NO "Syntax error: unterminated quoted string"`},
		{`NOOP "bad \x escape"`, `NO "Syntax error: invalid escape in quoted string"`},
		{`NOOP {x}`, `NO "Syntax error: invalid literal"`},
		{`NOOP atom`, `NO "Argument 1 of NOOP must be a string"`},
		{`NOOP "a" "b"`, `NO "Wrong number of arguments for NOOP"`},
		{"NOOP \"\xff\"", `NO "Syntax error: quoted string is not UTF-8"`},
	} {
		want(t, tc.line, c.do(tc.line), tc.resp)
	}
	want(t, "good command resets", c.do("NOOP"), `OK "Done"`)
	want(t, "line too long", c.do("NOOP \""+strings.Repeat("x", 2000)+"\""), `BYE "Line or literal too long"`)

	c, _ = ts.dial()
	want(t, "large literal before login", c.do("NOOP {100000+}"), `BYE "Line or literal too long"`)

	c, _ = ts.dial()
	for range DefaultMaxErrors - 1 {
		c.do("FROB")
	}
	want(t, "last error", c.do("FROB"), `NO "Unknown command \"FROB\""`)
	want(t, "after too many errors", c.response(), `BYE "Too many commands without logging in"`)

	c, _ = ts.dial()
	start := time.Now()
	want(t, "idle before login", c.response(), `BYE "Idle timeout"`)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("timed out after %v", d)
	}
}

// Shutdown says BYE to waiting sessions.
func TestShutdown(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	c := ts.login("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	want(t, "shutdown", c.response(), `BYE "Server shutting down"`)
}

// Connections over the per-address limit get BYE (TRYLATER) at once.
func TestConnectionLimit(t *testing.T) {
	ts := newTestServer(t, testOpts{mutate: func(c *Config) { c.MaxConnsPerIP = 2 }})
	ts.dial()
	ts.dial()
	c, resp := ts.dial()
	want(t, "third connection", resp, `BYE (TRYLATER) "Too many connections from your address"`)
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("after BYE: %v, want EOF", err)
	}
}

// Config.MaxUserConns: a login over a user's limit gets NO (TRYLATER)
// (RFC 5804 §1.3: a temporary failure; the client may try later) and
// the connection stays usable; UNAUTHENTICATE and a closed connection
// give the slot back; other users are not affected.
func TestPerUserConnectionLimit(t *testing.T) {
	ts := newTestServer(t, testOpts{insecureAuth: true, mutate: func(c *Config) { c.MaxUserConns = 2 }})
	login := func(c *client, user string) string {
		return c.do(`AUTHENTICATE "PLAIN" "` + plain(user, testPassword) + `"`)
	}
	a1, _ := ts.dial()
	a2, _ := ts.dial()
	a3, _ := ts.dial()
	want(t, "alice 1", login(a1, "alice"), `OK "Logged in"`)
	want(t, "alice 2", login(a2, "alice"), `OK "Logged in"`)
	want(t, "alice 3", login(a3, "alice"), `NO (TRYLATER) "Too many ManageSieve connections for this user; try again later"`)
	want(t, "bob on the refused connection", login(a3, "bob"), `OK "Logged in"`)
	want(t, "UNAUTHENTICATE", a3.do("UNAUTHENTICATE"), `OK "Back to the not authenticated state"`)
	want(t, "UNAUTHENTICATE alice 2", a2.do("UNAUTHENTICATE"), `OK "Back to the not authenticated state"`)
	want(t, "alice after a slot was given back", login(a3, "alice"), `OK "Logged in"`)
	want(t, "alice 4", login(a2, "alice"), `NO (TRYLATER) "Too many ManageSieve connections for this user; try again later"`)

	want(t, "LOGOUT", a1.do("LOGOUT"), `OK "Logout completed"`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := login(a2, "alice")
		if strings.Contains(resp, `OK "Logged in"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection's slot was not given back: %q", resp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errStorageDown stands for a store whose database cannot be reached.
var errStorageDown = errors.New("test: mail storage down")

func init() {
	store.RegisterUnavailable(func(err error) bool { return errors.Is(err, errStorageDown) })
}

// downAuth is an authenticator whose store cannot be reached.
type downAuth struct{}

func (downAuth) Authenticate(ctx context.Context, remote net.Addr, username, password string) error {
	return fmt.Errorf("authenticate %q: %w", username, errStorageDown)
}

// A login while the mail storage cannot be reached is NO (TRYLATER), not
// "Authentication failed", which makes clients ask for another password.
func TestAuthenticateStorageDown(t *testing.T) {
	ts := newTestServer(t, testOpts{insecureAuth: true, mutate: func(c *Config) { c.Auth = downAuth{} }})
	c, _ := ts.dial()
	want(t, "storage down", c.do(`AUTHENTICATE "PLAIN" "`+plain("alice", testPassword)+`"`), `NO (TRYLATER) "Mail storage is unavailable; try again later"`)
}
