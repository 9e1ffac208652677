package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tern-imap/tern/internal/metrics"
	"github.com/tern-imap/tern/internal/store"
)

// LMTPConfig configures an LMTP server.
type LMTPConfig struct {
	// Hostname is announced in the greeting; empty: os.Hostname().
	Hostname string
	// MaxMessageBytes bounds one message (0: 64 MiB).
	MaxMessageBytes int64
	// MaxRecipients bounds the recipients of one transaction (0: 1000).
	MaxRecipients int
	// Timeout bounds reading a command or data chunk and storing a message
	// (0: 5 minutes).
	Timeout time.Duration
	// Metrics counts deliveries per recipient by result; nil: not counted.
	Metrics *metrics.Metrics
}

// LMTPServer accepts mail by LMTP (RFC 2033) and delivers it with a
// Deliverer, answering each recipient separately after DATA.
type LMTPServer struct {
	d       *Deliverer
	srv     *smtp.Server
	timeout time.Duration
	m       *metrics.Metrics
}

// NewLMTPServer returns an LMTP server delivering through d.
func NewLMTPServer(d *Deliverer, cfg LMTPConfig) *LMTPServer {
	l := &LMTPServer{d: d, timeout: cfg.Timeout, m: cfg.Metrics}
	if l.timeout <= 0 {
		l.timeout = 5 * time.Minute
	}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &lmtpSession{l: l}, nil
	}))
	s.LMTP = true
	s.Domain = cfg.Hostname
	if s.Domain == "" {
		s.Domain, _ = os.Hostname()
		if s.Domain == "" {
			s.Domain = "localhost"
		}
	}
	s.MaxMessageBytes = cfg.MaxMessageBytes
	if s.MaxMessageBytes <= 0 {
		s.MaxMessageBytes = 64 << 20
	}
	s.MaxLineLength = 64 << 10 // RFC 5322 allows 998; be lenient with real mail
	s.MaxRecipients = cfg.MaxRecipients
	if s.MaxRecipients <= 0 {
		s.MaxRecipients = 1000
	}
	s.ReadTimeout = l.timeout
	s.WriteTimeout = l.timeout
	s.EnableSMTPUTF8 = true // bodies are stored as sent; addresses map to user names
	s.ErrorLog = slogLogger{d.log}
	l.srv = s
	return l
}

// Serve accepts connections on ln until Close or Shutdown.
func (l *LMTPServer) Serve(ln net.Listener) error {
	err := l.srv.Serve(ln)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for running sessions to end, until
// ctx is done.
func (l *LMTPServer) Shutdown(ctx context.Context) error {
	err := l.srv.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and closes every connection.
func (l *LMTPServer) Close() error {
	err := l.srv.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Listen opens an LMTP listener: "unix:/path" or an absolute or ./relative
// path is a unix socket (a stale socket file is replaced; the socket is
// made accessible to the owner and group, mode 0660), anything else a TCP
// host:port.
func Listen(addr string) (net.Listener, error) {
	path, isUnix := UnixPath(addr)
	if !isUnix {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen lmtp %s: %w", addr, err)
		}
		return ln, nil
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// A socket left by a previous run: remove it unless someone listens.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen lmtp %s: socket in use", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen lmtp %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen lmtp %s: %w", path, err)
	}
	return ln, nil
}

// UnixPath reports whether addr names a unix socket and returns its path.
func UnixPath(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return p, true
	}
	if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "./") || strings.HasPrefix(addr, "../") {
		return addr, true
	}
	return "", false
}

// lmtpSession is one LMTP connection's transaction state.
type lmtpSession struct {
	l     *LMTPServer
	from  string
	rcpts []Recipient
}

var _ smtp.LMTPSession = (*lmtpSession)(nil)

func (s *lmtpSession) Reset() {
	s.from = ""
	s.rcpts = nil
}

func (s *lmtpSession) Logout() error { return nil }

func (s *lmtpSession) Mail(from string, opts *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *lmtpSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.l.timeout)
	defer cancel()
	r, err := s.l.d.Resolve(ctx, to)
	if err != nil {
		s.l.m.Delivery("lmtp", DeliveryResult(err))
		if errors.Is(err, store.ErrNoSuchUser) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
		}
		s.l.d.log.Error("lmtp: resolving recipient failed", "rcpt", to, "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure looking up the recipient"}
	}
	s.rcpts = append(s.rcpts, r)
	return nil
}

