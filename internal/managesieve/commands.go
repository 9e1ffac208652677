package managesieve

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/store"
)

// handler is one command: its argument count, the state it needs, and
// the function. Arguments are strings, except argument numberArg (1-based)
// which is a number.
type handler struct {
	min, max  int
	numberArg int
	auth      bool // only when logged in
	unauth    bool // only before login
	fn        func(c *conn, args []arg) error
}

var commands map[string]handler

func init() {
	commands = map[string]handler{
		"CAPABILITY":     {fn: cmdCapability},
		"NOOP":           {max: 1, fn: cmdNoop},
		"LOGOUT":         {fn: cmdLogout},
		"STARTTLS":       {unauth: true, fn: cmdStartTLS},
		"AUTHENTICATE":   {min: 1, max: 2, unauth: true, fn: cmdAuthenticate},
		"UNAUTHENTICATE": {auth: true, fn: cmdUnauthenticate},
		"HAVESPACE":      {min: 2, max: 2, numberArg: 2, auth: true, fn: cmdHaveSpace},
		"PUTSCRIPT":      {min: 2, max: 2, auth: true, fn: cmdPutScript},
		"CHECKSCRIPT":    {min: 1, max: 1, auth: true, fn: cmdCheckScript},
		"LISTSCRIPTS":    {auth: true, fn: cmdListScripts},
		"SETACTIVE":      {min: 1, max: 1, auth: true, fn: cmdSetActive},
		"GETSCRIPT":      {min: 1, max: 1, auth: true, fn: cmdGetScript},
		"DELETESCRIPT":   {min: 1, max: 1, auth: true, fn: cmdDeleteScript},
		"RENAMESCRIPT":   {min: 2, max: 2, auth: true, fn: cmdRenameScript},
	}
}

func cmdCapability(c *conn, _ []arg) error {
	c.writeCapabilities()
	c.ok("", "Capability completed")
	return nil
}

func cmdNoop(c *conn, args []arg) error {
	if len(args) == 1 {
		c.w.WriteString("OK (TAG ")
		c.writeString(args[0].s)
		c.w.WriteString(") \"Done\"\r\n")
		return nil
	}
	c.ok("", "Done")
	return nil
}

func cmdLogout(c *conn, _ []arg) error {
	c.ok("", "Logout completed")
	return errLogout
}

func cmdStartTLS(c *conn, _ []arg) error {
	if c.isTLS {
		return no("", "TLS is already active")
	}
	if c.srv.cfg.TLS == nil {
		return no("", "STARTTLS is not available")
	}
	c.ok("", "Begin TLS negotiation now")
	if err := c.flush(); err != nil {
		return err
	}
	// Anything pipelined after STARTTLS came in plaintext and must not be
	// run after the handshake (CVE-2011-0411).
	if n := c.r.br.Buffered(); n > 0 {
		c.log.Warn("plaintext data pipelined after STARTTLS; closing", "bytes", n)
		return errLogout
	}
	tc := tls.Server(c.raw, c.srv.cfg.TLS())
	c.raw.SetDeadline(time.Now().Add(c.srv.cfg.PreAuthTimeout))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.log.Debug("starttls handshake failed", "err", err)
		return errLogout
	}
	c.raw.SetDeadline(time.Time{})
	c.nc = tc
	c.isTLS = true
	c.setupIO()
	// RFC 5804 §2.2: the capabilities again, as they may have changed.
	c.writeCapabilities()
	c.ok("", "TLS negotiation successful")
	return nil
}

func cmdAuthenticate(c *conn, args []arg) error {
	if mech := upper(args[0].s); mech != "PLAIN" {
		return no("", "Unsupported authentication mechanism")
	}
	if !c.authAllowed() {
		return no("ENCRYPT-NEEDED", "Use STARTTLS before authenticating")
	}
	var b64 string
	if len(args) == 2 {
		b64 = args[1].s
	} else {
		// An empty challenge; the client answers with a string.
		c.w.WriteString("\"\"\r\n")
		if err := c.flush(); err != nil {
			return err
		}
		resp, err := c.readSASLResponse()
		if err != nil {
			return err
		}
		b64 = resp
	}
	if b64 == "*" {
		return no("", "Authentication aborted")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return no("", "Invalid base64 in SASL response")
	}
	username, password, err := auth.ParsePlain(raw)
	if errors.Is(err, auth.ErrAuthzid) {
		return no("", "Authorization identity not allowed")
	}
	if err != nil {
		return no("", "Malformed SASL PLAIN response")
	}
	return c.login(username, password)
}

