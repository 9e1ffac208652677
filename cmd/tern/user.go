package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"golang.org/x/term"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

const userUsage = `Usage: tern user COMMAND [flags]

Manage users.

Commands:
  add NAME      create a user with the default mailboxes
  passwd NAME   change a user's password
  del NAME      delete a user and all their mail
  list          list users
  quota NAME    show or set a user's quota (--storage 2G --messages 100000)
  share OWNER MAILBOX USER RIGHTS
                give USER (or anyone) RIGHTS (lrswipkxtea, +/-) on OWNER's MAILBOX
  acl OWNER MAILBOX
                show who may use OWNER's MAILBOX

The password is read from standard input (one line) when it is not a
terminal, otherwise prompted for twice. Run "tern user COMMAND -h" for flags.
`

// defaultMailboxes are created (and subscribed) for every new user.
var defaultMailboxes = []struct{ name, specialUse string }{
	{"INBOX", ""},
	{"Drafts", `\Drafts`},
	{"Sent", `\Sent`},
	{"Trash", `\Trash`},
	{"Junk", `\Junk`},
	{"Archive", `\Archive`},
}

func (e *env) user(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, userUsage)
		return exitUsage
	}
	var c command
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, userUsage)
		return exitOK
	case "quota":
		return e.userQuota(args[1:])
	case "share":
		return e.userShare(args[1:], true)
	case "acl":
		return e.userShare(args[1:], false)
	case "add":
		c = command{name: "tern user add", args: "NAME", nargs: 1,
			about: "Create user NAME with mailboxes INBOX, Drafts, Sent, Trash, Junk and Archive,\nall subscribed. The password is read from standard input (first line) when\nit is not a terminal; otherwise it is prompted for twice without echo."}
	case "passwd":
		c = command{name: "tern user passwd", args: "NAME", nargs: 1,
			about: "Set a new password for user NAME (read like for 'tern user add')."}
	case "del":
		c = command{name: "tern user del", args: "NAME", nargs: 1,
			about: "Delete user NAME and all their mail. This cannot be undone."}
	case "list":
		c = command{name: "tern user list", about: "List all users, one per line (not the account " + store.SharedOwner + " of the\n" +
			"shared folders: see tern shared list)."}
	default:
		fmt.Fprintf(e.stderr, "tern user: unknown command %q\n\n%s", args[0], userUsage)
		return exitUsage
	}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	pos, code, done := e.parse(c, fs, args[1:])
	if done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	var err error
	switch args[0] {
	case "add":
		err = e.userAdd(ctx, cfg, pos[0])
	case "passwd":
		err = e.userPasswd(ctx, cfg, pos[0])
	case "del":
		err = e.userDel(ctx, cfg, pos[0])
	case "list":
		err = e.userList(ctx, cfg)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		if errors.Is(err, errUsage) {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

var errUsage = errors.New("usage error")

func checkUserName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("%w: user name must be 1 to 255 bytes", errUsage)
	}
	if store.IsReservedUser(name) {
		return fmt.Errorf("%w: user names starting with # are reserved (tern shared)", errUsage)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: user name %q contains space, control or invalid characters", errUsage, name)
		}
	}
	return nil
}

func (e *env) withStore(ctx context.Context, cfg *config.Config, fn func(store.Store) error) error {
	return e.withStoreFor(ctx, cfg, useCommand, fn)
}

// withStoreFor is withStore opened for use: useExclusive for a
// command that must not run beside a server (tern check): an embedded
// store is then opened only while no tern serve has it open, and keeps
// servers out until fn returns.
func (e *env) withStoreFor(ctx context.Context, cfg *config.Config, use storeUse, fn func(store.Store) error) error {
	st, err := openStoreIndexing(ctx, cfg, nil, nil, false, use)
	if err != nil {
		return err
	}
	return runAndClose(st, func() {}, fn)
}

// withNotifyingStore is withStore for a command whose changes a running
// server's sessions must hear of (openStoreNotifying).
func (e *env) withNotifyingStore(ctx context.Context, cfg *config.Config, fn func(store.Store) error) error {
	st, closeN, err := openStoreNotifying(ctx, cfg)
	if err != nil {
		return err
	}
	return runAndClose(st, closeN, fn)
}

// runAndClose runs fn on st, then closes st and the notifier (closeN).
func runAndClose(st store.Store, closeN func(), fn func(store.Store) error) error {
	ferr := fn(st)
	if err := st.Close(); err != nil && ferr == nil {
		ferr = fmt.Errorf("close store: %w", err)
	}
	closeN()
	return ferr
}

