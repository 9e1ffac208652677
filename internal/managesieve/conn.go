package managesieve

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tern-imap/tern/internal/logctx"
	"github.com/tern-imap/tern/internal/proxied"
	"github.com/tern-imap/tern/internal/store"
)

// conn is one client connection.
type conn struct {
	srv     *Server
	raw     net.Conn // the TCP connection (deadlines, interrupt)
	nc      net.Conn // raw, or TLS over it after STARTTLS
	remote  net.Addr
	addrKey string
	log     *slog.Logger
	ctx     context.Context
	id      string // session id in log lines

	r *reader
	w *bufio.Writer

	isTLS    bool
	user     string
	acct     store.Account // nil until logged in
	errors   int           // failed commands in a row
	commands int           // commands before login
	loggedIn bool          // the session ever logged in
	stopping atomic.Bool   // Shutdown was called
}

func newConn(s *Server, nc net.Conn) *conn {
	var id [6]byte
	rand.Read(id[:])
	c := &conn{
		id:      hex.EncodeToString(id[:]),
		srv:     s,
		raw:     nc,
		nc:      nc,
		remote:  nc.RemoteAddr(),
		addrKey: addrKey(nc.RemoteAddr()),
		log:     s.log.With("session", hex.EncodeToString(id[:]), "remote", nc.RemoteAddr().String()),
	}
	c.setupIO()
	return c
}

func (c *conn) setupIO() {
	c.r = &reader{
		br:      bufio.NewReaderSize(c.nc, 4096),
		maxLine: c.srv.cfg.MaxLineLength,
		maxArgs: 4,
	}
	c.w = bufio.NewWriterSize(c.nc, 4096)
}

// interrupt makes a blocked read return so the session can say BYE.
func (c *conn) interrupt() {
	c.stopping.Store(true)
	c.raw.SetReadDeadline(time.Now())
}

// errLogout ends the session after the response was sent.
var errLogout = errors.New("logout")

func (c *conn) serve(ctx context.Context) {
	c.ctx = logctx.With(ctx, "session", c.id)
	defer c.nc.Close()
	defer c.closeAccount()
	start := time.Now()
	c.log.Debug("connected")
	check := proxied.BalancerCheck(c.raw) // a balancer's health check: its end logged at debug unless it logged in
	defer func() {
		level := slog.LevelInfo
		if check && !c.loggedIn {
			level = slog.LevelDebug
		}
		c.log.Log(context.Background(), level, "session ended", "duration", time.Since(start).Round(time.Millisecond))
	}()
	c.writeCapabilities()
	c.ok("", "tern ManageSieve ready")
	if c.flush() != nil {
		return
	}
	for {
		timeout := c.srv.cfg.IdleTimeout
		if c.acct == nil {
			timeout = c.srv.cfg.PreAuthTimeout
		}
		if c.stopping.Load() {
			c.bye("", "Server shutting down")
			c.flush()
			return
		}
		c.setLiteralLimits()
		c.raw.SetReadDeadline(time.Now().Add(timeout))
		if c.stopping.Load() { // Shutdown came between the check above and the deadline
			c.raw.SetReadDeadline(time.Now())
		}
		cmd, err := c.r.readCommand()
		c.raw.SetReadDeadline(time.Time{})
		if err != nil {
			if !c.readFailed(err) {
				return
			}
			continue
		}
		err = c.run(cmd)
		if errors.Is(err, errLogout) {
			c.flush()
			return
		}
		if err != nil {
			c.log.Warn("command failed", "command", cmd.name, "err", err)
			return
		}
		if c.flush() != nil {
			return
		}
		if c.acct == nil && c.tooMany() {
			return
		}
	}
}

// setLiteralLimits bounds literals by the state: before login only what
// AUTHENTICATE needs, and a larger literal ends the session; after it
// scripts up to the store's limit, and larger ones are read and dropped
// so that the client gets NO (QUOTA/MAXSIZE).
func (c *conn) setLiteralLimits() {
	if c.acct == nil {
		c.r.maxLiteral, c.r.maxDiscard = maxPreAuthLiteral, 0
		return
	}
	c.r.maxLiteral, c.r.maxDiscard = store.SieveMaxScriptSize, maxDiscard
}

// readFailed answers a command the reader rejected and reports whether
// the session goes on.
func (c *conn) readFailed(err error) bool {
	var syn errSyntax
	var big errTooLarge
	switch {
	case errors.As(err, &syn):
		c.errors++
		c.no("", "Syntax error: "+syn.msg)
	case errors.As(err, &big):
		c.errors++
		c.no("QUOTA/MAXSIZE", fmt.Sprintf("Script too large (limit %d bytes)", store.SieveMaxScriptSize))
	case errors.Is(err, errFatal):
		c.bye("", "Line or literal too long")
		c.flush()
		return false
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.stopping.Load() {
			c.bye("", "Server shutting down")
		} else {
			c.bye("", "Idle timeout")
		}
		c.flush()
		return false
	default:
		if !errors.Is(err, io.EOF) {
			c.log.Debug("read failed", "err", err)
		}
		return false
	}
	return c.flush() == nil && !c.tooMany()
}

