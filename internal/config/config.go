// Package config holds every tern setting, loads it from a TOML file and
// lets command-line flags override file values.
package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tern-imap/tern/internal/autoconfig"
	"github.com/tern-imap/tern/internal/proxied"
)

// Config is the whole configuration. The TOML keys are the `toml` tags;
// README.md ("Configuration") documents each.
type Config struct {
	// DataDir holds the database, message files and the self-signed
	// certificate. Relative paths are relative to the working directory.
	DataDir string `toml:"data_dir"`
	// ShutdownTimeout is how long SIGTERM waits for sessions to finish.
	ShutdownTimeout time.Duration `toml:"shutdown_timeout"`

	Store  Store  `toml:"store"`
	Listen Listen `toml:"listen"`
	TLS    TLS    `toml:"tls"`
	Auth   Auth   `toml:"auth"`
	Limits Limits `toml:"limits"`
	Log    Log    `toml:"log"`
	LMTP   LMTP   `toml:"lmtp"`
	Index  Index  `toml:"index"`

	Autoconfig    Autoconfig    `toml:"autoconfig"`
	Sieve         Sieve         `toml:"sieve"`
	ProxyProtocol ProxyProtocol `toml:"proxy_protocol"`
}

// ProxyProtocol names the load balancers in front of tern that pass on
// their clients' addresses with the PROXY protocol (HAProxy's
// send-proxy or send-proxy-v2; internal/proxied).
type ProxyProtocol struct {
	// TrustedNetworks are the balancers' addresses or networks (CIDR).
	// A connection from one of them to the IMAP, IMAPS, LMTP or
	// ManageSieve listener must begin with a PROXY header (version 1 or
	// 2), whose client address then counts for the per-address limits,
	// failed logins and logs; one without is closed. Connections from
	// anywhere else are served as they are. Empty (the default): no
	// headers are read.
	TrustedNetworks []string `toml:"trusted_networks"`
}

// Sieve configures what Sieve scripts need from outside.
type Sieve struct {
	// SMTP is the relay (host:port) that vacation replies and redirects
	// are sent through, from a durable queue under data_dir/outbound;
	// empty: no outbound mail.
	SMTP string `toml:"smtp"`
	// SMTPRequireTLS refuses to send to a relay that does not offer
	// STARTTLS (STARTTLS is used whenever it is offered).
	SMTPRequireTLS bool `toml:"smtp_require_tls"`
	// SMTPTLSCAFile is a PEM file of the CA certificates the relay's
	// certificate is verified against; empty: the system's roots.
	SMTPTLSCAFile string `toml:"smtp_tls_ca_file"`
	// SMTPTLSInsecure skips verifying the relay's certificate.
	SMTPTLSInsecure bool `toml:"smtp_tls_insecure"`
	// SMTPUsername and SMTPPasswordFile (a file holding the password)
	// authenticate to the relay with AUTH PLAIN, over TLS (or plain TCP
	// to a relay on loopback).
	SMTPUsername     string `toml:"smtp_username"`
	SMTPPasswordFile string `toml:"smtp_password_file"`
	// Before and After are the operator's scripts run before and after
	// every user's own (as Pigeonhole's sieve_before/sieve_after): each
	// entry a script file, or a directory whose *.sieve files run in
	// name order. They are compiled at start; one that does not compile
	// stops tern serve.
	Before []string `toml:"before"`
	After  []string `toml:"after"`
	// GlobalDir holds the scripts "include :global" names
	// (include :global "spam" reads GlobalDir/spam.sieve); compiled at
	// start as well. Empty: include :global finds nothing.
	GlobalDir string `toml:"global_dir"`
	// IMAPSieve runs a mailbox's IMAPSIEVE script (RFC 6785; named by its
	// /shared/imapsieve/script metadata) on messages APPEND, COPY and
	// MOVE add to it. IMAPSieveURL (sieve://host[:port], the ManageSieve
	// server clients should use) is advertised as IMAPSIEVE=<url>; empty:
	// scripts run but the capability is not advertised.
	IMAPSieve    bool   `toml:"imapsieve"`
	IMAPSieveURL string `toml:"imapsieve_url"`
	// IMAPSieveMailboxes are the operator's IMAPSIEVE scripts (as
	// Pigeonhole's imapsieve_mailboxN_*): for the events on the mailboxes
	// a rule names, its before scripts run before the mailbox's own
	// (/shared/imapsieve/script) and its after scripts after it. Needs
	// IMAPSieve; reloaded with the global scripts on SIGHUP.
	IMAPSieveMailboxes []IMAPSieveMailbox `toml:"imapsieve_mailbox"`
}

