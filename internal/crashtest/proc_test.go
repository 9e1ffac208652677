package crashtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/pgtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// ternBinary builds cmd/tern once per test run and returns its path.
// TERN_CRASH_RACE=1 builds it with the race detector.
func ternBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tern-crashtest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tern")
		args := []string{"build", "-o", binPath}
		if os.Getenv("TERN_CRASH_RACE") != "" {
			args = append(args, "-race")
		}
		args = append(args, "github.com/tern-imap/tern/cmd/tern")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := pgtest.Main(m) // stops the private PostgreSQL if a test started it
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// runTern runs a tern subcommand to completion.
func runTern(t testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(ternBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), o.String(), e.String()
		}
		t.Fatalf("run tern %v: %v", args, err)
	}
	return 0, o.String(), e.String()
}

// server is a running "tern serve" process.
type server struct {
	t    testing.TB
	cmd  *exec.Cmd
	addr string
	done chan struct{}

	mu  sync.Mutex
	log []byte // the tail of its standard error
}

var listenRe = regexp.MustCompile(`msg=listening proto=imap addr=(\S+)`)

// startServer starts tern serve on dataDir (plain IMAP only, insecure auth
// allowed on loopback) and waits until it listens. extra are more flags.
func startServer(t testing.TB, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data", dataDir, "--listen-imap", "127.0.0.1:0",
		"--listen-imaps", "", "--listen-lmtp", "", "--listen-admin", "", "--insecure-auth"}, extra...)
	cmd := exec.Command(ternBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	s := &server{t: t, cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := listenRe.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
			s.mu.Lock()
			s.log = append(s.log, line...)
			s.log = append(s.log, '\n')
			if len(s.log) > 64<<10 {
				s.log = append([]byte(nil), s.log[len(s.log)-32<<10:]...)
			}
			s.mu.Unlock()
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(s.done)
	}()
	select {
	case s.addr = <-addrc:
	case <-s.done:
		t.Fatalf("server exited before listening:\n%s", s.logTail())
	case <-time.After(20 * time.Second):
		s.kill()
		t.Fatalf("server did not start listening:\n%s", s.logTail())
	}
	return s
}

func (s *server) logTail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.log)
}

// kill sends SIGKILL and waits for the process to end.
func (s *server) kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.kill()
		s.t.Errorf("server did not stop on SIGINT:\n%s", s.logTail())
	}
}

// newDataDir creates a data directory with user alice (password "secret").
func newDataDir(t testing.TB, dir string) {
	t.Helper()
	if code, out, errs := runTern(t, "secret\n", "user", "add", "alice", "--data", dir); code != 0 {
		t.Fatalf("user add: %d %s %s", code, out, errs)
	}
}

// checkStore runs tern check. Leftover files of writes interrupted by a
// crash are expected after SIGKILL (allowLeftovers); anything else is a
// failure. It then repairs and requires a clean store. It returns the
// number of leftover files found.
func checkStore(t testing.TB, dir string, allowLeftovers bool) int {
	t.Helper()
	code, out, errs := runTern(t, "", "check", "--data", dir)
	if code == 0 {
		return 0
	}
	if code != 3 {
		t.Fatalf("tern check: exit %d\n%s%s", code, out, errs)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasSuffix(line, "problem(s)"):
		case allowLeftovers && strings.Contains(line, ": unreferenced file blobs/"):
			n++
		default:
			t.Fatalf("tern check found a problem: %q\nfull output:\n%s", line, out)
		}
	}
	code, out, errs = runTern(t, "", "check", "--repair", "--data", dir)
	if code != 0 {
		t.Fatalf("tern check --repair: exit %d\n%s%s", code, out, errs)
	}
	return n
}
