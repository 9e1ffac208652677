// Package s3test starts a private S3 server for tests: SeaweedFS's
// `weed server -s3` (master, volume server, filer and S3 gateway in one
// process) with its data in a temporary directory, every port a free one
// on 127.0.0.1, one access key written to its S3 configuration. It is
// started at the first NewBucket and stopped (its directory removed) by
// Main. Tests skip, saying why, when `weed` is not on PATH.
//
// Install weed with
//
//	go mod download -json github.com/seaweedfs/seaweedfs@VERSION   # prints its Dir
//	cd DIR && go build -o $(go env GOPATH)/bin/weed ./weed
//
// (`go install ...weed@VERSION` is refused: its go.mod has a replace
// directive); .ci/run does this.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/blob"
)

// Credentials the private server accepts.
const (
	AccessKey = "tern-test-access"
	SecretKey = "tern-test-secret-key-0123456789"
	Region    = "us-east-1"
)

// ErrNotInstalled: no weed binary on PATH.
var ErrNotInstalled = errors.New("SeaweedFS `weed` not on PATH (see internal/s3test: build github.com/seaweedfs/seaweedfs/weed into $GOPATH/bin)")

// Server is one running private S3 server.
type Server struct {
	dir      string
	cmd      *exec.Cmd
	done     chan struct{}
	Endpoint string // http://127.0.0.1:PORT
	// sockets are the unix sockets weed makes in /tmp whatever it is
	// told (/tmp/seaweedfs-<service>-grpc-<port>.sock): removed by Stop.
	sockets []string
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// s3Config is the server's identity file: one identity with every right.
const s3Config = `{"identities":[{"name":"tern","credentials":[{"accessKey":"` + AccessKey + `","secretKey":"` + SecretKey + `"}],
"actions":["Admin","Read","List","Tagging","Write"]}]}`

// Start starts a server and waits until its S3 gateway answers.
func Start() (*Server, error) {
	bin, err := exec.LookPath("weed")
	if err != nil {
		return nil, ErrNotInstalled
	}
	// The free ports are found by binding and releasing them; another
	// process (a parallel test's client connection, another weed) may take
	// one before weed binds it. Then weed exits with "address already in
	// use", and a new server on new ports is tried.
	for attempt := 1; ; attempt++ {
		dir, err := os.MkdirTemp("", "tern-s3test-")
		if err != nil {
			return nil, fmt.Errorf("s3test: %w", err)
		}
		s := &Server{dir: dir, done: make(chan struct{})}
		err = s.start(bin)
		if err == nil {
			return s, nil
		}
		s.Stop()
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
}

func (s *Server) start(bin string) error {
	cfg := filepath.Join(s.dir, "s3.json")
	if err := os.WriteFile(cfg, []byte(s3Config), 0o600); err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	data := filepath.Join(s.dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	// Every listener on its own free port: http and gRPC of the master,
	// volume server, filer and S3 gateway.
	names := []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
		"filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc"}
	args := []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		"-master.telemetry=false", "-volume.max=300", "-master.volumeSizeLimitMB=8",
		"-filer", "-s3", "-s3.config=" + cfg, "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false",
		"-filer.localSocket=" + filepath.Join(s.dir, "filer.sock"), "-s3.localSocket=" + filepath.Join(s.dir, "s3.sock")}
	ports := map[string]int{}
	for _, n := range names {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[n] = p
		args = append(args, "-"+n+"="+strconv.Itoa(p))
		if service, ok := strings.CutSuffix(n, ".port.grpc"); ok {
			s.sockets = append(s.sockets, fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", service, p))
		}
	}
	s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(ports["s3.port"])
	logf, err := os.Create(filepath.Join(s.dir, "weed.log"))
	if err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("s3test: start weed: %w", err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	s.watch()
	return s.waitReady(90 * time.Second)
}

// watch starts a watchdog that ends the server (its process group) and
// removes its directory and sockets once this process is gone, however
// it ended: a test binary stopped by its -timeout exits without
// returning to Main, and weed would run on. The watchdog is a shell loop
// in a process group of its own; it signals weed only while weed's
// command line still names this server's directory. After a clean Stop
// it finds nothing to do.
func (s *Server) watch() {
	args := append([]string{"-c", watchdogScript, "s3test-watchdog", strconv.Itoa(os.Getpid()), strconv.Itoa(s.cmd.Process.Pid), s.dir}, s.sockets...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "s3test: no watchdog (a test binary that dies leaves weed in %s running): %v\n", s.dir, err)
		return
	}
	go cmd.Wait() // it outlives this process, unless started in vain
}

// watchdogScript: $1 the test process, $2 weed, $3 the server's
// directory, then the sockets weed makes in /tmp.
const watchdogScript = `while kill -0 "$1" 2>/dev/null; do sleep 1; done
if tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null | grep -qF -- "$3"; then
	kill -TERM "-$2"
	i=0
	while kill -0 "$2" 2>/dev/null && [ "$i" -lt 20 ]; do sleep 0.5; i=$((i+1)); done
	kill -KILL "-$2" 2>/dev/null
fi
rm -rf "$3"
shift 3
rm -f "$@"`

// waitReady polls the gateway until it lists buckets (master, volume
// server and filer are up behind it) or the deadline passes.
func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("s3test: weed exited during start:\n%s", s.logTail())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.makeBucket(ctx, "tern-ready")
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("s3test: weed not ready after %v: %v\n%s", limit, err, s.logTail())
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "weed.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Config is the blob store configuration for a bucket of this server.
func (s *Server) Config(bucket string) blob.S3Config {
	return blob.S3Config{Bucket: bucket, Endpoint: s.Endpoint, Region: Region, PathStyle: true,
		AccessKey: AccessKey, SecretKey: SecretKey}
}

// URL is the --blob-store URL of a bucket (credentials go in the
// environment: Env).
func (s *Server) URL(bucket string) string {
	return "s3://" + bucket + "?endpoint=" + s.Endpoint + "&region=" + Region + "&path_style=true"
}

// Env is the environment a process needs for URL's credentials.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey}
}

// makeBucket creates bucket (an existing one is fine).
func (s *Server) makeBucket(ctx context.Context, bucket string) error {
	return blob.MakeS3Bucket(ctx, s.Config(bucket))
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s) and removes its
// directory.
func (s *Server) Stop() error {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		for _, sock := range s.sockets {
			os.Remove(sock)
		}
	}
	return os.RemoveAll(s.dir)
}