// readSASLResponse reads the client's answer to a SASL challenge: one
// string (quoted or literal) on a line of its own.
func (c *conn) readSASLResponse() (string, error) {
	c.r.n = 0
	c.raw.SetReadDeadline(time.Now().Add(c.srv.cfg.PreAuthTimeout))
	defer c.raw.SetReadDeadline(time.Time{})
	a, err := c.r.readArg()
	if err == nil {
		var b byte
		if b, err = c.r.readByte(); err == nil && b == '\r' {
			b, err = c.r.readByte()
		}
		if err == nil && b != '\n' {
			err = c.r.fail("expected the end of the SASL response")
		}
	}
	var syn errSyntax
	if errors.As(err, &syn) {
		return "", no("", "Syntax error in SASL response: "+syn.msg)
	}
	if err != nil {
		return "", fmt.Errorf("read SASL response: %w", err)
	}
	if a.atom {
		return "", no("", "SASL response must be a string")
	}
	return a.s, nil
}

// login checks the password through the shared authenticator (its
// throttling counts IMAP and ManageSieve failures together) and opens the
// account.
func (c *conn) login(username, password string) error {
	if c.srv.cfg.Auth == nil {
		return no("", "Authentication is not configured")
	}
	if err := c.srv.cfg.Auth.Authenticate(c.ctx, c.remote, username, password); err != nil {
		var th interface{ Throttled() bool }
		if errors.As(err, &th) && th.Throttled() {
			return no("TRYLATER", "Too many failed attempts; try again later")
		}
		if store.Unavailable(err) {
			// Not "authentication failed": a client would ask its user
			// for another password. The authenticator logged it.
			return no("TRYLATER", "Mail storage is unavailable; try again later")
		}
		if !errors.Is(err, auth.ErrInvalidCredentials) {
			c.log.Warn("authentication error", "err", err)
		}
		return no("", "Authentication failed")
	}
	if !c.srv.takeUserSlot(username) {
		c.log.Warn("login refused: too many connections for the user", "user", username, "limit", c.srv.cfg.MaxUserConns)
		return no("TRYLATER", "Too many ManageSieve connections for this user; try again later")
	}
	acct, err := c.srv.store.Account(c.ctx, username)
	if err != nil {
		c.srv.releaseUserSlot(username)
		c.log.Error("open account", "user", username, "err", err)
		return no("TRYLATER", "Cannot open your account now")
	}
	c.acct = acct
	c.user = username
	c.loggedIn = true
	c.errors, c.commands = 0, 0
	c.log = c.log.With("user", username)
	c.log.Info("logged in")
	c.ok("", "Logged in")
	return nil
}

func cmdUnauthenticate(c *conn, _ []arg) error {
	c.closeAccount()
	c.log.Info("unauthenticated", "user", c.user)
	c.user = ""
	c.ok("", "Back to the not authenticated state")
	return nil
}

// storeError maps a store error to the ManageSieve answer; other errors
// are logged and answered NO (TRYLATER).
func (c *conn) storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrNoSuchScript):
		return no("NONEXISTENT", "There is no script by that name")
	case errors.Is(err, store.ErrScriptActive):
		return no("ACTIVE", "The script is active; deactivate it first")
	case errors.Is(err, store.ErrScriptExists):
		return no("ALREADYEXISTS", "A script by that name already exists")
	case errors.Is(err, store.ErrInvalidScriptName):
		return no("", "Invalid script name")
	case errors.Is(err, store.ErrTooManyScripts):
		return no("QUOTA/MAXSCRIPTS", fmt.Sprintf("Too many scripts (limit %d)", store.SieveMaxScripts))
	case errors.Is(err, store.ErrScriptTooLarge):
		return no("QUOTA/MAXSIZE", fmt.Sprintf("Script too large (limit %d bytes)", store.SieveMaxScriptSize))
	}
	c.log.Error("sieve script storage", "err", err)
	return no("TRYLATER", "Storage error; try again later")
}

