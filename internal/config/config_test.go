package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tern.toml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

// The shipped example must list the defaults exactly.
func TestExampleFileMatchesDefaults(t *testing.T) {
	c, err := Load("../../tern.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LMTP.Domains) == 0 {
		c.LMTP.Domains = nil
	}
	if len(c.Auth.Admins) == 0 {
		c.Auth.Admins = nil
	}
	if len(c.ProxyProtocol.TrustedNetworks) == 0 {
		c.ProxyProtocol.TrustedNetworks = nil
	}
	if d := Default(); !reflect.DeepEqual(c, d) {
		t.Fatalf("example file differs from Default():\n got %+v\nwant %+v", c, d)
	}
}

func TestLoadAdmins(t *testing.T) {
	c, err := Load(writeFile(t, "[auth]\nadmins = [\"root\", \"postmaster\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Auth.Admins, []string{"root", "postmaster"}) {
		t.Fatalf("admins = %q", c.Auth.Admins)
	}
}

func TestLoadOverridesAndKeepsDefaults(t *testing.T) {
	p := writeFile(t, `
data_dir = "/srv/mail"
[listen]
imaps = ""
[auth]
failure_window = "1h"
[limits]
max_conns = 7
max_preauth_conns_per_ip = 3
conn_rate_per_ip = 0.5
max_userip_conns = 2
max_user_conns = 4
conn_burst_per_ip = 5
[log]
level = "debug"
format = "json"
[lmtp]
domains = ["example.org", "example.net"]
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DataDir = "/srv/mail"
	want.Listen.IMAPS = ""
	want.Auth.FailureWindow = time.Hour
	want.Limits.MaxConns = 7
	want.Limits.MaxPreAuthConnsPerIP = 3
	want.Limits.ConnRatePerIP = 0.5
	want.Limits.ConnBurstPerIP = 5
	want.Limits.MaxUserIPConns = 2
	want.Limits.MaxUserConns = 4
	want.Log = Log{Level: "debug", Format: "json"}
	want.LMTP.Domains = []string{"example.org", "example.net"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"unknown key", "[limits]\nmax_lines = 3\n", "limits.max_lines"},
		{"unknown top key", "datadir = \"x\"\n", "datadir"},
		{"syntax", "data_dir = \n", "tern.toml"},
		{"type", "[limits]\nmax_conns = \"many\"\n", "max_conns"},
		{"bad duration", "[auth]\nfailure_delay = \"soon\"\n", "soon"},
		{"bad addr", "[listen]\nimap = \"localhost\"\n", "listen.imap"},
		{"bad port", "[listen]\nimaps = \"127.0.0.1:99999\"\n", "listen.imaps"},
		{"half tls", "[tls]\ncert = \"/x.pem\"\n", "tls: cert and key"},
		{"no listeners", "[listen]\nimap = \"\"\nimaps = \"\"\nlmtp = \"\"\n", "all listeners are disabled"},
		{"small line", "[limits]\nmax_line_length = 100\n", "limits.max_line_length"},
		{"level", "[log]\nlevel = \"loud\"\n", "log.level"},
		{"format", "[log]\nformat = \"xml\"\n", "log.format"},
		{"delays", "[auth]\nfailure_delay = \"10s\"\nmax_failure_delay = \"5s\"\n", "auth.max_failure_delay"},
		{"per ip > total", "[limits]\nmax_conns = 5\nmax_preauth_conns_per_ip = 6\nconn_burst_per_ip = 5\nmax_userip_conns = 5\nmax_user_conns = 5\n", "limits.max_preauth_conns_per_ip"},
		{"userip > user", "[limits]\nmax_userip_conns = 50\nmax_user_conns = 20\n", "limits.max_userip_conns"},
		{"rate", "[limits]\nconn_rate_per_ip = 0\n", "limits.conn_rate_per_ip"},
		{"replaced key", "[limits]\nmax_conns_per_ip = 50\n", "max_userip_conns"},
		{"domain", "[lmtp]\ndomains = [\"a@b\"]\n", "lmtp.domains"},
		{"proxy network", "[proxy_protocol]\ntrusted_networks = [\"10.0.0.0/8\", \"haproxy.local\"]\n", "proxy_protocol.trusted_networks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	c := Default()
	c.DataDir = ""
	c.Limits.MaxConns = 0
	c.Log.Level = "x"
	err := c.Validate()
	for _, key := range []string{"data_dir", "limits.max_conns", "log.level"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not mention %s", err, key)
		}
	}
}

func parse(t *testing.T, serve bool, args ...string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := AddFlags(fs, serve)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f.Load()
}

func TestFlagPrecedence(t *testing.T) {
	p := writeFile(t, `
data_dir = "/from/file"
[listen]
imap = "127.0.0.1:2143"
imaps = "127.0.0.1:2993"
[auth]
insecure_auth = true
`)
	// No flags: file values win over defaults.
	c, err := parse(t, true, "--config", p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/from/file" || c.Listen.IMAP != "127.0.0.1:2143" || !c.Auth.InsecureAuth || c.Listen.LMTP != "127.0.0.1:2424" {
		t.Fatalf("file values not applied: %+v", c)
	}
	// Explicit flags override the file, even when set to the default value
	// or to empty; unset flags do not.
	c, err = parse(t, true, "--config", p, "--data", "./tern-data", "--listen-imap", "", "--insecure-auth=false")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./tern-data" || c.Listen.IMAP != "" || c.Auth.InsecureAuth || c.Listen.IMAPS != "127.0.0.1:2993" {
		t.Fatalf("flags did not override: %+v", c)
	}
	// Without a file: flags over defaults.
	c, err = parse(t, true, "--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--listen-lmtp", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Cert != "/c.pem" || c.TLS.Key != "/k.pem" || c.Listen.LMTP != "" || c.DataDir != "./tern-data" {
		t.Fatalf("flags over defaults: %+v", c)
	}
	// Flags are validated too.
	if _, err := parse(t, true, "--tls-cert", "/c.pem"); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
	// The non-serve set has only --config and --data.
	if _, err := parse(t, false, "--listen-imap", "x"); err == nil {
		t.Fatal("--listen-imap accepted without serve flags")
	}
	c, err = parse(t, false, "--data", "/d")
	if err != nil || c.DataDir != "/d" {
		t.Fatalf("non-serve --data: %v %+v", err, c)
	}
}

func TestSlogLevel(t *testing.T) {
	for in, want := range map[string]string{"debug": "DEBUG", "INFO": "INFO", "warn": "WARN", "warning": "WARN", "error": "ERROR"} {
		if got := (Log{Level: in}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAutoconfig(t *testing.T) {
	// Off by default; the section's defaults advertise 993, 143 and 587.
	d := Default()
	if d.Listen.Autoconfig != "" || d.Autoconfig.IMAPSPort != 993 || d.Autoconfig.IMAPPort != 143 ||
		d.Autoconfig.SubmissionPort != 587 || d.Autoconfig.Username != "localpart" {
		t.Fatalf("defaults: %+v %+v", d.Listen, d.Autoconfig)
	}
	p := writeFile(t, `
[listen]
autoconfig = "127.0.0.1:8080"
[autoconfig]
hostname = "mail.example.org"
imap_port = 0
submission_host = "smtp.example.org"
submission_port = 465
submission_security = "tls"
username = "address"
display_name = "Example Mail"
tls = true
[lmtp]
domains = ["example.org"]
`)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Autoconfig
	if c.Listen.Autoconfig != "127.0.0.1:8080" || a.Hostname != "mail.example.org" || a.IMAPSPort != 993 || a.IMAPPort != 0 ||
		a.SubmissionHost != "smtp.example.org" || a.SubmissionPort != 465 || a.Username != "address" || a.DisplayName != "Example Mail" || !a.TLS {
		t.Fatalf("loaded: %+v %+v", c.Listen, a)
	}
	if s, ok := a.SubmissionSocket(); !ok || s != "SSL" {
		t.Fatalf("submission socket %q %v", s, ok)
	}
	// The flag overrides the file; empty turns it off.
	c, err = parse(t, true, "--config", p, "--listen-autoconfig", "")
	if err != nil || c.Listen.Autoconfig != "" {
		t.Fatalf("--listen-autoconfig \"\": %v %+v", err, c)
	}
	c, err = parse(t, true, "--config", p, "--listen-autoconfig", "[::1]:0")
	if err != nil || c.Listen.Autoconfig != "[::1]:0" {
		t.Fatalf("--listen-autoconfig: %v %+v", err, c)
	}

	for _, tc := range []struct{ name, content, want string }{
		{"no hostname", "[listen]\nautoconfig = \"127.0.0.1:80\"\n", "autoconfig.hostname"},
		{"bad addr", "[listen]\nautoconfig = \"80\"\n", "listen.autoconfig"},
		{"bad hostname", "[autoconfig]\nhostname = \"mail server\"\n", "autoconfig.hostname"},
		{"bad submission host", "[autoconfig]\nsubmission_host = \"a/b\"\n", "autoconfig.submission_host"},
		{"no imap ports", "[autoconfig]\nimap_port = 0\nimaps_port = 0\n", "autoconfig.imaps_port"},
		{"port range", "[autoconfig]\nimap_port = 65536\n", "autoconfig.imap_port"},
		{"submission port", "[autoconfig]\nsubmission_port = 0\n", "autoconfig.submission_port"},
		{"security", "[autoconfig]\nsubmission_security = \"ssl\"\n", "autoconfig.submission_security"},
		{"username", "[autoconfig]\nusername = \"email\"\n", "autoconfig.username"},
		{"domain for autoconfig", "[listen]\nautoconfig = \"127.0.0.1:80\"\n[autoconfig]\nhostname = \"m.example\"\n[lmtp]\ndomains = [\"bad_.-x\"]\n", "lmtp.domains"},
		{"unknown key", "[autoconfig]\nport = 1\n", "autoconfig.port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to mention %q", err, tc.want)
			}
		})
	}
}

// listen.admin defaults to loopback and is "explicit" only when the file
// or a flag sets it: then a failure to bind it stops startup.
func TestAdminListenExplicit(t *testing.T) {
	c, err := parse(t, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.Admin != DefaultAdminAddr || c.Listen.AdminExplicit {
		t.Fatalf("default: %q explicit=%v", c.Listen.Admin, c.Listen.AdminExplicit)
	}
	if !strings.HasPrefix(DefaultAdminAddr, "127.0.0.1:") {
		t.Fatalf("default admin address %q is not loopback", DefaultAdminAddr)
	}
	// The default value written in the file still counts as given.
	p := writeFile(t, "[listen]\nadmin = \"127.0.0.1:9143\"\n")
	if c, err = parse(t, true, "--config", p); err != nil || !c.Listen.AdminExplicit {
		t.Fatalf("file: %v explicit=%v", err, c != nil && c.Listen.AdminExplicit)
	}
	// A file without the key leaves it default.
	p = writeFile(t, "[listen]\nimap = \"127.0.0.1:2143\"\n")
	if c, err = parse(t, true, "--config", p); err != nil || c.Listen.AdminExplicit || c.Listen.Admin != DefaultAdminAddr {
		t.Fatalf("file without admin: %v %+v", err, c)
	}
	if c, err = parse(t, true, "--listen-admin", "127.0.0.1:0"); err != nil || !c.Listen.AdminExplicit || c.Listen.Admin != "127.0.0.1:0" {
		t.Fatalf("flag: %v %+v", err, c)
	}
	if c, err = parse(t, true, "--listen-admin", ""); err != nil || c.Listen.Admin != "" {
		t.Fatalf("empty flag disables: %v %+v", err, c)
	}
	if _, err = parse(t, true, "--listen-admin", "nonsense"); err == nil || !strings.Contains(err.Error(), "listen.admin") {
		t.Fatalf("bad address accepted: %v", err)
	}
	// The admin listener alone is no service.
	if _, err = parse(t, true, "--listen-imap", "", "--listen-imaps", "", "--listen-lmtp", ""); err == nil {
		t.Fatal("only the admin listener accepted")
	}
}

// TestStoreURL: store.url names the backend; anything else is refused
// (without echoing a password).
func TestStoreURL(t *testing.T) {
	for _, tc := range []struct {
		url, where string
		kind       StoreKind
		bad        bool
	}{
		{"", "./tern-data", StoreSQLite, false},
		{"sqlite:/srv/mail", "/srv/mail", StoreSQLite, false},
		{"postgres://u:p@db:5432/tern?sslmode=require", "postgres://u:p@db:5432/tern?sslmode=require", StorePostgres, false},
		{"postgresql://db/tern", "postgresql://db/tern", StorePostgres, false},
		{"sqlite:", "", 0, true},
		{"mysql://u:secret@db/tern", "", 0, true},
	} {
		c := Default()
		c.Store.URL = tc.url
		kind, where, err := c.Backend()
		verr := c.Validate()
		if tc.bad {
			if err == nil || verr == nil || !strings.Contains(verr.Error(), "store.url") || strings.Contains(verr.Error(), "secret") {
				t.Errorf("%q: Backend %v, Validate %v", tc.url, err, verr)
			}
			continue
		}
		if err != nil || verr != nil || kind != tc.kind || where != tc.where {
			t.Errorf("%q: %v %q %v %v", tc.url, kind, where, err, verr)
		}
	}
}

// listen.managesieve: 127.0.0.1:4190 by default (not explicit, so a
// taken port only warns), set by the file or the flag (explicit),
// validated.
func TestListenManageSieve(t *testing.T) {
	c, err := parse(t, true)
	if err != nil || c.Listen.ManageSieve != DefaultManageSieveAddr || c.Listen.ManageSieveExplicit {
		t.Fatalf("default: %v %q explicit=%v", err, c.Listen.ManageSieve, c.Listen.ManageSieveExplicit)
	}
	p := writeFile(t, "[listen]\nmanagesieve = \"127.0.0.1:4190\"\n")
	if c, err = parse(t, true, "--config", p); err != nil || c.Listen.ManageSieve != DefaultManageSieveAddr || !c.Listen.ManageSieveExplicit {
		t.Fatalf("file: %v %+v", err, c)
	}
	if c, err = parse(t, true, "--config", p, "--listen-managesieve", ""); err != nil || c.Listen.ManageSieve != "" {
		t.Fatalf("empty flag disables: %v %+v", err, c)
	}
	if _, err = parse(t, true, "--listen-managesieve", "nonsense"); err == nil || !strings.Contains(err.Error(), "listen.managesieve") {
		t.Fatalf("bad address accepted: %v", err)
	}
}

func TestSieveSMTP(t *testing.T) {
	c, err := parse(t, true)
	if err != nil || c.Sieve.SMTP != "" {
		t.Fatalf("default: %v %q", err, c.Sieve.SMTP)
	}
	p := writeFile(t, "[sieve]\nsmtp = \"127.0.0.1:25\"\n")
	if c, err = parse(t, true, "--config", p); err != nil || c.Sieve.SMTP != "127.0.0.1:25" {
		t.Fatalf("file: %v %+v", err, c)
	}
	if c, err = parse(t, true, "--config", p, "--sieve-smtp", "relay:587"); err != nil || c.Sieve.SMTP != "relay:587" {
		t.Fatalf("flag: %v %+v", err, c)
	}
	if _, err = parse(t, true, "--sieve-smtp", "nonsense"); err == nil || !strings.Contains(err.Error(), "sieve.smtp") {
		t.Fatalf("bad address accepted: %v", err)
	}
}

// TestStoreBlobs: store.blobs (--blob-store) is db, file:DIR or s3://...,
// and only with a postgres store; blob_grace defaults to an hour.
func TestStoreBlobs(t *testing.T) {
	pg := "postgres://db/tern"
	for _, tc := range []struct {
		url, blobs string
		bad        bool
	}{
		{pg, "", false},
		{pg, "db", false},
		{pg, "file:/srv/blobs", false},
		{pg, "s3://mail?endpoint=http://127.0.0.1:8333&region=r&path_style=true", false},
		{pg, "ftp://x", true},
		{pg, "/srv/blobs", true},
		{"", "file:/srv/blobs", true},
		{"", "db", false},
	} {
		c := Default()
		c.Store.URL, c.Store.Blobs = tc.url, tc.blobs
		err := c.Validate()
		if tc.bad != (err != nil) || (err != nil && !strings.Contains(err.Error(), "store.blobs")) {
			t.Errorf("url %q blobs %q: %v", tc.url, tc.blobs, err)
		}
	}
	c, err := parse(t, false, "--store", pg, "--blob-store", "file:/b")
	if err != nil || c.Store.Blobs != "file:/b" || c.Store.BlobGrace != time.Hour {
		t.Fatalf("flags: %+v %v", c, err)
	}
	p := writeFile(t, "[store]\nurl = \""+pg+"\"\nblobs = \"file:/x\"\nblob_grace = \"10m\"\n")
	c, err = parse(t, false, "--config", p)
	if err != nil || c.Store.Blobs != "file:/x" || c.Store.BlobGrace != 10*time.Minute {
		t.Fatalf("file: %+v %v", c, err)
	}
	// With relaxed commits (fsync optimized) on PostgreSQL, a grace
	// shorter than MinRelaxedBlobGrace is refused; with always, or on
	// the embedded store, any grace goes.
	for _, tc := range []struct {
		url, fsync string
		grace      time.Duration
		bad        bool
	}{
		{pg, "optimized", 0, true},
		{pg, "optimized", 59 * time.Second, true},
		{pg, "optimized", time.Minute, false},
		{pg, "always", 0, false},
		{"", "optimized", 0, false},
	} {
		c := Default()
		c.Store.URL, c.Store.Fsync, c.Store.BlobGrace = tc.url, tc.fsync, tc.grace
		err := c.Validate()
		if tc.bad != (err != nil) || (err != nil && !strings.Contains(err.Error(), "store.blob_grace")) {
			t.Errorf("url %q fsync %s grace %v: %v", tc.url, tc.fsync, tc.grace, err)
		}
	}
}

// TestStoreReadURL: store.read_url (--read-store) is a postgres URL, and
// only with a postgres store.
func TestStoreReadURL(t *testing.T) {
	pg, replica := "postgres://db/tern", "postgres://standby/tern"
	for _, tc := range []struct {
		url, read string
		bad       bool
	}{
		{pg, "", false},
		{pg, replica, false},
		{pg, "postgresql://standby/tern", false},
		{pg, "standby:5432", true},
		{"", replica, true},
		{"sqlite:/srv/mail", replica, true},
	} {
		c := Default()
		c.Store.URL, c.Store.ReadURL = tc.url, tc.read
		err := c.Validate()
		if tc.bad != (err != nil) || (err != nil && !strings.Contains(err.Error(), "store.read_url")) {
			t.Errorf("url %q read_url %q: %v", tc.url, tc.read, err)
		}
	}
	c, err := parse(t, true, "--store", pg, "--read-store", replica)
	if err != nil || c.Store.ReadURL != replica {
		t.Fatalf("flags: %+v %v", c.Store, err)
	}
	c, err = parse(t, false, "--config", writeFile(t, "[store]\nurl = \""+pg+"\"\nread_url = \""+replica+"\"\n"))
	if err != nil || c.Store.ReadURL != replica {
		t.Fatalf("file: %+v %v", c.Store, err)
	}
}

// sieve.imapsieve_url must be RFC 5804's sieveurl-server: sieve://,
// a host, an optional port, nothing else.
func TestParseSieveServerURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		host string
		port int
		ok   bool
	}{
		{"sieve://mail.example.org", "mail.example.org", 4190, true},
		{"sieve://mail.example.org:2000", "mail.example.org", 2000, true},
		{"sieve://[::1]:4190", "::1", 4190, true},
		{"sieve://mail.example.org/", "", 0, false},
		{"sieve://mail.example.org/script", "", 0, false},
		{"sieve://mail.example.org?x", "", 0, false},
		{"sieve://mail.example.org:0", "", 0, false},
		{"sieve://mail.example.org:99999", "", 0, false},
		{"sieve://", "", 0, false},
		{"sieve:mail.example.org", "", 0, false},
		{"imap://mail.example.org", "", 0, false},
		{"mail.example.org:4190", "", 0, false},
	} {
		host, port, err := ParseSieveServerURL(tc.url)
		if (err == nil) != tc.ok || host != tc.host || port != tc.port {
			t.Errorf("%q: %q %d %v", tc.url, host, port, err)
		}
	}
	c := Default()
	c.Sieve.IMAPSieveURL = "sieve://mail.example.org/x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sieve.imapsieve_url") {
		t.Errorf("Validate: %v", err)
	}
}

// [[sieve.imapsieve_mailbox]] rules need sieve.imapsieve, a name, known
// causes and a script.
func TestIMAPSieveMailboxValidate(t *testing.T) {
	for _, tc := range []struct {
		on   bool
		rule IMAPSieveMailbox
		want string
	}{
		{true, IMAPSieveMailbox{Name: "Junk", Causes: []string{"COPY"}, Before: []string{"/x"}}, ""},
		{false, IMAPSieveMailbox{Name: "Junk", Before: []string{"/x"}}, "needs sieve.imapsieve = true"},
		{true, IMAPSieveMailbox{Before: []string{"/x"}}, ".name: must not be empty"},
		{true, IMAPSieveMailbox{Name: "*", Causes: []string{"MOVE"}, After: []string{"/x"}}, `unknown cause "MOVE"`},
		{true, IMAPSieveMailbox{Name: "*"}, "needs before or after scripts"},
	} {
		c := Default()
		c.Sieve.IMAPSieve = tc.on
		c.Sieve.IMAPSieveMailboxes = []IMAPSieveMailbox{tc.rule}
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.rule, err, tc.want)
		}
	}
}

// store.idle_users defaults to 256, takes 0 (close with the last
// session) and rejects a negative count.
func TestStoreIdleUsers(t *testing.T) {
	if got := Default().Store.IdleUsers; got != 256 {
		t.Errorf("default store.idle_users %d, want 256", got)
	}
	for _, tc := range []struct {
		value string
		want  int
		bad   bool
	}{{"0", 0, false}, {"1000", 1000, false}, {"-1", 0, true}} {
		c, err := Load(writeFile(t, "[store]\nidle_users = "+tc.value+"\n"))
		if tc.bad != (err != nil) || (err != nil && !strings.Contains(err.Error(), "store.idle_users")) {
			t.Errorf("idle_users = %s: %v", tc.value, err)
			continue
		}
		if err == nil && c.Store.IdleUsers != tc.want {
			t.Errorf("idle_users = %s: got %d", tc.value, c.Store.IdleUsers)
		}
	}
}
