package crashtest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// haproxy is a private HAProxy in TCP mode on loopback in front of tern
// nodes: one frontend for IMAP, one for LMTP, round robin, health checks
// every 100 ms, a connection to a dead node redispatched to a live one.
type haproxy struct {
	cmd        *exec.Cmd
	done       chan struct{}
	imap, lmtp string // frontend addresses

	mu  sync.Mutex
	log strings.Builder
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// haproxyConfig is the configuration for frontends imap and lmtp in front
// of the given node addresses; serverOpts are added to every server line.
func haproxyConfig(imap, lmtp string, imapNodes, lmtpNodes []string, serverOpts string) string {
	var b strings.Builder
	b.WriteString(`global
	maxconn 4000
defaults
	mode tcp
	timeout connect 1s
	timeout client 1m
	timeout server 1m
	timeout check 500ms
	retries 3
	option redispatch
`)
	section := func(name, bind string, nodes []string) {
		fmt.Fprintf(&b, "frontend %s\n\tbind %s\n\tdefault_backend %s_nodes\n", name, bind, name)
		fmt.Fprintf(&b, "backend %s_nodes\n\tbalance roundrobin\n", name)
		for i, n := range nodes {
			fmt.Fprintf(&b, "\tserver n%d %s check inter 100ms fall 1 rise 2 %s\n", i, n, serverOpts)
		}
	}
	section("imap", imap, imapNodes)
	section("lmtp", lmtp, lmtpNodes)
	return b.String()
}

// startHAProxy starts HAProxy (skipping the test, saying so, when it is
// not installed) and waits until its IMAP frontend answers with a
// greeting. It is stopped when the test ends.
func startHAProxy(t *testing.T, imapNodes, lmtpNodes []string) *haproxy {
	t.Helper()
	return startHAProxyOpts(t, "", imapNodes, lmtpNodes)
}

// startHAProxyOpts is startHAProxy with serverOpts added to every server
// line (send-proxy-v2, for instance).
func startHAProxyOpts(t *testing.T, serverOpts string, imapNodes, lmtpNodes []string) *haproxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("skipped: haproxy not installed (Debian: apt-get install haproxy; .ci/run installs it)")
	}
	h := &haproxy{imap: freeAddr(t), lmtp: freeAddr(t), done: make(chan struct{})}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(h.imap, h.lmtp, imapNodes, lmtpNodes, serverOpts)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.cmd = exec.Command(bin, "-db", "-f", cfg) // -db: foreground
	out, err := h.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.cmd.Stdout = h.cmd.Stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.mu.Lock()
			h.log.WriteString(sc.Text() + "\n")
			h.mu.Unlock()
		}
		h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(h.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dial(h.imap)
		if err == nil {
			c.close()
			return h
		}
		select {
		case <-h.done:
			t.Fatalf("haproxy exited: %s", h.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy did not answer on %s: %v\n%s", h.imap, err, h.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *haproxy) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// stop ends HAProxy (our own child, by its pid).
func (h *haproxy) stop() {
	h.cmd.Process.Kill()
	<-h.done
}