// IMAPSieveMailbox is one operator IMAPSIEVE rule ([[sieve.imapsieve_mailbox]]).
type IMAPSieveMailbox struct {
	// Name is the mailbox name, with LIST's wildcards ("*" anything,
	// "%" anything but "/"), e.g. "Junk" or "*".
	Name string `toml:"name"`
	// From, when set, limits the rule to COPY (and MOVE) from mailboxes
	// matching it (e.g. "Junk" with Name "*": messages taken out of
	// Junk).
	From string `toml:"from"`
	// Causes are the events it runs for: "APPEND", "COPY" (MOVE too),
	// "FLAG"; empty: all.
	Causes []string `toml:"causes"`
	// Before and After are script files or directories of *.sieve
	// files, as sieve.before.
	Before []string `toml:"before"`
	After  []string `toml:"after"`
}

// Store says where mail is kept.
type Store struct {
	// URL is "sqlite:DIR" (the embedded store in DIR), or
	// "postgres://USER:PASS@HOST:PORT/DB?sslmode=..." (the PostgreSQL
	// store, which several tern nodes can share). Empty: the embedded
	// store in DataDir.
	URL string `toml:"url"`
	// Fsync is "always" (every change is on stable storage before its
	// reply) or "optimized" (as Dovecot's mail_fsync=optimized: new mail,
	// copies and moves are; flag changes, expunges and \Recent claims survive
	// a crash of tern but not necessarily a power failure). On the
	// PostgreSQL store "optimized" commits flag changes and expunges
	// with synchronous_commit off (postgres.Options.RelaxedCommits;
	// copies and moves stay durable); "always" follows the server's own
	// synchronous_commit.
	Fsync string `toml:"fsync"`
	// KeepBase64 keeps base64 attachments in body files as received. By
	// default (false) the sqlite store keeps them decoded, about a
	// quarter smaller, and encodes them again when a client reads them
	// (about 0.5 ms of CPU per MB read). The sqlite store only.
	KeepBase64 bool `toml:"keep_base64"`
	// IdleUsers is how many users' mail databases the sqlite store keeps
	// open after their last session ends, so that their next login
	// needs no open (milliseconds of CPU each); 0 closes a user's
	// database with the last session. The sqlite store only.
	IdleUsers int `toml:"idle_users"`
	// Blobs says where the postgres store keeps message bodies: "db"
	// (or empty: in the database), "file:DIR" (a directory, shared by
	// the nodes) or "s3://BUCKET?endpoint=http://HOST:PORT&region=R&
	// path_style=true" (credentials from AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY). Every node of one database uses the same.
	Blobs string `toml:"blobs"`
	// ReadURL is a streaming replica of the postgres store's database
	// ("postgres://...", a hot standby or a pooler in front of several):
	// message bodies and other rows that never change once written are
	// read there first, and from the primary when the replica does not
	// have them yet or cannot be reached. Empty: every read goes to the
	// primary. The postgres store only.
	ReadURL string `toml:"read_url"`
	// BlobGrace is how long a body no message uses any more is kept (in
	// the database, or in a file or S3 blob store) before tern serve's
	// collector deletes it.
	// At least MinRelaxedBlobGrace with Fsync "optimized" on PostgreSQL;
	// every node of a cluster must have the same Fsync and BlobGrace.
	BlobGrace time.Duration `toml:"blob_grace"`
}

// MinRelaxedBlobGrace bounds store.blob_grace from below on a postgres
// store with store.fsync = "optimized": an expunge committed relaxed is
// on the database's disk within three times wal_writer_delay (0.6 s by
// default, 30 s at most), and a database crash before that brings its
// messages back; their bodies must still be there.
const MinRelaxedBlobGrace = time.Minute

// BlobsInDB reports whether the postgres store keeps bodies in the
// database (store.blobs empty or "db").
func (s Store) BlobsInDB() bool { return s.Blobs == "" || s.Blobs == "db" }

// StoreKind is the backend a Store URL names.
type StoreKind int

const (
	StoreSQLite StoreKind = iota
	StorePostgres
)

// Backend returns which backend the store URL names and its location:
// the directory of an sqlite store (DataDir when the URL is empty), the
// URL itself for postgres.
func (c *Config) Backend() (StoreKind, string, error) {
	u := c.Store.URL
	switch {
	case u == "":
		return StoreSQLite, c.DataDir, nil
	case strings.HasPrefix(u, "sqlite:"):
		dir := strings.TrimPrefix(u, "sqlite:")
		if dir == "" {
			return 0, "", fmt.Errorf("store URL %q: no directory after sqlite:", u)
		}
		return StoreSQLite, dir, nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return StorePostgres, u, nil
	}
	return 0, "", fmt.Errorf("store URL %q: want sqlite:DIR or postgres://...", redactURL(u))
}