// Data is used only outside LMTP mode; LMTPData answers per recipient.
func (s *lmtpSession) Data(r io.Reader) error {
	var first error
	err := s.LMTPData(r, statusFunc(func(_ string, err error) {
		if first == nil {
			first = err
		}
	}))
	if err != nil {
		return err
	}
	return first
}

type statusFunc func(string, error)

func (f statusFunc) SetStatus(rcpt string, err error) { f(rcpt, err) }

// LMTPData reads the message once and stores one copy per distinct
// recipient, each in its own transaction: a failure for one recipient
// never affects another's copy. A recipient given twice gets one copy and
// the same answer twice.
func (s *lmtpSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	msg, err := io.ReadAll(r)
	if err != nil {
		if errors.Is(err, smtp.ErrDataTooLarge) {
			return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Error reading the message"}
	}
	done := map[string]error{}
	for _, rc := range s.rcpts {
		key := rc.User + "\x00" + rc.Detail + "\x00" + rc.Address
		err, seen := done[key]
		if !seen {
			err = s.deliverOne(rc, msg)
			done[key] = err
		}
		status.SetStatus(rc.Address, err)
	}
	return nil
}

func (s *lmtpSession) deliverOne(rc Recipient, msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.l.timeout)
	defer cancel()
	from, to := s.from, rc.Address
	body := TraceHeaders(msg, &from, &to)
	var res []Result
	var err error
	if rc.Shared {
		var r Result
		if r, err = s.l.d.DeliverShared(ctx, rc.Detail, body); err == nil {
			res = []Result{r}
		}
	} else {
		res, err = s.l.d.DeliverFiltered(ctx, Incoming{User: rc.User, Detail: rc.Detail, Address: rc.Address, From: from, Body: body})
	}
	s.l.m.Delivery("lmtp", DeliveryResult(err))
	if err != nil {
		return s.l.d.smtpError(rc, err)
	}
	logResults(s.l.d.log, "lmtp", rc.User, len(body), res)
	return nil
}

// DeliveryResult names the outcome of one recipient's delivery for the
// deliveries counter: delivered, no_such_user, over_quota, rejected (by
// the user's Sieve script) or failed (a temporary failure, the MTA
// retries).
func DeliveryResult(err error) string {
	switch {
	case err == nil:
		return "delivered"
	case errors.Is(err, store.ErrNoSuchUser):
		return "no_such_user"
	case errors.Is(err, store.ErrOverQuota):
		return "over_quota"
	case errors.As(err, new(*RejectError)):
		return "rejected"
	}
	return "failed"
}

// rejectReply makes a script's reject reason one reply line: line breaks
// become spaces, control characters go, and it is cut at 400 bytes.
func rejectReply(reason string) string {
	r := strings.Join(strings.Fields(strings.Map(func(c rune) rune {
		if c < ' ' || c == 0x7f {
			return ' '
		}
		return c
	}, reason)), " ")
	if len(r) > 400 {
		r = strings.ToValidUTF8(r[:400], "")
	}
	if r == "" {
		r = "Rejected by the recipient's filter"
	}
	return r
}

// smtpError maps a delivery error to the LMTP reply.
func (d *Deliverer) smtpError(rc Recipient, err error) error {
	var rej *RejectError
	switch {
	case errors.As(err, &rej):
		d.log.Info("delivery rejected by sieve", "user", rc.User, "reason", rej.Reason)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: rejectReply(rej.Reason)}
	case errors.Is(err, store.ErrOverQuota):
		d.log.Info("delivery refused: over quota", "user", rc.User, "err", err)
		if d.opts.QuotaTempFail {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox is full"}
		}
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Mailbox is full"}
	case errors.Is(err, store.ErrNoSuchUser):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	d.log.Error("delivery failed", "user", rc.User, "err", err)
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure storing the message; try again later"}
}

// slogLogger adapts slog to go-smtp's Logger.
type slogLogger struct{ log *slog.Logger }

func (s slogLogger) Printf(format string, v ...any) {
	s.log.Warn("lmtp: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}

func (s slogLogger) Println(v ...any) {
	s.log.Warn("lmtp: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
