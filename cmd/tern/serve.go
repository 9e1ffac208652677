package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/delivery"
	"github.com/tern-imap/tern/internal/index"
	"github.com/tern-imap/tern/internal/managesieve"
	"github.com/tern-imap/tern/internal/notify"
	"github.com/tern-imap/tern/internal/proxied"
	"github.com/tern-imap/tern/internal/server"
	"github.com/tern-imap/tern/internal/tlsutil"
)

func (e *env) serve(args []string) int {
	c := command{name: "tern serve",
		about: "Run the IMAP server. Settings come from the defaults, then the --config\nfile, then flags given on the command line. An empty address disables a\nlistener. SIGHUP reloads the TLS certificate, the global Sieve scripts\n(sieve.before, sieve.after, sieve.global_dir) and the configuration (log\nlevel; other changes need a restart); SIGINT/SIGTERM shut down cleanly."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, true)
	args, stopProfile, err := takeCPUProfileFlag(args) // hidden, for benchmarks
	if err != nil {
		fmt.Fprintf(e.stderr, "tern serve: %v\n", err)
		return exitUsage
	}
	defer stopProfile()
	if _, code, done := e.parse(c, fs, args); done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	if err := e.runServer(flags, cfg); err != nil {
		fmt.Fprintf(e.stderr, "tern serve: %v\n", err)
		return exitError
	}
	return exitOK
}