func (e *env) userAdd(ctx context.Context, cfg *config.Config, name string) error {
	if err := checkUserName(name); err != nil {
		return err
	}
	hash, err := e.newPasswordHash()
	if err != nil {
		return err
	}
	return e.withStore(ctx, cfg, func(st store.Store) error {
		if err := st.CreateUser(ctx, name, hash); err != nil {
			if errors.Is(err, store.ErrUserExists) {
				return fmt.Errorf("user %q already exists", name)
			}
			return fmt.Errorf("create user: %w", err)
		}
		if err := createDefaultMailboxes(ctx, st, name); err != nil {
			// Do not leave a half-made user behind.
			if derr := st.DeleteUser(ctx, name); derr != nil {
				return fmt.Errorf("%w (and removing the user failed: %v)", err, derr)
			}
			return err
		}
		fmt.Fprintf(e.stdout, "created user %s\n", name)
		return nil
	})
}

func createDefaultMailboxes(ctx context.Context, st store.Store, name string) error {
	acct, err := st.Account(ctx, name)
	if err != nil {
		return fmt.Errorf("open account: %w", err)
	}
	defer acct.Close()
	for _, mb := range defaultMailboxes {
		if err := acct.CreateMailbox(ctx, mb.name, mb.specialUse); err != nil && !errors.Is(err, store.ErrMailboxExists) {
			return fmt.Errorf("create mailbox %s: %w", mb.name, err)
		}
		if err := acct.SetSubscribed(ctx, mb.name, true); err != nil {
			return fmt.Errorf("subscribe %s: %w", mb.name, err)
		}
	}
	return nil
}

func (e *env) userPasswd(ctx context.Context, cfg *config.Config, name string) error {
	return e.withStore(ctx, cfg, func(st store.Store) error {
		// Check first so nobody types a password for a typo'd name.
		if _, err := st.PasswordHash(ctx, name); err != nil {
			if errors.Is(err, store.ErrNoSuchUser) {
				return fmt.Errorf("no user %q", name)
			}
			return fmt.Errorf("look up user: %w", err)
		}
		hash, err := e.newPasswordHash()
		if err != nil {
			return err
		}
		if err := st.SetPasswordHash(ctx, name, hash); err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		fmt.Fprintf(e.stdout, "password of %s changed\n", name)
		return nil
	})
}

func (e *env) userDel(ctx context.Context, cfg *config.Config, name string) error {
	return e.withStore(ctx, cfg, func(st store.Store) error {
		if err := st.DeleteUser(ctx, name); err != nil {
			if errors.Is(err, store.ErrNoSuchUser) {
				return fmt.Errorf("no user %q", name)
			}
			return fmt.Errorf("delete user: %w", err)
		}
		fmt.Fprintf(e.stdout, "deleted user %s\n", name)
		return nil
	})
}

func (e *env) userList(ctx context.Context, cfg *config.Config) error {
	return e.withStore(ctx, cfg, func(st store.Store) error {
		users, err := st.Users(ctx)
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		for _, u := range users {
			if store.IsReservedUser(u) {
				continue // an account of no user (store.SharedOwner)
			}
			fmt.Fprintln(e.stdout, u)
		}
		return nil
	})
}

// maxPasswordLen bounds what is read and hashed.
const maxPasswordLen = 1024

// newPasswordHash reads a new password and returns its hash.
func (e *env) newPasswordHash() (string, error) {
	pw, err := e.readPassword()
	if err != nil {
		return "", err
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}

// readPassword prompts twice without echo when stdin is a terminal, and
// otherwise reads the first line of stdin.
func (e *env) readPassword() (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		fmt.Fprint(e.stderr, "Password: ")
		p1, err := term.ReadPassword(fd)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(e.stderr, "Repeat password: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(p1) != string(p2) {
			return "", errors.New("passwords do not match")
		}
		return checkPassword(string(p1))
	}
	r := bufio.NewReaderSize(io.LimitReader(e.stdin, maxPasswordLen+2), maxPasswordLen+2)
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	if !strings.HasSuffix(line, "\n") && len(line) > maxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", maxPasswordLen)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	return checkPassword(line)
}

func checkPassword(pw string) (string, error) {
	switch {
	case pw == "":
		return "", errors.New("empty password")
	case len(pw) > maxPasswordLen:
		return "", fmt.Errorf("password longer than %d bytes", maxPasswordLen)
	case strings.ContainsAny(pw, "\x00\r\n"):
		return "", errors.New("password contains NUL or line breaks")
	}
	return pw, nil
}
