// Command tern is an IMAP server.
//
// Usage:
//
//	tern serve [flags]           run the server
//	tern user add|passwd|del NAME
//	tern user list
//	tern user quota NAME [--storage SIZE] [--messages N]
//	tern shared create|delete|list|share|acl ...
//	tern sieve list|put|get|activate|deactivate|delete USER ...
//	tern deliver --user NAME [--mailbox BOX]   (message on stdin)
//	tern import NAME PATH [--mailbox BOX]
//	tern export NAME DIR [--format maildir|mbox]
//	tern cert                    show (and create) the TLS certificate
//	tern check [--repair] [--compact]   check the store (and compact mail.db)
//	tern index [--rebuild] USER|--all   index mail for SEARCH now
//	tern backup DEST             snapshot the data directory (server may run)
//	tern restore SRC             restore a backup as a new data directory
//	tern store copy --from sqlite:DIR|postgres://... --to postgres://...
//	tern version
//
// Run "tern COMMAND -h" for the flags of a command.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/tern-imap/tern/internal/config"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	raiseProcs(os.Getenv("GOMAXPROCS"))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, signals: sigs}
	os.Exit(e.run(os.Args[1:]))
}

// env is what a command talks to; tests provide their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// signals delivers SIGINT/SIGTERM/SIGHUP to serve. Nil: never.
	signals <-chan os.Signal
	// listening, if set, is called by serve with proto and address of each
	// listener once all are open (tests use it to find ports).
	listening func(proto, addr string)
	// sieveCheck, if set, replaces defaultSieveCheck (tests pass a
	// checker that rejects scripts).
	sieveCheck func(src []byte) error
}

// run executes the command line args (without the program name) and
// returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return (&env{stdin: stdin, stdout: stdout, stderr: stderr}).run(args)
}

const mainUsage = `tern is an IMAP server.

Usage:
  tern serve [flags]             run the IMAP server
  tern user add NAME [flags]     create a user (password from stdin or prompt)
  tern user passwd NAME [flags]  change a user's password
  tern user del NAME [flags]     delete a user and all their mail
  tern user list [flags]         list users
  tern user quota NAME [flags]   show or set a user's quota (--storage 2G --messages 100000)
  tern shared COMMAND ...        create, delete, list, share shared folders ("Shared Folders/NAME")
  tern sieve COMMAND USER ...    list, put, get, activate, deactivate, delete Sieve scripts
  tern deliver --user NAME       deliver one message from stdin (local delivery agent)
  tern import NAME PATH [flags]  import a Maildir or mbox (file or tree) for a user
  tern export NAME DIR [flags]   export a user's mail as Maildir or mbox
  tern cert [flags]              print the TLS certificate path and fingerprints
  tern check [--repair] [--compact] [flags]  check (and repair) the mail store's consistency; compact mail.db files
  tern index [--rebuild] USER|--all  index mail for SEARCH now (with a progress bar)
  tern backup DEST [flags]       snapshot the data directory into DEST (server may run)
  tern blobs-gc [--sweep]        delete unused bodies from a postgres store's blob store
  tern restore SRC [flags]       restore a backup as a new, empty data directory
  tern store copy --from sqlite:DIR --to postgres://...  move a store to PostgreSQL, UIDs and modseqs kept
  tern store copy --from postgres://A --to postgres://B [--user NAME]...
                                 move users to another PostgreSQL database
  tern version                   print the version

Run "tern COMMAND -h" for a command's flags.
`

func (e *env) run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, mainUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, mainUsage)
		return exitOK
	case "serve":
		return e.serve(args[1:])
	case "user":
		return e.user(args[1:])
	case "shared":
		return e.shared(args[1:])
	case "sieve":
		return e.sieve(args[1:])
	case "cert":
		return e.cert(args[1:])
	case "deliver":
		return e.deliver(args[1:])
	case "import":
		return e.importCmd(args[1:])
	case "export":
		return e.exportCmd(args[1:])
	case "check":
		return e.check(args[1:])
	case "index":
		return e.index(args[1:])
	case "backup":
		return e.backup(args[1:])
	case "blobs-gc":
		return e.blobsGC(args[1:])
	case "store":
		return e.storeCmd(args[1:])
	case "restore":
		return e.restore(args[1:])
	case "version", "-version", "--version":
		return e.version(args[1:])
	default:
		fmt.Fprintf(e.stderr, "tern: unknown command %q\n\n%s", args[0], mainUsage)
		return exitUsage
	}
}

// command describes one (sub)command for flag parsing and help.
type command struct {
	name  string // "tern user add"
	args  string // "NAME"
	about string // what it does
	nargs int    // exact number of positional arguments
}

// newFlagSet returns a FlagSet whose errors go to e.stderr and whose help
// is printed by parse.
func (e *env) newFlagSet(c command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {}
	return fs
}

func (e *env) printHelp(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s", c.name)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintf(w, " [flags]\n\n%s\n", c.about)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintf(w, "\nFlags (before or after arguments):\n")
			first = false
		}
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if typ != "" {
			fmt.Fprintf(w, " %s", strings.ToUpper(typ))
		}
		fmt.Fprintf(w, "\n      %s", usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args with flags allowed before, between and after the
// positional arguments ("--" ends flag parsing). It returns the
// positionals, or an exit code (help: 0, error: 2) with done set.
func (e *env) parse(c command, fs *flag.FlagSet, args []string) (pos []string, code int, done bool) {
	rest := args
	for {
		err := fs.Parse(rest)
		if errors.Is(err, flag.ErrHelp) {
			e.printHelp(e.stdout, c, fs)
			return nil, exitOK, true
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "Run '%s -h' for usage.\n", c.name)
			return nil, exitUsage, true
		}
		remaining := fs.Args()
		if len(remaining) == 0 {
			break
		}
		// Did Parse stop at a "--" terminator? Then the rest is positional.
		if consumed := len(rest) - len(remaining); consumed > 0 && rest[consumed-1] == "--" {
			pos = append(pos, remaining...)
			break
		}
		pos = append(pos, remaining[0])
		rest = remaining[1:]
	}
	if len(pos) != c.nargs {
		switch {
		case c.nargs == 0:
			fmt.Fprintf(e.stderr, "%s: unexpected argument %q\n", c.name, pos[0])
		case len(pos) < c.nargs:
			fmt.Fprintf(e.stderr, "%s: missing %s\n", c.name, c.args)
		default:
			fmt.Fprintf(e.stderr, "%s: too many arguments: %s\n", c.name, strings.Join(pos[c.nargs:], " "))
		}
		fmt.Fprintf(e.stderr, "Run '%s -h' for usage.\n", c.name)
		return nil, exitUsage, true
	}
	return pos, exitOK, false
}

// loadConfig loads the configuration from the parsed flags; on error it
// reports and returns false.
func (e *env) loadConfig(name string, f *config.Flags) (*config.Config, bool) {
	cfg, err := f.Load()
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", name, err)
		return nil, false
	}
	return cfg, true
}

func (e *env) version(args []string) int {
	c := command{name: "tern version", about: "Print tern's version and the Go version it was built with."}
	fs := e.newFlagSet(c)
	if _, code, done := e.parse(c, fs, args); done {
		return code
	}
	fmt.Fprintf(e.stdout, "tern %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
