package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"unicode/utf8"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/delivery"
	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

const sieveUsage = `Usage: tern sieve COMMAND USER ... [flags]

Manage a user's Sieve scripts (the same scripts ManageSieve clients see).

Commands:
  list USER              list the scripts; the active one is marked "(active)"
  put USER NAME FILE     store FILE ("-": standard input) as script NAME,
                         after checking it; an active script stays active
  get USER NAME          print script NAME
  activate USER NAME     make NAME the active script (checked again first)
  deactivate USER        leave no script active
  delete USER NAME       delete script NAME (not the active one)
  test SCRIPT MESSAGE    print the actions SCRIPT takes for the message in
                         the file MESSAGE (between the configured global
                         before/after scripts), without delivering anything

Run "tern sieve COMMAND -h" for flags.
`

// checkSieve validates a script: e.sieveCheck when set (tests), else
// defaultSieveCheck.
func (e *env) checkSieve(src []byte) error {
	if e.sieveCheck != nil {
		return e.sieveCheck(src)
	}
	return defaultSieveCheck(src)
}

// defaultSieveCheck is the script check of ManageSieve and tern sieve:
// the size limit, UTF-8 (RFC 5228 §2.2), then the interpreter's compiler
// (syntax, known extensions, argument checks).
func defaultSieveCheck(src []byte) error {
	if len(src) > store.SieveMaxScriptSize {
		return fmt.Errorf("script of %d bytes is over the limit of %d", len(src), store.SieveMaxScriptSize)
	}
	if !utf8.Valid(src) {
		return errors.New("script is not valid UTF-8")
	}
	_, err := sieve.Compile(src, sieve.Options{MaxScriptBytes: store.SieveMaxScriptSize})
	return err
}

// sieveExtensions lists the Sieve extensions ManageSieve advertises: the
// interpreter's.
func sieveExtensions() []string { return sieve.Supported() }

func (e *env) sieve(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, sieveUsage)
		return exitUsage
	}
	var c command
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, sieveUsage)
		return exitOK
	case "test":
		return e.sieveTest(args[1:])
	case "list":
		c = command{name: "tern sieve list", args: "USER", nargs: 1,
			about: "List USER's Sieve scripts with their sizes; the active one is marked."}
	case "put":
		c = command{name: "tern sieve put", args: "USER NAME FILE", nargs: 3,
			about: "Check FILE (\"-\": standard input) and store it as USER's script NAME,\nreplacing a script of that name (which stays active if it was)."}
	case "get":
		c = command{name: "tern sieve get", args: "USER NAME", nargs: 2,
			about: "Print USER's script NAME on standard output."}
	case "activate":
		c = command{name: "tern sieve activate", args: "USER NAME", nargs: 2,
			about: "Make NAME USER's active script (it is checked first); any other is\ndeactivated. Delivery runs the active script."}
	case "deactivate":
		c = command{name: "tern sieve deactivate", args: "USER", nargs: 1,
			about: "Leave USER with no active script."}
	case "delete":
		c = command{name: "tern sieve delete", args: "USER NAME", nargs: 2,
			about: "Delete USER's script NAME. The active script cannot be deleted;\ndeactivate it first."}
	default:
		fmt.Fprintf(e.stderr, "tern sieve: unknown command %q\n\n%s", args[0], sieveUsage)
		return exitUsage
	}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	pos, code, done := e.parse(c, fs, args[1:])
	if done {
		return code
	}
	var src []byte
	if args[0] == "put" {
		var err error
		if src, err = e.readScript(pos[2]); err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
			return exitError
		}
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	err := e.withStore(ctx, cfg, func(st store.Store) error {
		acct, err := st.Account(ctx, pos[0])
		if errors.Is(err, store.ErrNoSuchUser) {
			return fmt.Errorf("no user %q", pos[0])
		}
		if err != nil {
			return err
		}
		defer acct.Close()
		switch args[0] {
		case "list":
			return e.sieveList(ctx, acct)
		case "put":
			return e.sievePut(ctx, acct, pos[1], src)
		case "get":
			return e.sieveGet(ctx, acct, pos[1])
		case "activate":
			return e.sieveActivate(ctx, acct, pos[1])
		case "deactivate":
			return acct.SetActiveSieveScript(ctx, "")
		case "delete":
			return acct.DeleteSieveScript(ctx, pos[1])
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}

// readScript reads a script file, or standard input for "-", up to one
// byte over the size limit (the check reports the rest).
func (e *env) readScript(path string) ([]byte, error) {
	var r io.Reader = e.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read script: %w", err)
		}
		defer f.Close()
		r = f
	}
	src, err := io.ReadAll(io.LimitReader(r, store.SieveMaxScriptSize+1))
	if err != nil {
		return nil, fmt.Errorf("read script: %w", err)
	}
	return src, nil
}