func newLogger(w io.Writer, cfg *config.Config, level *slog.LevelVar) *slog.Logger {
	level.Set(cfg.Log.SlogLevel())
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func authPolicy(cfg *config.Config) auth.Policy {
	free := cfg.Auth.FreeFailures
	if free == 0 {
		free = -1 // auth.Policy: negative means none free
	}
	return auth.Policy{
		FreeFailures:    free,
		BaseDelay:       cfg.Auth.FailureDelay,
		MaxDelay:        cfg.Auth.MaxFailureDelay,
		Window:          cfg.Auth.FailureWindow,
		MaxUserFailures: cfg.Auth.MaxUserFailures,
		MaxIPFailures:   cfg.Auth.MaxIPFailures,
	}
}

// tlsState holds the current certificate Reloader; SIGHUP may replace it
// when the configured paths change.
type tlsState struct {
	r atomic.Pointer[tlsutil.Reloader]
}

func (t *tlsState) config() *tls.Config { return t.r.Load().TLSConfig() }

func (e *env) loadTLS(cfg *config.Config, log *slog.Logger) (*tlsutil.Reloader, error) {
	certPath, keyPath, created, err := certPaths(cfg)
	if err != nil {
		return nil, err
	}
	r, err := tlsutil.NewReloader(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	if created {
		fp, err := tlsutil.Fingerprints(certPath)
		if err != nil {
			return nil, err
		}
		log.Info("generated self-signed certificate", "cert", certPath, "sha256", fp.SHA256)
	}
	return r, nil
}

type listener struct {
	proto    string
	ln       net.Listener
	implicit bool
}

func (e *env) runServer(flags *config.Flags, cfg *config.Config) error {
	var level slog.LevelVar
	log := newLogger(e.stderr, cfg, &level)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	globalSieve, err := loadGlobalSieve(cfg)
	if err != nil {
		return err
	}
	if !globalSieve.Empty() {
		before, after, includes := globalSieve.Counts()
		log.Info("global sieve scripts", "before", before, "after", after, "includable", includes, "imapsieve_rules", globalSieve.IMAPRules())
	}
	var tlsSt tlsState
	r, err := e.loadTLS(cfg, log)
	if err != nil {
		return err
	}
	tlsSt.r.Store(r)

	ctx := context.Background()
	hub := notify.New()
	// The mailbox index hears every change first, then tells the hub.
	ix := index.New(hub, index.Options{MemoryBudget: cfg.Index.MemoryMB << 20, Logger: log})
	backend, err := openStoreIndexing(ctx, cfg, ix, log, cfg.Index.Text, useServer)
	if err != nil {
		return err
	}
	defer backend.Close()
	adm, err := openAdmin(cfg, ix, log)
	if err != nil {
		return err
	}
	defer adm.shutdown(ctx) // on early returns; a no-op after the shutdown below
	// The store the server sees: the index in front of the backend, timed.
	st := adm.Metrics().WrapStore(ix.Wrap(backend))
	if nl := serveNotifySocket(cfg, ix, log); nl != nil {
		defer nl.Close()
	}

	authn, err := auth.New(st, auth.Options{Policy: authPolicy(cfg), Logger: log})
	if err != nil {
		return err
	}
	sieveHook := &imapSieveHook{}
	srv := server.New(server.Config{
		IMAPSieve:      imapSieve(cfg, sieveHook),
		IMAPSieveURL:   cfg.Sieve.IMAPSieveURL,
		TLS:            tlsSt.config,
		InsecureAuth:   cfg.Auth.InsecureAuth,
		Admins:         cfg.Auth.Admins,
		SubmitUsers:    cfg.Auth.SubmitUsers,
		MaxLineLength:  cfg.Limits.MaxLineLength,
		MaxLiteralSize: cfg.Limits.MaxLiteralSize,
		MaxConns:       cfg.Limits.MaxConns,

		MaxPreAuthConnsPerIP: cfg.Limits.MaxPreAuthConnsPerIP,
		ConnRatePerIP:        cfg.Limits.ConnRatePerIP,
		ConnBurstPerIP:       cfg.Limits.ConnBurstPerIP,
		MaxUserIPConns:       cfg.Limits.MaxUserIPConns,
		MaxUserConns:         cfg.Limits.MaxUserConns,
		Auth:                 authn,
		Notify:               hub,
		Logger:               log,
		Metrics:              adm.Metrics(),
	}, st)

	// The load balancers whose PROXY headers give client addresses.
	balancers, err := proxied.ParseNetworks(cfg.ProxyProtocol.TrustedNetworks)
	if err != nil {
		return fmt.Errorf("proxy_protocol.trusted_networks: %w", err)
	}
	var lns []listener
	closeAll := func() {
		for _, l := range lns {
			l.ln.Close()
		}
	}
	for _, l := range []struct {
		proto, addr string
		implicit    bool
	}{{"imap", cfg.Listen.IMAP, false}, {"imaps", cfg.Listen.IMAPS, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen %s: %w", l.proto, err)
		}
		lns = append(lns, listener{l.proto, proxied.Wrap(ln, balancers, log), l.implicit})
	}
	if cfg.Auth.InsecureAuth {
		log.Warn("insecure_auth is on: passwords are accepted on connections without TLS")
	}
	ac, err := startAutoconfig(cfg, tlsSt.config, log)
	if err != nil {
		closeAll()
		return err
	}
	outq, err := openOutbound(cfg, log)
	if err != nil {
		closeAll()
		ac.close()
		return err
	}
	defer outq.close(ctx) // on early returns; a no-op after the shutdown below
	deliverer := newDeliverer(cfg, st, globalSieve, outq.sender(), log)
	sieveHook.d = deliverer
	lmtp, lmtpLn, err := startLMTP(cfg, deliverer, adm.Metrics())
	if err != nil {
		closeAll()
		ac.close()
		return err
	}
	sieveSrv, sieveLn, err := e.startManageSieve(cfg, st, tlsSt.config, authn, sieveHook.Changed, log)
	if err != nil {
		closeAll()
		ac.close()
		if lmtpLn != nil {
			lmtpLn.Close()
		}
		return err
	}
	checkIMAPSieveURL(cfg, sieveLn, log)
	if lmtpLn != nil {
		lmtpLn = proxied.Wrap(lmtpLn, balancers, log)
	}
	if sieveLn != nil {
		sieveLn = proxied.Wrap(sieveLn, balancers, log)
	}
	if len(lns) == 0 && lmtp == nil {
		ac.close()
		if sieveLn != nil {
			sieveLn.Close()
		}
		return errors.New("no listener configured (listen.imap, listen.imaps and listen.lmtp are empty)")
	}

	serveErr := make(chan error, len(lns)+3)
	var wg sync.WaitGroup
	for _, l := range lns {
		log.Info("listening", "proto", l.proto, "addr", l.ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l.ln, l.implicit); err != nil && !errors.Is(err, server.ErrServerClosed) {
				serveErr <- fmt.Errorf("serve %s: %w", l.proto, err)
			}
		}()
	}
	if lmtp != nil {
		log.Info("listening", "proto", "lmtp", "addr", lmtpLn.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lmtp.Serve(lmtpLn); err != nil {
				serveErr <- fmt.Errorf("serve lmtp: %w", err)
			}
		}()
	}
	if sieveSrv != nil {
		log.Info("listening", "proto", "managesieve", "addr", sieveLn.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sieveSrv.Serve(sieveLn); err != nil && !errors.Is(err, managesieve.ErrServerClosed) {
				serveErr <- fmt.Errorf("serve managesieve: %w", err)
			}
		}()
	}
	ac.run(&wg, serveErr, log)
	if adm != nil {
		log.Info("listening", "proto", "admin", "addr", adm.addr())
		adm.serve(readyChecks(backend, srv, len(lns)), log, serveErr)
	}
	if e.listening != nil {
		if ac != nil {
			e.listening("autoconfig", ac.ln.Addr().String())
		}
		for _, l := range lns {
			e.listening(l.proto, l.ln.Addr().String())
		}
		if lmtp != nil {
			e.listening("lmtp", lmtpLn.Addr().String())
		}
		if sieveSrv != nil {
			e.listening("managesieve", sieveLn.Addr().String())
		}
		if adm != nil {
			e.listening("admin", adm.addr())
		}
	}

	var runErr error
loop:
	for {
		select {
		case err := <-serveErr:
			log.Error("listener failed; shutting down", "err", err)
			runErr = err
			break loop
		case sig := <-e.signals:
			if sig == syscall.SIGHUP {
				e.reload(flags, cfg, &tlsSt, &level, deliverer, log)
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			break loop
		}
	}

	sctx, cancel := context.WithTimeout(ctx, cfg.ShutdownTimeout)
	defer cancel()
	go func() { // a second SIGINT/SIGTERM cuts the wait short
		for {
			select {
			case sig := <-e.signals:
				if sig != syscall.SIGHUP {
					log.Warn("second signal; closing connections now", "signal", sig.String())
					cancel()
					return
				}
			case <-sctx.Done():
				return
			}
		}
	}()
	if lmtp != nil {
		go func() { // stop LMTP alongside IMAP; a delivery in progress finishes
			if err := lmtp.Shutdown(sctx); err != nil {
				lmtp.Close()
			}
		}()
	}
	go ac.shutdown(sctx)
	sieveDone := make(chan struct{})
	go func() { // ManageSieve sessions get BYE now; waited for before the store closes
		defer close(sieveDone)
		if sieveSrv != nil {
			if err := sieveSrv.Shutdown(sctx); err != nil {
				log.Warn("managesieve shutdown did not finish in time; connections closed", "err", err)
			}
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in time; connections closed", "timeout", cfg.ShutdownTimeout, "err", err)
	}
	wg.Wait()
	<-sieveDone
	outq.close(sctx)   // stops sending; mail queued later still goes to disk, sent at the next start
	adm.shutdown(sctx) // after the IMAP sessions: /readyz says 503 while they drain
	if err := st.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return runErr
}

// reload handles SIGHUP: it re-reads the configuration, the global
// Sieve scripts and the TLS certificate. The log level and the global
// scripts (sieve.before, sieve.after, sieve.global_dir) take effect at
// once; settings the running server cannot change are reported as
// needing a restart.
func (e *env) reload(flags *config.Flags, cur *config.Config, tlsSt *tlsState, level *slog.LevelVar, d *delivery.Deliverer, log *slog.Logger) {
	log.Info("reloading configuration and certificate")
	next, err := flags.Load()
	if err != nil {
		log.Error("reload: invalid configuration; keeping the current one", "err", err)
		next = cur
	} else {
		level.Set(next.Log.SlogLevel())
		if restartNeeded(cur, next) {
			log.Warn("reload: some changed settings take effect only after a restart")
		}
	}
	reloadGlobalSieve(next, d, log)
	if next.TLS != cur.TLS {
		r, err := e.loadTLS(next, log)
		if err != nil {
			log.Error("reload: certificate not loaded; keeping the current one", "err", err)
			return
		}
		tlsSt.r.Store(r)
		log.Info("certificate loaded", "cert", next.TLS.Cert)
		cur.TLS = next.TLS
		return
	}
	if err := tlsSt.r.Load().Reload(); err != nil {
		log.Error("reload: certificate not reloaded; keeping the current one", "err", err)
		return
	}
	certPath, _ := tlsSt.r.Load().Paths()
	log.Info("certificate reloaded", "cert", certPath)
}

func restartNeeded(a, b *config.Config) bool {
	return a.DataDir != b.DataDir || a.Store != b.Store || a.Listen != b.Listen || !reflect.DeepEqual(a.Auth, b.Auth) ||
		a.Limits != b.Limits || a.Log.Format != b.Log.Format || a.ShutdownTimeout != b.ShutdownTimeout ||
		a.Autoconfig != b.Autoconfig || !reflect.DeepEqual(withoutGlobalScripts(a.Sieve), withoutGlobalScripts(b.Sieve)) ||
		!reflect.DeepEqual(a.ProxyProtocol, b.ProxyProtocol)
}

// withoutGlobalScripts is s without the settings SIGHUP reloads.
func withoutGlobalScripts(s config.Sieve) config.Sieve {
	s.Before, s.After, s.GlobalDir, s.IMAPSieveMailboxes = nil, nil, "", nil
	return s
}
