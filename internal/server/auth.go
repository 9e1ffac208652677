package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/store"
)

func cmdStartTLS(ctx context.Context, c *conn, cmd *imap.Command) error {
	if c.isTLS {
		return bad("", "TLS is already active")
	}
	if c.srv.cfg.TLS == nil {
		return no("", "STARTTLS is not available")
	}
	c.tagged("OK", "", "Begin TLS negotiation now")
	if err := c.flush(); err != nil {
		return err
	}
	// Anything the client pipelined after STARTTLS arrived in plaintext and
	// must not be executed after the handshake (CVE-2011-0411).
	if n := c.br.Buffered(); n > 0 || (c.prefix != nil && len(c.prefix.pre) > 0) {
		c.log.Warn("plaintext data pipelined after STARTTLS; closing", "bytes", n)
		return errClose
	}
	tc := tls.Server(c.nc, c.srv.cfg.TLS())
	c.nc.SetDeadline(time.Now().Add(c.srv.cfg.PreAuthTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("starttls handshake failed", "err", err)
		return errClose
	}
	c.nc.SetDeadline(time.Time{})
	c.nc = tc
	c.isTLS = true
	c.srv.obs.listener(c.implicitTLS).StartedTLS()
	c.setupIO()
	return errOKSent
}

func cmdLogin(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.LoginArgs)
	if !c.authAllowed() {
		return no("PRIVACYREQUIRED", "Use STARTTLS before logging in")
	}
	return c.login(ctx, args.Username, args.Password)
}

func (c *conn) login(ctx context.Context, username, password string) error {
	m := c.srv.cfg.Metrics
	if c.srv.cfg.Auth == nil {
		m.Login(metrics.LoginError)
		return no("UNAVAILABLE", "Authentication is not configured")
	}
	if err := c.srv.cfg.Auth.Authenticate(ctx, c.remote, username, password); err != nil {
		var th Throttled
		if errors.As(err, &th) && th.Throttled() {
			m.Login(metrics.LoginLockout)
			return no("UNAVAILABLE", "Too many failed attempts; try again later")
		}
		if store.Unavailable(err) {
			// Not "invalid credentials": a client would ask its user
			// for another password. The authenticator logged it.
			m.Login(metrics.LoginError)
			return no("UNAVAILABLE", "Mail storage is unavailable; try again later")
		}
		if !errors.Is(err, auth.ErrInvalidCredentials) {
			m.Login(metrics.LoginError)
			c.log.Warn("authentication error", "err", err)
		} else {
			m.Login(metrics.LoginFailure)
		}
		return no("AUTHENTICATIONFAILED", "Invalid credentials")
	}
	if msg := c.srv.loginConn(c, username); msg != "" {
		m.Login(metrics.LoginLimit)
		c.log.Warn("login refused: connection limit", "user", username, "reason", msg)
		return no("LIMIT", msg)
	}
	acct, err := c.srv.store.Account(ctx, username)
	if err != nil {
		m.Login(metrics.LoginError)
		c.srv.unloginConn(c)
		return fmt.Errorf("open account %q: %w", username, err)
	}
	m.Login(metrics.LoginSuccess)
	c.acct = acct
	c.user = username
	c.loggedIn = true
	c.setState(stateAuth)
	c.log = c.log.With("user", username)
	c.log.Info("logged in")
	return c.okCode(ctx, "CAPABILITY "+c.capabilities(), "Logged in")
}

func cmdAuthenticate(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.AuthenticateArgs)
	if args.Mechanism != "PLAIN" {
		return no("CANNOT", "Unsupported authentication mechanism")
	}
	if !c.authAllowed() {
		return no("PRIVACYREQUIRED", "Use STARTTLS before authenticating")
	}
	resp := args.InitialResponse
	if !args.HasInitialResponse {
		c.w.WriteString("+ \r\n")
		if err := c.flush(); err != nil {
			return err
		}
		c.endBodyBuffer()
		line, err := c.r.ReadLine()
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if string(line) == "*" {
			return bad("", "AUTHENTICATE cancelled")
		}
		resp, err = base64.StdEncoding.DecodeString(string(line))
		if err != nil {
			return bad("", "Invalid base64 in SASL response")
		}
	}
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return bad("", "Malformed SASL PLAIN response")
	}
	authz, authc, pass := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != authc {
		return no("AUTHORIZATIONFAILED", "Authorization identity not allowed")
	}
	return c.login(ctx, authc, pass)
}

func cmdEnable(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.EnableArgs)
	var enabled []string
	for _, name := range args.Capabilities {
		switch strings.ToUpper(name) {
		case "IMAP4REV2":
			if !c.rev2 {
				c.rev2 = true
				c.utf8 = true
				enabled = append(enabled, "IMAP4rev2")
			}
		case "CONDSTORE":
			if !c.condstore {
				c.enableCondstore()
				enabled = append(enabled, "CONDSTORE")
			}
		case "QRESYNC":
			if !c.qresync {
				c.qresync = true
				c.enableCondstore()
				enabled = append(enabled, "QRESYNC")
			}
		case "UIDONLY": // RFC 9586, uidonly.go
			if !c.uidOnly {
				c.uidOnly = true
				enabled = append(enabled, "UIDONLY")
			}
		case "UTF8=ACCEPT":
			if !c.utf8 {
				c.utf8 = true
				enabled = append(enabled, "UTF8=ACCEPT")
			}
		}
	}
	c.w.UTF8 = c.utf8
	c.w.WriteString("* ENABLED")
	for _, e := range enabled {
		c.w.SP()
		c.w.WriteString(e)
	}
	c.w.CRLF()
	return nil
}

func cmdID(ctx context.Context, c *conn, cmd *imap.Command) error {
	args := cmd.Args.(*imap.IDArgs)
	if len(args.Params) > 0 {
		keys := make([]string, 0, len(args.Params))
		for k := range args.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]any, 0, 2*len(keys))
		for _, k := range keys {
			if v := args.Params[k]; v != nil {
				attrs = append(attrs, k, *v)
			}
		}
		c.log.Info("client id", attrs...)
	}
	c.w.WriteString(`* ID ("name" "tern" "vendor" "tern")`)
	c.w.CRLF()
	return nil
}