// redactURL hides a password in a URL that is being reported.
func redactURL(u string) string {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		if _, ok := p.User.Password(); ok {
			p.User = url.UserPassword(p.User.Username(), "xxx")
			return p.String()
		}
	}
	return u
}

// Listen holds listener addresses (host:port). Empty disables a listener.
type Listen struct {
	IMAP  string `toml:"imap"`  // plain IMAP with STARTTLS
	IMAPS string `toml:"imaps"` // implicit TLS
	LMTP  string `toml:"lmtp"`  // LMTP delivery: host:port or a unix socket path
	// Admin serves /metrics, /healthz, /readyz and /debug/pprof/ over
	// HTTP. Keep it on loopback (or a private network): pprof and the
	// metrics are for operators.
	Admin string `toml:"admin"`
	// AdminExplicit records that Admin was set by the config file or a
	// flag rather than left at its default: an explicit address that
	// cannot be bound stops startup, the default only logs a warning.
	AdminExplicit bool `toml:"-"`
	// Autoconfig serves mail client autoconfiguration over HTTP (section
	// Autoconfig); empty (the default) disables it.
	Autoconfig string `toml:"autoconfig"`
	// ManageSieve (RFC 5804, STARTTLS) lets clients manage their Sieve
	// scripts; DefaultManageSieveAddr by default, empty disables it. If
	// the default address is taken tern warns and runs without it.
	ManageSieve string `toml:"managesieve"`
	// ManageSieveExplicit records that ManageSieve was set by the file or
	// a flag: then it must bind.
	ManageSieveExplicit bool `toml:"-"`
}

// DefaultManageSieveAddr is the conventional ManageSieve address
// (port 4190, RFC 5804), on loopback.
const DefaultManageSieveAddr = "127.0.0.1:4190"

// Autoconfig is what the autoconfig listener advertises to mail clients.
// The mail domains it answers for are LMTP.Domains (empty: any).
type Autoconfig struct {
	// Hostname is the public name of the IMAP server; required when
	// Listen.Autoconfig is set.
	Hostname string `toml:"hostname"`
	// IMAPSPort (implicit TLS, preferred) and IMAPPort (STARTTLS) are the
	// public ports; 0 leaves one out.
	IMAPSPort int `toml:"imaps_port"`
	IMAPPort  int `toml:"imap_port"`
	// The SMTP submission server clients send through (the MTA's, not
	// tern's); SubmissionHost empty means Hostname. SubmissionSecurity is
	// "starttls" or "tls" (implicit TLS, usually port 465).
	SubmissionHost     string `toml:"submission_host"`
	SubmissionPort     int    `toml:"submission_port"`
	SubmissionSecurity string `toml:"submission_security"`
	// Username is what clients log in with: "localpart" (alice, as
	// tern user add alice and LMTP's mapping of alice@domain) or
	// "address" (alice@example.org, for users named by their address).
	Username string `toml:"username"`
	// DisplayName names the provider in the client; empty: the domain.
	DisplayName string `toml:"display_name"`
	// TLS serves HTTPS with tern's certificate instead of plain HTTP.
	TLS bool `toml:"tls"`
}

// DefaultAdminAddr is the default admin listener: loopback only.
const DefaultAdminAddr = "127.0.0.1:9143"

// TLS names a certificate and key (PEM). Both empty: a self-signed pair in
// <data_dir>/tls is generated on first start and reused.
type TLS struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// Auth holds login settings and failure throttling.
type Auth struct {
	// InsecureAuth allows LOGIN / AUTHENTICATE PLAIN without TLS.
	InsecureAuth bool `toml:"insecure_auth"`
	// FreeFailures failures are answered without delay; after that the
	// delay starts at FailureDelay and doubles up to MaxFailureDelay.
	FreeFailures    int           `toml:"free_failures"`
	FailureDelay    time.Duration `toml:"failure_delay"`
	MaxFailureDelay time.Duration `toml:"max_failure_delay"`
	// FailureWindow is how long failures are remembered.
	FailureWindow time.Duration `toml:"failure_window"`
	// A user name / client address is locked out (NO [UNAVAILABLE]) once it
	// reaches this many failures within FailureWindow.
	MaxUserFailures int `toml:"max_user_failures"`
	MaxIPFailures   int `toml:"max_ip_failures"`
	// Admins may set any user's quota over IMAP (SETQUOTA, RFC 9208);
	// with none, SETQUOTA is refused to everyone.
	Admins []string `toml:"admins"`
	// SubmitUsers are the users a message submission server logs in as to
	// fetch URLAUTH URLs for "submit+<user>" (RFC 4467); with none, such
	// URLs cannot be fetched.
	SubmitUsers []string `toml:"submit_users"`
}