var (
	startOnce  sync.Once
	shared     *Server
	startErr   error
	skipReason string
	mainRan    bool
)

// Main is a TestMain body: it runs the tests, then stops the server if a
// test started one. Packages that also use pgtest call Main inside
// pgtest.Main's run (see Wrap).
func Main(m *testing.M) int {
	return Wrap(m.Run)
}

// Wrap runs run (a test run, or another harness's Main around it) and
// stops the server afterwards.
func Wrap(run func() int) int {
	mainRan = true
	code := run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "s3test: stop: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the package's server, starting it on first use; it
// skips the test when weed is not installed.
func Shared(t testing.TB) *Server {
	t.Helper()
	if !mainRan {
		t.Fatal("s3test: call s3test.Main (or Wrap) from TestMain (it stops the server)")
	}
	startOnce.Do(func() {
		shared, startErr = Start()
		if errors.Is(startErr, ErrNotInstalled) {
			skipReason = startErr.Error()
			fmt.Fprintf(os.Stderr, "s3test: S3 tests skip: %v\n", startErr)
		}
	})
	if skipReason != "" {
		t.Skip("skipped: " + skipReason)
	}
	if startErr != nil {
		t.Fatalf("s3test: cannot start weed: %v", startErr)
	}
	return shared
}

// NewBucket creates a new empty bucket on the package's server and
// returns its configuration.
func NewBucket(t testing.TB) blob.S3Config {
	t.Helper()
	s := Shared(t)
	var rnd [6]byte
	rand.Read(rnd[:])
	bucket := "tern-" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.makeBucket(ctx, bucket); err != nil {
		t.Fatalf("s3test: make bucket: %v", err)
	}
	return s.Config(bucket)
}

var (
	prefixBucketOnce sync.Once
	prefixBucket     blob.S3Config
)

// NewPrefix returns a configuration for an empty part of one bucket the
// package's tests share, under a prefix of its own: for suites that make
// a store per test by the hundred, where a bucket each would run the
// server out of volumes (it makes volumes per bucket).
func NewPrefix(t testing.TB) blob.S3Config {
	t.Helper()
	prefixBucketOnce.Do(func() { prefixBucket = NewBucket(t) })
	if prefixBucket.Bucket == "" {
		t.Fatal("s3test: the shared bucket could not be made")
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	cfg := prefixBucket
	cfg.Prefix = "t-" + hex.EncodeToString(rnd[:]) + "/"
	return cfg
}
