package managesieve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
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

// A balancer's health check (a PROXY LOCAL header, then nothing) ends
// its session at debug level; a client's session through the balancer
// ends at info, under the client's address.
func TestBalancerCheckLoggedAtDebug(t *testing.T) {
	nets, err := proxied.ParseNetworks([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logLines{}
	ts := newTestServer(t, testOpts{
		wrapListener: func(ln net.Listener) net.Listener {
			return proxied.Wrap(ln, nets, slog.New(slog.DiscardHandler))
		},
		mutate: func(c *Config) {
			c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		},
	})
	local := proxyproto.HeaderProxyFromAddrs(2, nil, nil)
	local.Command = proxyproto.LOCAL
	check, err := local.Format()
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range [][]byte{check, []byte("PROXY TCP4 192.0.2.1 192.0.2.2 40000 4190\r\n")} {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(header); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(nc).ReadString('\n'); err != nil { // the capabilities
			t.Fatal(err)
		}
		nc.Close()
	}
	var ends map[string]string
	for deadline := time.Now().Add(5 * time.Second); len(ends) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d session ends logged, want 2: %v", len(ends), ends)
		}
		ends = logs.sessionEnds(t)
	}
	for remote, level := range ends {
		want := "DEBUG" // the check's, from the balancer's own address
		if remote == "192.0.2.1:40000" {
			want = "INFO"
		}
		if level != want {
			t.Errorf("session from %s ended at %s, want %s", remote, level, want)
		}
	}
}
