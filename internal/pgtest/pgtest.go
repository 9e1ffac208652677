// Package pgtest starts a private PostgreSQL server for tests: Debian's
// server binaries, a cluster made by initdb in a temporary directory,
// listening on 127.0.0.1 on a free port and on a unix socket in that
// directory, run as an unprivileged user when the tests run as root, and
// stopped (and its directory removed) at the end, by a watchdog process
// when the test binary dies before it can (watch). It never touches a
// cluster it did not create.
//
// A package's TestMain calls Main; each test then takes a database of
// its own with NewDatabase, so tests are independent but share one server
// start (initdb and start: a few seconds), made at the first NewDatabase.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// superuser is the role initdb creates; tests connect as it.
const superuser = "tern"

// Cluster is one running private PostgreSQL server.
type Cluster struct {
	dir  string // temporary directory: data/, the socket, the log
	bin  string // directory of initdb, pg_ctl, postgres
	port int
	cred *syscall.Credential // nil: run as ourselves
	next atomic.Int64        // database counter
	// settings are extra server options (-c name=value ...), after the
	// defaults, which they override.
	settings string
}

// ErrNotInstalled is returned by Start when no PostgreSQL server binaries
// are found.
var ErrNotInstalled = errors.New("PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and $TERN_PG_BIN; on Debian: apt-get install postgresql)")

// findBin returns the directory holding initdb and pg_ctl: $TERN_PG_BIN,
// else the newest /usr/lib/postgresql/N/bin.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	if d := os.Getenv("TERN_PG_BIN"); d != "" {
		dirs = []string{d}
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