// Index configures the shared in-memory mailbox index.
type Index struct {
	// MemoryMB bounds the memory of all mailbox indexes; the least
	// recently used are evicted (and reloaded on use) beyond it.
	MemoryMB int64 `toml:"memory_mb"`
	// Text runs the background indexer of the full-text index that
	// answers SEARCH text keys (tern serve). Off, new mail waits in the
	// index queue and SEARCH reads it.
	Text bool `toml:"text"`
}

// Limits bound resource use per connection and per server. The
// connection limits count addresses as IPv4 addresses or IPv6 /64s; their
// defaults let an office behind one NAT address work (200 sessions of 3
// shared accounts from one address).
type Limits struct {
	MaxLineLength  int   `toml:"max_line_length"`  // bytes of a command line, excluding literals
	MaxLiteralSize int64 `toml:"max_literal_size"` // bytes of one literal (APPENDLIMIT)
	MaxConns       int   `toml:"max_conns"`        // all connections
	// Before login: connections per client address, and new connections
	// per address (a burst, refilled at a rate per second).
	MaxPreAuthConnsPerIP int     `toml:"max_preauth_conns_per_ip"`
	ConnRatePerIP        float64 `toml:"conn_rate_per_ip"`
	ConnBurstPerIP       int     `toml:"conn_burst_per_ip"`
	// After login: connections per user and address (Dovecot's
	// mail_max_userip_connections) and per user in total.
	MaxUserIPConns int `toml:"max_userip_conns"`
	MaxUserConns   int `toml:"max_user_conns"`
	// MaxManageSieveUserConns bounds one user's logged-in ManageSieve
	// connections (a login over it gets NO (TRYLATER)).
	MaxManageSieveUserConns int `toml:"max_managesieve_user_conns"`
}

// Log configures the slog output on stderr.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// SlogLevel returns the level named by Level (info if unknown; Validate
// rejects unknown names).
func (l Log) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// LMTP holds delivery settings (LMTP and tern deliver).
type LMTP struct {
	// Domains are the recipient domains accepted; the local part names the
	// user. Empty accepts any domain.
	Domains []string `toml:"domains"`
	// RecipientDelimiter separates a user from a sub-address
	// ("alice+lists@..." is delivered to alice). Empty disables it.
	RecipientDelimiter string `toml:"recipient_delimiter"`
	// PostUser is the local part that posts into shared folders:
	// "<post_user><delimiter><folder>@domain" goes into "Shared
	// Folders/<folder>" when its ACL gives anyone "p" ("" by default:
	// "+folder@domain").
	PostUser string `toml:"post_user"`
	// QuotaFullTempFail answers over-quota deliveries with a temporary
	// failure (LMTP 452 4.2.2, deliver exit 75) instead of a permanent one
	// (552 5.2.2, exit 77), so the MTA retries.
	QuotaFullTempFail bool `toml:"quota_full_tempfail"`
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		DataDir:         "./tern-data",
		ShutdownTimeout: 30 * time.Second,
		Listen: Listen{
			IMAP:        "127.0.0.1:1143",
			IMAPS:       "127.0.0.1:1993",
			LMTP:        "127.0.0.1:2424",
			Admin:       DefaultAdminAddr,
			ManageSieve: DefaultManageSieveAddr,
		},
		Auth: Auth{
			FreeFailures:    3,
			FailureDelay:    time.Second,
			MaxFailureDelay: 15 * time.Second,
			FailureWindow:   15 * time.Minute,
			MaxUserFailures: 10,
			MaxIPFailures:   200,
		},
		Limits: Limits{
			MaxLineLength:  64 * 1024,
			MaxLiteralSize: 64 * 1024 * 1024,
			MaxConns:       10000,

			MaxPreAuthConnsPerIP: 300,
			ConnRatePerIP:        20,
			ConnBurstPerIP:       300,
			MaxUserIPConns:       100,
			MaxUserConns:         500,

			MaxManageSieveUserConns: 10,
		},
		Log:   Log{Level: "info", Format: "text"},
		LMTP:  LMTP{RecipientDelimiter: "+"},
		Index: Index{MemoryMB: 256, Text: true},
		Store: Store{Fsync: "always", BlobGrace: time.Hour, IdleUsers: 256},
		Autoconfig: Autoconfig{
			IMAPSPort:          993,
			IMAPPort:           143,
			SubmissionPort:     587,
			SubmissionSecurity: "starttls",
			Username:           autoconfig.UsernameLocalPart,
		},
	}
}

