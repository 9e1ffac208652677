package delivery

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tern-imap/tern/internal/store"
)

// The notify socket carries change signals from other tern processes
// (tern deliver, tern import) to a running tern serve, so its IDLE sessions
// wake up for mail stored by another process. A signal carries no data a
// session trusts: it only makes the session ask the store what changed.
// Each line is "user\tmailboxID\tmodseq\n", or "\towner\tidentifier\n"
// after an ACL change (store.ACLNotifier; no user name is empty).

// NotifySocketName is the socket's file name in the data directory.
const NotifySocketName = "notify.sock"

const maxNotifyLine = 4096

// ServeNotifySocket listens on the unix socket path (replacing a stale
// one; mode 0600) and passes every signal it receives to n until the
// returned listener is closed.
func ServeNotifySocket(path string, n store.Notifier, log *slog.Logger) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("notify socket %s: in use by another tern serve", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					log.Warn("notify socket: accept failed", "err", err)
				}
				return
			}
			go serveNotifyConn(c, n)
		}
	}()
	return ln, nil
}

func serveNotifyConn(c net.Conn, n store.Notifier) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 256), maxNotifyLine)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 {
			return
		}
		if f[0] == "" {
			if an, ok := n.(store.ACLNotifier); ok {
				an.ACLChanged(f[1], f[2])
			}
			continue
		}
		id, err1 := strconv.ParseInt(f[1], 10, 64)
		ms, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return
		}
		n.MailboxChanged(f[0], id, ms)
	}
}

// SocketNotifier is a store.Notifier that forwards signals to a running
// tern serve over its notify socket. It is best effort: with no server
// listening, signals are dropped (nobody is idling then).
type SocketNotifier struct {
	path string
	mu   sync.Mutex
	c    net.Conn
	down time.Time // last failed dial; retry after a second
}

// NewSocketNotifier returns a notifier for the socket at path.
func NewSocketNotifier(path string) *SocketNotifier { return &SocketNotifier{path: path} }

// MailboxChanged implements store.Notifier.
func (s *SocketNotifier) MailboxChanged(user string, mailboxID int64, modSeq uint64) {
	if strings.ContainsAny(user, "\t\n") {
		return
	}
	s.send(user + "\t" + strconv.FormatInt(mailboxID, 10) + "\t" + strconv.FormatUint(modSeq, 10) + "\n")
}

// ACLChanged implements store.ACLNotifier.
func (s *SocketNotifier) ACLChanged(owner, identifier string) {
	if owner == "" || strings.ContainsAny(owner, "\t\n") || strings.ContainsAny(identifier, "\t\n") {
		return
	}
	s.send("\t" + owner + "\t" + identifier + "\n")
}

// send writes one line to the server, dialling it when needed.
func (s *SocketNotifier) send(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ {
		if s.c == nil {
			if time.Since(s.down) < time.Second {
				return
			}
			c, err := net.DialTimeout("unix", s.path, time.Second)
			if err != nil {
				s.down = time.Now()
				return
			}
			s.c = c
		}
		s.c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := s.c.Write([]byte(line)); err == nil {
			return
		}
		s.c.Close()
		s.c = nil
	}
}

// Close closes the connection to the server.
func (s *SocketNotifier) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		err := s.c.Close()
		s.c = nil
		return err
	}
	return nil
}