// unprivileged returns the credentials to run the server with when we are
// root (PostgreSQL refuses to run as root): the user nobody.
func unprivileged() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root and no user nobody to run PostgreSQL as: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("uid of nobody: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("gid of nobody: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start creates and starts a private cluster. Returns ErrNotInstalled
// (wrapped) when PostgreSQL is not installed.
func Start() (*Cluster, error) { return StartWith("") }

// StartWith is Start with extra server options (-c name=value ...), which
// override the defaults: "-c synchronous_commit=on" makes commits
// durable again, as a test of what a crash keeps needs.
func StartWith(settings string) (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := unprivileged()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tern-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{dir: dir, bin: bin, cred: cred, settings: settings}
	if err := c.start(); err != nil {
		c.dump()
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start() error {
	if c.cred != nil {
		// The server's user must own its directory (and reach it: the
		// temporary directory is ours, mode 0700).
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(c.dir, "data")
	if err := c.run("initdb", "-D", data, "-U", superuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return err
	}
	return c.serve()
}

// serve starts the server on the cluster's data directory, on a free
// port.
func (c *Cluster) serve() error {
	var err error
	// A port taken between freePort and the server's bind makes pg_ctl
	// fail; try a few.
	for range 5 {
		if c.port, err = freePort(); err != nil {
			return err
		}
		if err = c.startServer(); err == nil {
			c.watch()
			return nil
		}
	}
	return err
}

// startServer starts the server on c.port.
func (c *Cluster) startServer() error {
	// Durability is not what tests check: fsync off keeps CREATE
	// DATABASE and commits fast on a shared machine. Benchmarks that
	// should pay for durable commits set TERN_PGTEST_FSYNC=on.
	durability := "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
	if os.Getenv("TERN_PGTEST_FSYNC") == "on" {
		durability = "-c fsync=on -c synchronous_commit=on"
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s %s -c max_connections=300 -c shared_buffers=128MB %s",
		c.port, c.dir, durability, c.settings)
	return c.run("pg_ctl", "start", "-w", "-t", "60", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "server.log"), "-o", opts)
}

// Crash stops the server as a crash would (pg_ctl's immediate mode: no
// checkpoint, and what the WAL buffers held but had not written is
// gone) and starts it again on the same port, where it recovers from
// its WAL; connections that were open are broken.
func (c *Cluster) Crash() error {
	if err := c.Kill(); err != nil {
		return err
	}
	return c.startServer()
}

// Kill stops the server as a crash would and leaves it stopped (Stop
// then only removes its directory).
func (c *Cluster) Kill() error {
	return c.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", filepath.Join(c.dir, "data"))
}

// Resume starts a server that Kill stopped, on the same port.
func (c *Cluster) Resume() error { return c.startServer() }

// Promote makes a standby (StartStandby) a primary that takes writes,
// as a failover does, and waits until it does.
func (c *Cluster) Promote() error {
	return c.run("pg_ctl", "promote", "-w", "-t", "60", "-D", filepath.Join(c.dir, "data"))
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// watch starts a watchdog that stops the server and removes its
// directory once this process is gone, however it ended: a test binary
// stopped by its -timeout exits without returning to Main, and pg_ctl's
// server would run on. The watchdog is a shell loop in a process group
// of its own (a signal to the test's group does not take it along); it
// signals only the postmaster whose command line names this cluster's
// data directory. After a clean Stop it finds nothing to do.
func (c *Cluster) watch() {
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "pgtest-watchdog", strconv.Itoa(os.Getpid()), c.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: no watchdog (a test binary that dies leaves the server in %s running): %v\n", c.dir, err)
		return
	}
	go cmd.Wait() // it outlives this process, unless started in vain
}

// watchdogScript: $1 the test process, $2 the cluster's directory. A
// fast shutdown (SIGINT), then the directory goes.
const watchdogScript = `while kill -0 "$1" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2/data"; then
	kill -INT "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 120 ]; do sleep 0.5; i=$((i+1)); done
fi
rm -rf "$2"`

// StartStandby makes a streaming replica of c (pg_basebackup -R: a hot
// standby that follows c's WAL; the backup starts with an immediate
// checkpoint, not a spread one, which took c a minute and a half) and
// starts it on a port of its own. Stop it before c.
func (c *Cluster) StartStandby() (*Cluster, error) {
	dir, err := os.MkdirTemp("", "tern-pgtest-standby-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Cluster{dir: dir, bin: c.bin, cred: c.cred}
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	err = s.run("pg_basebackup", "-D", filepath.Join(dir, "data"), "-h", "127.0.0.1", "-p", strconv.Itoa(c.port),
		"-U", superuser, "-X", "stream", "-R", "--no-sync", "--checkpoint=fast")
	if err == nil {
		err = s.serve()
	}
	if err != nil {
		s.dump()
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// URLOf returns the URL of the database that url (of any cluster) names,
// on c: a standby's copy of a primary's database.
func (c *Cluster) URLOf(dbURL string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return c.URL(strings.TrimPrefix(u.Path, "/")), nil
}

// run runs one of the server's programs as the server's user.
func (c *Cluster) run(prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", prog, err, out)
	}
	return nil
}

// dump prints the server log (when starting failed).
func (c *Cluster) dump() {
	if b, err := os.ReadFile(filepath.Join(c.dir, "server.log")); err == nil {
		fmt.Fprintf(os.Stderr, "pgtest: server log:\n%s\n", b)
	}
}

// Stop stops the server and removes its directory.
func (c *Cluster) Stop() error {
	err := c.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", filepath.Join(c.dir, "data"))
	if rerr := os.RemoveAll(c.dir); err == nil {
		err = rerr
	}
	return err
}

// URL is the connection URL of database db over TCP.
func (c *Cluster) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(superuser), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates a new empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	return c.copyDatabase(ctx, "template0")
}

// copyDatabase creates a new database as a copy of template (which must
// have no connections) and returns its URL. WAL_LOG copies through the
// write-ahead log, without the checkpoints FILE_COPY forces.
func (c *Cluster) copyDatabase(ctx context.Context, template string) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.next.Add(1))
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+pgx.Identifier{template}.Sanitize()+" STRATEGY WAL_LOG"); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.URL(name), nil
}

// The cluster of a test binary, started by the first NewDatabase.
var (
	startOnce  sync.Once
	shared     *Cluster
	startErr   error
	skipReason string
	mainRan    bool
)

// Main is a TestMain body: it runs the package's tests and then stops
// the private cluster if a test started one (NewDatabase starts it on
// first use, so packages whose selected tests need no PostgreSQL pay
// nothing).
func Main(m *testing.M) int {
	mainRan = true
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// NewDatabase returns the URL of a new empty database on the package's
// private cluster, starting it on first use. It skips the test, saying
// why, when PostgreSQL is not installed; any other failure to start fails
// the test.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if !mainRan {
		t.Fatal("pgtest: call pgtest.Main from TestMain (it stops the cluster)")
	}
	startOnce.Do(func() {
		shared, startErr = Start()
		if errors.Is(startErr, ErrNotInstalled) {
			skipReason = startErr.Error()
			fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL tests skip: %v\n", startErr)
		}
	})
	if skipReason != "" {
		t.Skip("skipped: " + skipReason)
	}
	if startErr != nil {
		t.Fatalf("pgtest: cannot start PostgreSQL: %v", startErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := shared.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// ServerCPU returns the CPU time (user + system) the package's private
// server has used so far: the postmaster and every process it started
// (backends, checkpointer, WAL writer, ...), read from /proc. Tests that
// measure what PostgreSQL spends per command take the difference of two
// readings. It fails when no cluster was started (call NewDatabase first).
func ServerCPU() (time.Duration, error) {
	if shared == nil {
		return 0, errors.New("pgtest: no cluster started")
	}
	b, err := os.ReadFile(filepath.Join(shared.dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	pidLine, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(pidLine))
	if err != nil {
		return 0, fmt.Errorf("pgtest: postmaster.pid: %w", err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	var ticks int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, t, ok := procCPU(pid)
		if ok && (pid == postmaster || ppid == postmaster) {
			ticks += t
		}
	}
	// Linux reports in USER_HZ, 100 per second on every architecture Go
	// runs Linux on.
	return time.Duration(ticks) * (time.Second / 100), nil
}

// procCPU reads a process's parent and utime+stime (clock ticks) from
// /proc/PID/stat.
func procCPU(pid int) (ppid int, ticks int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])                // field 4
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return ppid, utime + stime, true
}