func (e *env) sieveList(ctx context.Context, acct store.Account) error {
	list, err := acct.SieveScripts(ctx)
	if err != nil {
		return err
	}
	for _, s := range list {
		mark := ""
		if s.Active {
			mark = " (active)"
		}
		fmt.Fprintf(e.stdout, "%s\t%d%s\n", s.Name, s.Size, mark)
	}
	return nil
}

func (e *env) sievePut(ctx context.Context, acct store.Account, name string, src []byte) error {
	if err := store.CheckSieveScriptName(name); err != nil {
		return err
	}
	if err := e.checkSieve(src); err != nil {
		return fmt.Errorf("script %q not stored: %w", name, err)
	}
	return acct.PutSieveScript(ctx, name, src)
}

func (e *env) sieveGet(ctx context.Context, acct store.Account, name string) error {
	src, err := acct.SieveScript(ctx, name)
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(src)
	return err
}

func (e *env) sieveActivate(ctx context.Context, acct store.Account, name string) error {
	src, err := acct.SieveScript(ctx, name)
	if err != nil {
		return err
	}
	if err := e.checkSieve(src); err != nil {
		return fmt.Errorf("script %q not activated: %w", name, err)
	}
	return acct.SetActiveSieveScript(ctx, name)
}

// sieveTest is "tern sieve test SCRIPT MESSAGE": it compiles the script
// file and runs it on the message file with the envelope given by flags
// the way delivery does — between the global before and after scripts of
// the configuration (sieve.before, sieve.after; --no-global leaves them
// out) — and prints each script's actions, then the copies delivery
// would store. Nothing is stored or sent; mailboxexists finds no
// mailbox and duplicate never matches (there is no user state).
func (e *env) sieveTest(args []string) int {
	c := command{name: "tern sieve test", args: "SCRIPT MESSAGE", nargs: 2,
		about: "Print the actions SCRIPT takes for the message in the file MESSAGE\n(\"-\": standard input), without delivering or sending anything. The\nglobal before and after scripts of the configuration (sieve.before,\nsieve.after) run around SCRIPT as at delivery, unless --no-global."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	from := fs.String("envelope-from", "", "envelope sender (MAIL FROM); empty: <>")
	to := fs.String("envelope-to", "", "envelope recipient (RCPT TO), also the user's own address")
	noGlobal := fs.Bool("no-global", false, "run SCRIPT alone, without the configured before/after scripts")
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	script, err := os.ReadFile(pos[0])
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	var raw []byte
	if pos[1] == "-" {
		raw, err = io.ReadAll(io.LimitReader(e.stdin, 64<<20))
	} else {
		raw, err = os.ReadFile(pos[1])
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	s, err := sieve.Compile(script, sieve.Options{MaxScriptBytes: store.SieveMaxScriptSize})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %s: %v\n", c.name, pos[0], err)
		return exitError
	}
	var global *delivery.GlobalScripts
	if !*noGlobal {
		if global, err = loadGlobalSieve(cfg); err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
			return exitError
		}
	}
	env := sieve.Envelope{From: *from, To: *to}
	if *to != "" {
		env.UserAddresses = []string{*to}
	}
	d := delivery.New(nil, delivery.Options{Logger: slog.New(slog.DiscardHandler)})
	in := delivery.Incoming{Address: *to, From: *from, Body: raw}
	several := global.Runs()
	res := d.Simulate(context.Background(), global, s, in, env, func(r delivery.StageReport) {
		e.printStage(r, several)
	})
	if len(res.Actions) > 0 || several {
		fmt.Fprintln(e.stdout, "result:")
	}
	for _, d := range res.Deliveries() {
		fmt.Fprintf(e.stdout, "store in %q flags %v\n", d.Mailbox, d.Flags)
	}
	return exitOK
}

// printStage prints one script's outcome for tern sieve test: its
// actions and implicit keep, under a heading naming it when several
// scripts ran.
func (e *env) printStage(r delivery.StageReport, several bool) {
	if several {
		fmt.Fprintf(e.stdout, "%s:\n", r.Script)
	}
	if r.Err != nil {
		fmt.Fprintf(e.stdout, "runtime error: %v (delivery keeps the message)\n", r.Err)
	}
	for _, a := range r.Result.Actions {
		fmt.Fprintln(e.stdout, a.String())
	}
	if r.Result.ImplicitKeep {
		fmt.Fprintln(e.stdout, "implicit keep")
	}
	if r.Next {
		fmt.Fprintln(e.stdout, "(keep in effect: the next script decides)")
	}
}