// Load reads a TOML file over the defaults: keys missing from the file
// keep their default. Unknown keys are an error. The result is validated.
func Load(path string) (*Config, error) {
	c := Default()
	if err := c.loadFile(path); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *Config) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if md.IsDefined("listen", "admin") {
		c.Listen.AdminExplicit = true
	}
	if md.IsDefined("listen", "managesieve") {
		c.Listen.ManageSieveExplicit = true
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
			if hint, ok := replacedKeys[keys[i]]; ok {
				return fmt.Errorf("config %s: %s was replaced: %s", path, keys[i], hint)
			}
		}
		return fmt.Errorf("config %s: unknown key(s): %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// replacedKeys names keys that older versions accepted, with what to use
// instead.
var replacedKeys = map[string]string{
	"limits.max_conns_per_ip": "it counted connections per address before and after login; " +
		"use max_preauth_conns_per_ip (before login), conn_rate_per_ip and conn_burst_per_ip (new connections), " +
		"max_userip_conns and max_user_conns (after login)",
}

// Validate checks every value and returns all problems found, joined.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}
	if _, _, err := c.Backend(); err != nil {
		bad("store.url", "%v", err)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive, got %v", c.ShutdownTimeout)
	}
	for _, l := range []struct{ key, addr string }{
		{"listen.imap", c.Listen.IMAP}, {"listen.imaps", c.Listen.IMAPS}, {"listen.lmtp", c.Listen.LMTP},
		{"listen.autoconfig", c.Listen.Autoconfig},
		{"listen.admin", c.Listen.Admin},
		{"listen.managesieve", c.Listen.ManageSieve},
		{"sieve.smtp", c.Sieve.SMTP},
	} {
		if l.addr == "" {
			continue
		}
		if l.key == "listen.lmtp" && isSocketPath(l.addr) {
			continue
		}
		if err := checkAddr(l.addr); err != nil {
			bad(l.key, "%v", err)
		}
	}
	if u := c.Sieve.IMAPSieveURL; u != "" {
		if _, _, err := ParseSieveServerURL(u); err != nil {
			bad("sieve.imapsieve_url", "%v", err)
		}
	}
	for i, r := range c.Sieve.IMAPSieveMailboxes {
		key := fmt.Sprintf("sieve.imapsieve_mailbox[%d]", i)
		if !c.Sieve.IMAPSieve {
			bad(key, "needs sieve.imapsieve = true")
		}
		if r.Name == "" {
			bad(key+".name", "must not be empty")
		}
		for _, cause := range r.Causes {
			switch cause {
			case "APPEND", "COPY", "FLAG":
			default:
				bad(key+".causes", "unknown cause %q (APPEND, COPY, FLAG)", cause)
			}
		}
		if len(r.Before)+len(r.After) == 0 {
			bad(key, "needs before or after scripts")
		}
	}
	if (c.Sieve.SMTPUsername == "") != (c.Sieve.SMTPPasswordFile == "") {
		bad("sieve.smtp_username", "smtp_username and smtp_password_file must be set together")
	}
	if c.Listen.IMAP == "" && c.Listen.IMAPS == "" && c.Listen.LMTP == "" {
		bad("listen", "all listeners are disabled; set at least one of imap, imaps, lmtp")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key must be set together (or both left empty for a self-signed certificate)")
	}
	a := c.Auth
	if a.FreeFailures < 0 {
		bad("auth.free_failures", "must be >= 0, got %d", a.FreeFailures)
	}
	if a.FailureDelay <= 0 {
		bad("auth.failure_delay", "must be positive, got %v", a.FailureDelay)
	}
	if a.MaxFailureDelay < a.FailureDelay {
		bad("auth.max_failure_delay", "must be >= failure_delay (%v), got %v", a.FailureDelay, a.MaxFailureDelay)
	}
	if a.MaxFailureDelay > 5*time.Minute {
		bad("auth.max_failure_delay", "must be at most 5m, got %v", a.MaxFailureDelay)
	}
	if a.FailureWindow <= 0 {
		bad("auth.failure_window", "must be positive, got %v", a.FailureWindow)
	}
	if a.MaxUserFailures < 1 {
		bad("auth.max_user_failures", "must be >= 1, got %d", a.MaxUserFailures)
	}
	if a.MaxIPFailures < 1 {
		bad("auth.max_ip_failures", "must be >= 1, got %d", a.MaxIPFailures)
	}
	if b := c.Store.Blobs; !c.Store.BlobsInDB() && !strings.HasPrefix(b, "file:") && !strings.HasPrefix(b, "s3://") {
		bad("store.blobs", "want db, file:DIR or s3://BUCKET?endpoint=..., got %q", b)
	} else if kind, _, err := c.Backend(); err == nil && kind != StorePostgres && !c.Store.BlobsInDB() {
		bad("store.blobs", "a blob store is for a postgres store only")
	}
	if r := c.Store.ReadURL; r != "" {
		if kind, _, err := c.Backend(); err == nil && kind != StorePostgres {
			bad("store.read_url", "a replica is for a postgres store only")
		} else if !strings.HasPrefix(r, "postgres://") && !strings.HasPrefix(r, "postgresql://") {
			bad("store.read_url", "want postgres://USER:PASS@HOST:PORT/DB, got %q", redactURL(r))
		}
	}
	if c.Store.BlobGrace < 0 {
		bad("store.blob_grace", "must not be negative, got %v", c.Store.BlobGrace)
	} else if kind, _, err := c.Backend(); err == nil && kind == StorePostgres && c.Store.Fsync == "optimized" && c.Store.BlobGrace < MinRelaxedBlobGrace {
		bad("store.blob_grace", "must be at least %v with store.fsync = \"optimized\" (an expunge reaches the database's disk up to a few seconds after its reply, and the bodies it released must outlive that), got %v", MinRelaxedBlobGrace, c.Store.BlobGrace)
	}
	if c.Store.IdleUsers < 0 {
		bad("store.idle_users", "must be 0 or more, got %d", c.Store.IdleUsers)
	}
	if f := c.Store.Fsync; f != "always" && f != "optimized" {
		bad("store.fsync", "must be always or optimized, got %q", f)
	}
	if c.Index.MemoryMB < 1 {
		bad("index.memory_mb", "must be >= 1, got %d", c.Index.MemoryMB)
	}
	l := c.Limits
	if l.MaxLineLength < 8192 || l.MaxLineLength > 16<<20 {
		// RFC 7162 section 4: servers should accept lines of at least 8192 octets.
		bad("limits.max_line_length", "must be between 8192 and 16777216, got %d", l.MaxLineLength)
	}
	if l.MaxLiteralSize < 1024 || l.MaxLiteralSize > 4<<30 {
		bad("limits.max_literal_size", "must be between 1024 and 4294967296, got %d", l.MaxLiteralSize)
	}
	if l.MaxConns < 1 {
		bad("limits.max_conns", "must be >= 1, got %d", l.MaxConns)
	}
	for _, v := range []struct {
		key string
		n   int
	}{
		{"limits.max_preauth_conns_per_ip", l.MaxPreAuthConnsPerIP},
		{"limits.conn_burst_per_ip", l.ConnBurstPerIP},
		{"limits.max_userip_conns", l.MaxUserIPConns},
		{"limits.max_user_conns", l.MaxUserConns},
	} {
		if v.n < 1 {
			bad(v.key, "must be >= 1, got %d", v.n)
		} else if v.n > l.MaxConns && l.MaxConns >= 1 {
			bad(v.key, "must not exceed max_conns (%d), got %d", l.MaxConns, v.n)
		}
	}
	if l.MaxManageSieveUserConns < 1 {
		bad("limits.max_managesieve_user_conns", "must be >= 1, got %d", l.MaxManageSieveUserConns)
	}
	if !(l.ConnRatePerIP > 0) {
		bad("limits.conn_rate_per_ip", "must be positive, got %v", l.ConnRatePerIP)
	}
	if l.MaxUserIPConns > l.MaxUserConns && l.MaxUserConns >= 1 {
		bad("limits.max_userip_conns", "must not exceed max_user_conns (%d), got %d", l.MaxUserConns, l.MaxUserIPConns)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "warning", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch strings.ToLower(c.Log.Format) {
	case "text", "json":
	default:
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	for _, d := range c.LMTP.Domains {
		if d == "" || strings.ContainsAny(d, "@ \t") {
			bad("lmtp.domains", "invalid domain %q", d)
		}
	}
	if strings.ContainsAny(c.LMTP.PostUser, "@\"\x00\r\n") || (c.LMTP.RecipientDelimiter != "" && strings.Contains(c.LMTP.PostUser, c.LMTP.RecipientDelimiter)) {
		bad("lmtp.post_user", "must be a local part without the recipient delimiter, got %q", c.LMTP.PostUser)
	}
	if len(c.LMTP.RecipientDelimiter) > 1 {
		bad("lmtp.recipient_delimiter", "must be empty or one character, got %q", c.LMTP.RecipientDelimiter)
	}
	if _, err := proxied.ParseNetworks(c.ProxyProtocol.TrustedNetworks); err != nil {
		bad("proxy_protocol.trusted_networks", "%v", err)
	}
	c.validateAutoconfig(bad)
	return errors.Join(errs...)
}

// validateAutoconfig checks the autoconfig section; the host name is
// required only when the listener is on.
func (c *Config) validateAutoconfig(bad func(key, format string, args ...any)) {
	a := c.Autoconfig
	if a.Hostname == "" && c.Listen.Autoconfig != "" {
		bad("autoconfig.hostname", "must be set when listen.autoconfig is set (the public name of the IMAP server)")
	}
	for _, h := range []struct{ key, host string }{{"autoconfig.hostname", a.Hostname}, {"autoconfig.submission_host", a.SubmissionHost}} {
		if h.host != "" && !autoconfig.ValidDomain(h.host) {
			bad(h.key, "invalid host name %q", h.host)
		}
	}
	for _, p := range []struct {
		key  string
		port int
	}{{"autoconfig.imaps_port", a.IMAPSPort}, {"autoconfig.imap_port", a.IMAPPort}} {
		if p.port < 0 || p.port > 65535 {
			bad(p.key, "must be between 0 and 65535, got %d", p.port)
		}
	}
	if a.IMAPSPort == 0 && a.IMAPPort == 0 {
		bad("autoconfig.imaps_port", "imaps_port and imap_port are both 0; advertise at least one")
	}
	if a.SubmissionPort < 1 || a.SubmissionPort > 65535 {
		bad("autoconfig.submission_port", "must be between 1 and 65535, got %d", a.SubmissionPort)
	}
	if _, ok := a.SubmissionSocket(); !ok {
		bad("autoconfig.submission_security", "must be starttls or tls, got %q", a.SubmissionSecurity)
	}
	switch a.Username {
	case autoconfig.UsernameLocalPart, autoconfig.UsernameAddress:
	default:
		bad("autoconfig.username", "must be %s or %s, got %q", autoconfig.UsernameLocalPart, autoconfig.UsernameAddress, a.Username)
	}
	if c.Listen.Autoconfig != "" {
		for _, d := range c.LMTP.Domains {
			if !autoconfig.ValidDomain(d) {
				bad("lmtp.domains", "%q is not a host name, which autoconfig needs", d)
			}
		}
	}
}

// SubmissionSocket maps SubmissionSecurity to the autoconfig socket type.
func (a Autoconfig) SubmissionSocket() (string, bool) {
	switch strings.ToLower(a.SubmissionSecurity) {
	case "starttls":
		return autoconfig.SocketSTARTTLS, true
	case "tls":
		return autoconfig.SocketSSL, true
	}
	return "", false
}

// isSocketPath reports whether an LMTP address names a unix socket
// ("unix:/path" or a path starting with "/", "./" or "../").
func isSocketPath(addr string) bool {
	for _, p := range []string{"unix:", "/", "./", "../"} {
		if strings.HasPrefix(addr, p) {
			return len(addr) > len(p)
		}
	}
	return false
}

// DefaultManageSievePort is the port of a sieve:// URL without one
// (RFC 5804 §3).
const DefaultManageSievePort = 4190

// ParseSieveServerURL checks that u is a ManageSieve server URL as
// IMAPSIEVE= carries it (RFC 6785 §2.1: RFC 5804 §3's sieveurl-server,
// "sieve://" authority, no path) and returns its host and port (4190
// when absent).
func ParseSieveServerURL(u string) (host string, port int, err error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", 0, fmt.Errorf("invalid sieve:// URL %q: %w", u, err)
	}
	if pu.Scheme != "sieve" || pu.Opaque != "" {
		return "", 0, fmt.Errorf("must be a sieve:// URL, got %q", u)
	}
	if pu.Path != "" || pu.RawQuery != "" || pu.Fragment != "" || pu.ForceQuery {
		return "", 0, fmt.Errorf("%q: a ManageSieve server URL has no path, query or fragment (sieve://host[:port])", u)
	}
	host = pu.Hostname()
	if host == "" || strings.ContainsAny(host, " /") {
		return "", 0, fmt.Errorf("%q: no host", u)
	}
	port = DefaultManageSievePort
	if p := pu.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, fmt.Errorf("%q: invalid port", u)
		}
		port = n
	}
	return host, port, nil
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: %w", addr, err)
	}
	if host != "" && strings.ContainsAny(host, " /") {
		return fmt.Errorf("invalid host in %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port in %q", addr)
	}
	return nil
}