// check validates a script with Config.Check. It returns the warning
// text of an accepted script, or the NO answer of a rejected one.
func (c *conn) check(src []byte) (warnings string, err error) {
	if len(src) > store.SieveMaxScriptSize {
		return "", c.storeError(store.ErrScriptTooLarge)
	}
	if c.srv.cfg.Check == nil {
		return "", nil
	}
	cerr := c.srv.cfg.Check(src)
	if cerr == nil {
		return "", nil
	}
	var w Warning
	if errors.As(cerr, &w) && w.Warning() {
		return cerr.Error(), nil
	}
	return "", no("", cerr.Error())
}

func cmdHaveSpace(c *conn, args []arg) error {
	name := args[0].s
	size, _ := strconv.ParseInt(args[1].s, 10, 64)
	if err := store.CheckSieveScriptName(name); err != nil {
		return c.storeError(err)
	}
	if size > store.SieveMaxScriptSize {
		return c.storeError(store.ErrScriptTooLarge)
	}
	list, err := c.acct.SieveScripts(c.ctx)
	if err != nil {
		return c.storeError(err)
	}
	if len(list) >= store.SieveMaxScripts {
		exists := false
		for _, s := range list {
			exists = exists || s.Name == name
		}
		if !exists {
			return c.storeError(store.ErrTooManyScripts)
		}
	}
	c.ok("", "Putscript would succeed")
	return nil
}

func cmdPutScript(c *conn, args []arg) error {
	name, src := args[0].s, []byte(args[1].s)
	if err := store.CheckSieveScriptName(name); err != nil {
		return c.storeError(err)
	}
	warnings, err := c.check(src)
	if err != nil {
		return err
	}
	if err := c.acct.PutSieveScript(c.ctx, name, src); err != nil {
		return c.storeError(err)
	}
	c.scriptsChanged()
	c.log.Info("script stored", "script", name, "size", len(src))
	if warnings != "" {
		c.ok("WARNINGS", warnings)
		return nil
	}
	c.ok("", "Script stored")
	return nil
}

func cmdCheckScript(c *conn, args []arg) error {
	warnings, err := c.check([]byte(args[0].s))
	if err != nil {
		return err
	}
	if warnings != "" {
		c.ok("WARNINGS", warnings)
		return nil
	}
	c.ok("", "Script is valid")
	return nil
}

func cmdListScripts(c *conn, _ []arg) error {
	list, err := c.acct.SieveScripts(c.ctx)
	if err != nil {
		return c.storeError(err)
	}
	for _, s := range list {
		c.w.WriteString(quote(s.Name))
		if s.Active {
			c.w.WriteString(" ACTIVE")
		}
		c.w.WriteString("\r\n")
	}
	c.ok("", "Listscripts completed")
	return nil
}

func cmdSetActive(c *conn, args []arg) error {
	name := args[0].s
	if name != "" {
		// A script stored under an older checker (or extension set)
		// must still compile to become active.
		src, err := c.acct.SieveScript(c.ctx, name)
		if err != nil {
			return c.storeError(err)
		}
		if _, err := c.check(src); err != nil {
			return err
		}
	}
	if err := c.acct.SetActiveSieveScript(c.ctx, name); err != nil {
		return c.storeError(err)
	}
	c.scriptsChanged()
	c.log.Info("script activated", "script", name)
	c.ok("", "Active script set")
	return nil
}

func cmdGetScript(c *conn, args []arg) error {
	src, err := c.acct.SieveScript(c.ctx, args[0].s)
	if err != nil {
		return c.storeError(err)
	}
	fmt.Fprintf(c.w, "{%d}\r\n", len(src))
	c.w.Write(src)
	c.w.WriteString("\r\n")
	c.ok("", "Getscript completed")
	return nil
}

func cmdDeleteScript(c *conn, args []arg) error {
	if err := c.acct.DeleteSieveScript(c.ctx, args[0].s); err != nil {
		return c.storeError(err)
	}
	c.scriptsChanged()
	c.log.Info("script deleted", "script", args[0].s)
	c.ok("", "Script deleted")
	return nil
}

func cmdRenameScript(c *conn, args []arg) error {
	if err := c.acct.RenameSieveScript(c.ctx, args[0].s, args[1].s); err != nil {
		return c.storeError(err)
	}
	c.scriptsChanged()
	c.log.Info("script renamed", "script", args[0].s, "to", args[1].s)
	c.ok("", "Script renamed")
	return nil
}

// scriptsChanged calls Config.ScriptsChanged after a script command
// changed the user's scripts.
func (c *conn) scriptsChanged() {
	if f := c.srv.cfg.ScriptsChanged; f != nil {
		f(c.acct.User())
	}
}
