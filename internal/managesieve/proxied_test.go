package managesieve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/tern-imap/tern/internal/proxied"
)

// logLines collects JSON log lines written from many goroutines.
type logLines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// sessionEnds returns the level of each "session ended" line by the
// session's remote address.
func (l *logLines) sessionEnds(t *testing.T) map[string]string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(l.b.Bytes()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if r["msg"] == "session ended" {
			out[r["remote"].(string)] = r["level"].(string)
		}
	}
	return out
}

// A balancer's health check (a PROXY LOCAL header, then nothing, or
// commands without a login) ends its session at debug level; a session
// of the balancer's own that logs in, and a client's session through the
// balancer, end at info, the client's under its address.
func TestBalancerCheckLoggedAtDebug(t *testing.T) {
	nets, err := proxied.ParseNetworks([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logLines{}
	ts := newTestServer(t, testOpts{
		insecureAuth: true,
		wrapListener: func(ln net.Listener) net.Listener {
			return proxied.Wrap(ln, nets, slog.New(slog.DiscardHandler))
		},
		mutate: func(c *Config) {
			c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		},
	})
	local := proxyproto.HeaderProxyFromAddrs(2, nil, nil)
	local.Command = proxyproto.LOCAL
	localHdr, err := local.Format()
	if err != nil {
		t.Fatal(err)
	}
	login := `AUTHENTICATE "PLAIN" "` + plain("alice", testPassword) + `"`
	levels := map[string]string{} // the level of each session's end, by its remote address
	for _, s := range []struct {
		header   []byte
		commands []string
		remote   string // "": the connection's own
		level    string
	}{
		{localHdr, nil, "", "DEBUG"},
		{localHdr, []string{"CAPABILITY"}, "", "DEBUG"},
		{localHdr, []string{login, "UNAUTHENTICATE"}, "", "INFO"},
		{[]byte("PROXY TCP4 192.0.2.1 192.0.2.2 40000 4190\r\n"), nil, "192.0.2.1:40000", "INFO"},
	} {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(s.header); err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
		c.response() // the capabilities
		for _, cmd := range s.commands {
			if r := c.do(cmd); !strings.HasPrefix(r, "OK") && !strings.Contains(r, "\r\nOK") {
				t.Fatalf("%s: %q", cmd, r)
			}
		}
		nc.Close()
		remote := s.remote
		if remote == "" {
			remote = nc.LocalAddr().String()
		}
		levels[remote] = s.level
	}
	var got map[string]string
	for deadline := time.Now().Add(5 * time.Second); len(got) < len(levels); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d session ends logged, want %d: %v", len(got), len(levels), got)
		}
		got = logs.sessionEnds(t)
	}
	for remote, level := range levels {
		if got[remote] != level {
			t.Errorf("session from %s ended at %q, want %s", remote, got[remote], level)
		}
	}
}