// tooMany ends a session not logged in that keeps failing or sends too
// many commands.
func (c *conn) tooMany() bool {
	if c.acct != nil {
		return false
	}
	if c.errors >= DefaultMaxErrors || c.commands >= maxPreAuthCommands {
		c.bye("", "Too many commands without logging in")
		c.flush()
		return true
	}
	return false
}

// run executes one command.
func (c *conn) run(cmd *command) error {
	h, ok := commands[cmd.name]
	if c.acct == nil {
		c.commands++
	}
	var err error
	switch {
	case !ok:
		err = no("", "Unknown command "+strconv.Quote(cmd.name))
	case h.auth && c.acct == nil:
		err = no("", "Authenticate first")
	case h.unauth && c.acct != nil:
		err = no("", "Already authenticated")
	case len(cmd.args) < h.min || len(cmd.args) > h.max:
		err = no("", "Wrong number of arguments for "+cmd.name)
	default:
		for i, a := range cmd.args {
			if i+1 == h.numberArg {
				if !a.atom || !isNumber(a.s) {
					err = no("", fmt.Sprintf("Argument %d of %s must be a number", i+1, cmd.name))
					break
				}
			} else if a.atom {
				err = no("", fmt.Sprintf("Argument %d of %s must be a string", i+1, cmd.name))
				break
			}
		}
		if err == nil {
			err = h.fn(c, cmd.args)
		}
	}
	var r *response
	if errors.As(err, &r) {
		if r.status == "NO" {
			c.errors++
		}
		c.respond(r.status, r.code, r.text)
		return nil
	}
	if err == nil {
		c.errors = 0
	}
	return err
}

func isNumber(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, b := range []byte(s) {
		if b < '0' || b > '9' {
			return false
		}
	}
	n, _ := strconv.ParseUint(s, 10, 64)
	return n <= 1<<32-1
}

// response is a NO or BYE a handler returns.
type response struct {
	status, code, text string
}

func (r *response) Error() string { return r.status + " " + r.text }

func no(code, text string) error { return &response{"NO", code, text} }

func (c *conn) ok(code, text string)  { c.respond("OK", code, text) }
func (c *conn) bye(code, text string) { c.respond("BYE", code, text) }
func (c *conn) no(code, text string)  { c.respond("NO", code, text) }

// respond writes "OK|NO|BYE [(code)] [text]".
func (c *conn) respond(status, code, text string) {
	c.w.WriteString(status)
	if code != "" {
		c.w.WriteString(" (")
		c.w.WriteString(code)
		c.w.WriteString(")")
	}
	if text != "" {
		c.w.WriteByte(' ')
		c.writeString(text)
	}
	c.w.WriteString("\r\n")
}

// writeString writes s as a quoted string, or as a literal when a quoted
// string cannot carry it (line breaks, NUL, long text).
func (c *conn) writeString(s string) {
	if len(s) > 1024 || strings.ContainsAny(s, "\r\n\x00") {
		fmt.Fprintf(c.w, "{%d}\r\n", len(s))
		c.w.WriteString(s)
		return
	}
	c.w.WriteString(quote(s))
}

// quote returns s as a quoted string; s must hold no CR, LF or NUL.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func (c *conn) flush() error {
	c.raw.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	err := c.w.Flush()
	c.raw.SetWriteDeadline(time.Time{})
	if err != nil {
		c.log.Debug("write failed", "err", err)
	}
	return err
}

// closeAccount closes the logged-in user's account and gives back the
// user's connection slot.
func (c *conn) closeAccount() {
	if c.acct != nil {
		c.acct.Close()
		c.acct = nil
		c.srv.releaseUserSlot(c.user)
	}
}

// authAllowed reports whether passwords may be sent on this connection.
func (c *conn) authAllowed() bool { return c.isTLS || c.srv.cfg.InsecureAuth }

// writeCapabilities writes the capability lines (without the final OK).
func (c *conn) writeCapabilities() {
	cfg := &c.srv.cfg
	line := func(name, value string) {
		c.w.WriteString(quote(name))
		if value != "" || name == "SASL" {
			c.w.WriteByte(' ')
			c.w.WriteString(quote(value))
		}
		c.w.WriteString("\r\n")
	}
	line("IMPLEMENTATION", cfg.Implementation)
	sasl := ""
	if c.acct == nil && c.authAllowed() {
		sasl = "PLAIN"
	}
	line("SASL", sasl)
	var ext []string
	if cfg.Extensions != nil {
		ext = cfg.Extensions()
	}
	line("SIEVE", strings.Join(ext, " "))
	if cfg.TLS != nil && !c.isTLS {
		line("STARTTLS", "")
	}
	if cfg.MaxRedirects > 0 {
		line("MAXREDIRECTS", strconv.Itoa(cfg.MaxRedirects))
	}
	if len(cfg.Notify) > 0 {
		line("NOTIFY", strings.Join(cfg.Notify, " "))
	}
	if c.acct != nil {
		line("OWNER", c.user)
	}
	line("UNAUTHENTICATE", "")
	line("VERSION", "1.0")
}