// Flags binds the command-line flags that override configuration values.
// Register them with AddFlags, parse the FlagSet, then call Load: only
// flags given explicitly on the command line override the file.
type Flags struct {
	fs *flag.FlagSet

	ConfigPath   string
	dataDir      string
	storeURL     string
	blobStore    string
	readStore    string
	imap, imaps  string
	lmtp, admin  string
	autoconfig   string
	managesieve  string
	sieveSMTP    string
	cert, key    string
	insecureAuth bool
}

// AddFlags registers --config, --data, --store and --blob-store on fs and, when serve is true,
// also --read-store, --listen-imap, --listen-imaps, --listen-lmtp, --listen-autoconfig, --listen-admin,
// --listen-managesieve, --sieve-smtp, --tls-cert, --tls-key and --insecure-auth.
func AddFlags(fs *flag.FlagSet, serve bool) *Flags {
	f := &Flags{fs: fs}
	d := Default()
	fs.StringVar(&f.ConfigPath, "config", "", "read configuration from this TOML `file`")
	fs.StringVar(&f.dataDir, "data", d.DataDir, "data `dir`ectory")
	fs.StringVar(&f.storeURL, "store", "", "where mail is kept: sqlite:DIR or postgres://USER:PASS@HOST:PORT/DB (`URL`); default: the data directory")
	fs.StringVar(&f.blobStore, "blob-store", "", "where a postgres store keeps message bodies: db, file:DIR or s3://BUCKET?endpoint=...&region=...&path_style=true (`URL`); default: db")
	if serve {
		fs.StringVar(&f.readStore, "read-store", "", "a streaming replica of the postgres store's database, read first for message bodies (`URL`); default: none")
		fs.StringVar(&f.imap, "listen-imap", d.Listen.IMAP, "IMAP (STARTTLS) listen `addr`ess; empty disables")
		fs.StringVar(&f.imaps, "listen-imaps", d.Listen.IMAPS, "IMAPS (implicit TLS) listen `addr`ess; empty disables")
		fs.StringVar(&f.lmtp, "listen-lmtp", d.Listen.LMTP, "LMTP listen `addr`ess (host:port, unix:/path or /path); empty disables")
		fs.StringVar(&f.autoconfig, "listen-autoconfig", d.Listen.Autoconfig, "autoconfig HTTP listen `addr`ess (see [autoconfig]); empty disables")
		fs.StringVar(&f.admin, "listen-admin", d.Listen.Admin, "admin HTTP listen `addr`ess (/metrics, /healthz, /readyz, /debug/pprof/); empty disables")
		fs.StringVar(&f.managesieve, "listen-managesieve", d.Listen.ManageSieve,
			"ManageSieve (RFC 5804) listen `addr`ess, e.g. "+DefaultManageSieveAddr+"; empty disables")
		fs.StringVar(&f.sieveSMTP, "sieve-smtp", d.Sieve.SMTP, "SMTP relay `host:port` for Sieve vacation replies and redirects; empty: none")
		fs.StringVar(&f.cert, "tls-cert", "", "TLS certificate `file` (PEM); default: self-signed in <data>/tls")
		fs.StringVar(&f.key, "tls-key", "", "TLS private key `file` (PEM)")
		fs.BoolVar(&f.insecureAuth, "insecure-auth", false, "allow LOGIN and AUTHENTICATE PLAIN without TLS")
	}
	return f
}

// Load builds the configuration: defaults, then the --config file if
// given, then every flag set explicitly on the command line. The result
// is validated.
func (f *Flags) Load() (*Config, error) {
	c := Default()
	if f.ConfigPath != "" {
		if err := c.loadFile(f.ConfigPath); err != nil {
			return nil, err
		}
	}
	f.Apply(c)
	if err := c.Validate(); err != nil {
		if f.ConfigPath != "" {
			return nil, fmt.Errorf("config %s: %w", f.ConfigPath, err)
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// Apply copies the explicitly set flags into c.
func (f *Flags) Apply(c *Config) {
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "data":
			c.DataDir = f.dataDir
		case "store":
			c.Store.URL = f.storeURL
		case "blob-store":
			c.Store.Blobs = f.blobStore
		case "read-store":
			c.Store.ReadURL = f.readStore
		case "listen-imap":
			c.Listen.IMAP = f.imap
		case "listen-imaps":
			c.Listen.IMAPS = f.imaps
		case "listen-lmtp":
			c.Listen.LMTP = f.lmtp
		case "listen-autoconfig":
			c.Listen.Autoconfig = f.autoconfig
		case "listen-admin":
			c.Listen.Admin = f.admin
			c.Listen.AdminExplicit = true
		case "listen-managesieve":
			c.Listen.ManageSieve = f.managesieve
			c.Listen.ManageSieveExplicit = true
		case "sieve-smtp":
			c.Sieve.SMTP = f.sieveSMTP
		case "tls-cert":
			c.TLS.Cert = f.cert
		case "tls-key":
			c.TLS.Key = f.key
		case "insecure-auth":
			c.Auth.InsecureAuth = f.insecureAuth
		}
	})
}
