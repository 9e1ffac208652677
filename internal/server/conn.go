package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-imap/tern/imap"
	"github.com/tern-imap/tern/internal/proxied"
	"github.com/tern-imap/tern/internal/store"
)

type state int

const (
	stateNotAuth state = iota
	stateAuth
	stateSelected
	stateLogout
)

// conn is one client connection. Only its own goroutine touches its fields,
// except quit/waiting used by Shutdown.
type conn struct {
	srv         *Server
	nc          net.Conn
	isTLS       bool
	implicitTLS bool // accepted on the IMAPS listener
	remote      net.Addr
	log         *slog.Logger
	// balancerCheck: the load balancer's own connection (a PROXY LOCAL
	// or UNKNOWN header, its health check); such a session that never
	// logged in ends at debug level, not info. loggedIn: it ever did.
	balancerCheck, loggedIn bool

	// The session as observed (observe.go): its id, start, commands read,
	// bytes on the wire, why it ended; baseLog is log without the user.
	id        string
	started   time.Time
	baseLog   *slog.Logger
	metered   *meteredConn
	commands  int
	endReason string
	result    string // kind of the last tagged response ("OK", "NO", "BAD")

	br *bufio.Reader
	bw *bufio.Writer
	// bodyBuffer says bw is a body buffer (useBodyBuffer).
	bodyBuffer bool
	w          *imap.Writer
	r          *imap.Reader

	state state
	user  string
	acct  store.Account
	// others are other users' accounts this session opened to reach
	// mailboxes they shared (acl.go), by owner; closed with the session.
	others map[string]store.Account

	// Connection limits (connlimit.go): the client's address key, and the
	// user this connection is counted for once logged in (under srv.mu).
	addrKey     string
	countedUser string

	// Extensions enabled with ENABLE (or implicitly).
	rev2      bool
	utf8      bool
	condstore bool
	qresync   bool
	uidOnly   bool // RFC 9586 (uidonly.go)

	sel *selected
	// tcp is the client's TCP connection under any TLS (nil for other
	// transports), for sendfile on plaintext connections (sendfile.go).
	tcp *net.TCPConn

	notify *notifyState // NOTIFY registration (notify.go); nil without NOTIFY

	// compress is nc once COMPRESS DEFLATE is active (compress.go).
	compress *compressConn

	// cmd is the command being executed (for tagged responses).
	cmd *imap.Command

	// Bounds on abuse (limits.go): the end of the time allowed before
	// login, commands read before login, consecutive BAD responses.
	preAuthDeadline time.Time
	preAuthCmds     int
	bads            int
	// syncFailures counts commands in a row whose updates could not be
	// sent because the store failed (syncFailed).
	syncFailures int
	// notifyFailures counts NOTIFY deliveries in a row between commands
	// that the store failed (notifyFailed).
	notifyFailures int

	quit     chan struct{}
	quitOnce sync.Once
	waiting  atomic.Bool // blocked reading the next command
	woken    atomic.Bool // a change signal interrupted a read (IDLE)

	// waitDeadline ends the wait for the next command (set when it
	// starts, kept when the connection parks).
	waitDeadline time.Time
	// idle is the IDLE command in progress (idle.go), nil outside IDLE.
	idle *idleWait
	// Parking (park.go): worked is set when the goroutine ran a command
	// (its stack may have grown); resumed holds the result of the read a
	// parked connection waited on, for the session loop to take.
	worked  bool
	resumed parkedRead

	// While a connection waits for input it holds no bufio buffers: it
	// reads into small and hands what arrived to a pooled reader through
	// prefix.
	small  [256]byte
	prefix *prefixReader
}

// writeBufferSize is the output buffer of a connection while it runs a
// command (an idle connection holds none: it returns its buffers to the
// pools). 64 KiB sends most FETCH responses in one write: against 8 KiB,
// 1.39 instead of 1.74 writes per random BODY[] fetch, and 6-9 % less
// server CPU per fetch (ternbench read, docs/PERFORMANCE.md).
const writeBufferSize = 64 << 10

// bodyBufferSize is the output buffer of a FETCH of message bodies
// (useBodyBuffer): a message up to about this size leaves with its FETCH
// line and the tagged OK in one write instead of 64 KiB at a time, which
// saves the server system calls and the client reads and wake-ups
// (ternbench read: 11 % less server and 13 % less client CPU per fetch,
// docs/PERFORMANCE.md).
const bodyBufferSize = 1 << 20

// bodyBuffers is how many connections may hold a body buffer at once, so
// that they take at most bodyBuffers × bodyBufferSize (32 MiB); the
// others keep their 64 KiB buffer.
const bodyBuffers = 32

// Buffer pools: an idle connection returns its buffers here.
var (
	brPool   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	bwPool   = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
	bodyPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bodyBufferSize) }}
	// bodySlots holds a token per body buffer in use.
	bodySlots = make(chan struct{}, bodyBuffers)
)

// useBodyBuffer gives the connection a body buffer for the command under
// way, if its output buffer is empty and one is free; endBodyBuffer,
// release and dropBuffers give it back.
func (c *conn) useBodyBuffer() {
	if c.bw == nil || c.bodyBuffer || c.bw.Buffered() > 0 || c.bw.Flush() != nil {
		return // (Flush of nothing only reports an earlier write's error, kept)
	}
	select {
	case bodySlots <- struct{}{}:
	default:
		return
	}
	c.putWriter()
	c.setWriter(bodyPool.Get().(*bufio.Writer), true)
}

// setWriter makes bw (from bwPool, or bodyPool when body) the output
// buffer.
func (c *conn) setWriter(bw *bufio.Writer, body bool) {
	bw.Reset(c.nc)
	c.bw, c.w.Writer, c.bodyBuffer = bw, bw, body
}

// putWriter returns the output buffer to its pool (unflushed).
func (c *conn) putWriter() {
	c.bw.Reset(nil)
	if c.bodyBuffer {
		bodyPool.Put(c.bw)
		<-bodySlots
		c.bodyBuffer = false
	} else {
		bwPool.Put(c.bw)
	}
	c.bw = nil
}

// prefixReader returns pre, then reads from r.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// errLogout ends the session after a response was written.
var errLogout = errors.New("logout")

// errClose ends the session at once, without a response.
var errClose = errors.New("close connection")

func newConn(s *Server, nc net.Conn, implicitTLS bool) *conn {
	tcp := tcpConn(nc)
	check := proxied.BalancerCheck(nc)
	mc := &meteredConn{Conn: nc, m: s.cfg.Metrics}
	nc = &writeTimeoutConn{Conn: mc, timeout: s.cfg.WriteTimeout}
	c := &conn{
		srv:         s,
		nc:          nc,
		tcp:         tcp,
		implicitTLS: implicitTLS,
		metered:     mc,
		remote:      nc.RemoteAddr(),
		quit:        make(chan struct{}),

		balancerCheck: check,
	}
	c.log, c.baseLog = s.log, s.log // startSession adds the session id
	if implicitTLS {
		c.nc = tls.Server(nc, s.cfg.TLS())
		c.isTLS = true
	}
	c.setupIO()
	return c
}

// tcpConn is nc's TCP connection, or nil: nc itself, or the one under a
// connection whose addresses came from a load balancer's PROXY header
// (internal/proxied, which reads nothing past the header, so the TCP
// connection can be written and polled directly).
func tcpConn(nc net.Conn) *net.TCPConn {
	if p, ok := nc.(*proxied.Conn); ok {
		nc = p.NetConn()
	}
	tcp, _ := nc.(*net.TCPConn)
	return tcp
}

// setupIO (re)creates the codec over c.nc (at start, after STARTTLS and
// after COMPRESS).
func (c *conn) setupIO() {
	c.dropBuffers()
	c.w = imap.NewWriter(nil)
	c.w.UTF8 = c.utf8
	c.useSendfile()
	c.r = imap.NewReader(nil, imap.ReaderOptions{
		MaxLine:    c.srv.cfg.MaxLineLength,
		MaxLiteral: c.srv.cfg.MaxLiteralSize,
		Continue: func() error {
			c.w.WriteString("+ Ready for literal data\r\n")
			if err := c.flush(); err != nil {
				return err
			}
			c.endBodyBuffer()
			return nil
		},
	})
	c.acquire(nil)
}

// acquire takes buffers from the pools; pre is input already read.
func (c *conn) acquire(pre []byte) {
	if c.br == nil {
		br := brPool.Get().(*bufio.Reader)
		if len(pre) > 0 {
			c.prefix = &prefixReader{pre: pre, r: c.nc}
			br.Reset(c.prefix)
		} else {
			c.prefix = nil
			br.Reset(c.nc)
		}
		c.br = br
		c.r.Reset(br)
	}
	if c.bw == nil {
		c.setWriter(bwPool.Get().(*bufio.Writer), false)
	}
}

// release flushes and returns the buffers to the pools, unless input is
// still buffered.
func (c *conn) release() error {
	if c.bw != nil {
		if err := c.flush(); err != nil {
			return err
		}
		c.putWriter()
		c.w.Writer = nil
		if c.compress != nil {
			c.compress.release()
		}
	}
	if c.br != nil && c.br.Buffered() == 0 && (c.prefix == nil || len(c.prefix.pre) == 0) {
		c.br.Reset(nil)
		brPool.Put(c.br)
		c.br = nil
		c.prefix = nil
		c.r.Reset(nil)
	}
	return nil
}

// dropBuffers returns buffers without flushing (connection end, STARTTLS).
func (c *conn) dropBuffers() {
	if c.bw != nil {
		c.putWriter()
	}
	if c.compress != nil {
		c.compress.release()
	}
	if c.br != nil {
		c.br.Reset(nil)
		brPool.Put(c.br)
		c.br = nil
	}
	c.prefix = nil
}

// waitInput blocks until the client sends something, holding no buffers
// while it waits. The read deadline must be set by the caller.
func (c *conn) waitInput() error {
	if c.inputBuffered() {
		return nil
	}
	if err := c.release(); err != nil {
		return err
	}
	if c.br != nil {
		return nil
	}
	n, err := c.nc.Read(c.small[:])
	return c.gotInput(n, err)
}

// inputBuffered reports whether input is buffered already.
func (c *conn) inputBuffered() bool {
	return c.br != nil && (c.br.Buffered() > 0 || (c.prefix != nil && len(c.prefix.pre) > 0))
}

// gotInput takes the buffers back after a read into small that returned
// n bytes and err; nil means there is input to read.
func (c *conn) gotInput(n int, err error) error {
	if n > 0 {
		c.acquire(c.small[:n])
		return nil
	}
	c.acquire(nil)
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// shutdown asks the connection to say BYE and end. Called with srv.mu held.
func (c *conn) shutdown() {
	c.quitOnce.Do(func() {
		close(c.quit)
		if c.waiting.Load() {
			c.nc.SetReadDeadline(time.Now())
		}
	})
}

func (c *conn) shuttingDown() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// serve runs a new session: the TLS handshake and the greeting, then its
// commands (run).
func (c *conn) serve(ctx context.Context) {
	c.run(c.startSession(ctx), true)
}

// greet completes the TLS handshake of an IMAPS connection and sends the
// greeting; false means the session already ended.
func (c *conn) greet(ctx context.Context) bool {
	c.preAuthDeadline = time.Now().Add(c.srv.cfg.PreAuthTimeout)
	if tc, ok := c.nc.(*tls.Conn); ok {
		c.nc.SetDeadline(c.preAuthDeadline)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.ending(endTLSFailed)
			c.log.Debug("tls handshake failed", "err", err)
			return false
		}
		c.nc.SetDeadline(time.Time{})
	}
	c.w.WriteString("* OK [CAPABILITY ")
	c.w.WriteString(c.capabilities())
	c.w.WriteString("] tern ready\r\n")
	if err := c.flush(); err != nil {
		c.ending(endWriteError)
		return false
	}
	return true
}

// run is the body of the session's goroutine: it greets the client if
// greet is set, then runs the session until it ends, then closes the
// connection (finish), or until the connection parks (park.go): then a new
// goroutine goes on with the session and this one returns.
func (c *conn) run(ctx context.Context, greet bool) {
	ended := true
	defer func() {
		if v := recover(); v != nil {
			c.ending(endPanic)
			c.log.Error("panic in session; closing connection", "panic", v, "stack", string(debug.Stack()))
			c.acquire(nil) // a waiting connection holds no buffers
			c.w.WriteString("* BYE Internal server error\r\n")
			c.flush()
		}
		if ended {
			c.finish()
		}
	}()
	if greet && !c.greet(ctx) {
		return
	}
	for {
		var next loopStep
		if c.idle != nil {
			next = c.idleStep(ctx) // idle.go
		} else {
			next = c.commandStep(ctx)
		}
		switch next {
		case stepEnd:
			return
		case stepPark:
			ended = false
			go c.resume(ctx)
			return
		}
	}
}

// finish ends the session: it closes what the session opened and the
// connection, and takes the connection off the server's books.
func (c *conn) finish() {
	c.closeMailState()
	c.nc.Close()
	c.dropBuffers()
	c.endSession()
	c.srv.connEnded(c)
}

// loopStep is what the session loop does after one step.
type loopStep int

const (
	stepNext loopStep = iota // go on
	stepEnd                  // the session ended
	stepPark                 // wait for input on a new goroutine (park.go)
)

// commandStep waits for the client's next command and runs it.
func (c *conn) commandStep(ctx context.Context) loopStep {
	var err error
	if c.resumed.ok {
		err = c.resumeInput() // the read a parked connection waited on
	} else {
		if !c.readyToWait() {
			return stepEnd
		}
		err = c.waitCommand(ctx, c.waitDeadline) // waitInput, delivering NOTIFY events (notify.go)
		if errors.Is(err, errPark) {
			return stepPark
		}
	}
	c.waiting.Store(false)
	c.waitDeadline = time.Time{}
	var cmd *imap.Command
	if err == nil {
		cmd, err = c.r.ReadCommand()
	}
	if err != nil {
		return c.readFailed(err)
	}
	return c.runCommand(ctx, cmd)
}

// readyToWait checks what ends a session between commands (shutdown, too
// much bad input) and sets the deadline of the wait; false means the
// session ended.
func (c *conn) readyToWait() bool {
	if c.shuttingDown() {
		c.byeShutdown()
		return false
	}
	if msg := c.overLimit(); msg != "" {
		c.ending(endAbuse)
		c.bye(msg)
		return false
	}
	c.waitDeadline = time.Now().Add(c.srv.cfg.IdleTimeout)
	if c.state == stateNotAuth {
		c.waitDeadline = c.preAuthDeadline
	}
	c.waiting.Store(true) // waitCommand sets the read deadline
	if c.shuttingDown() {
		c.byeShutdown()
		return false
	}
	return true
}

// readFailed answers a command that could not be read: a tagged BAD (or NO)
// for a parse error, or the end of the session (endRead).
func (c *conn) readFailed(err error) loopStep {
	var pe *imap.ParseError
	if !errors.As(err, &pe) {
		c.endRead(err)
		return stepEnd
	}
	if c.shuttingDown() {
		c.byeShutdown()
		return stepEnd
	}
	c.commands++
	tag := pe.Tag
	if tag == "" {
		tag = "*"
	}
	kind := " BAD "
	if pe.TooBig || strings.HasPrefix(pe.Msg, "[BADCHARSET") {
		kind = " NO "
	}
	msg := sanitize(pe.Msg)
	if pe.TooBig && !strings.HasPrefix(msg, "[") {
		msg = "[TOOBIG] " + msg
	}
	c.w.WriteString(tag)
	c.w.WriteString(kind)
	c.w.WriteString(msg)
	c.w.CRLF()
	c.bads++
	c.srv.obs.invalid.Done(strings.TrimSpace(kind), -1)
	if pe.Fatal {
		c.ending(endBadInput)
		c.w.WriteString("* BYE Too much bad input\r\n")
		c.flush()
		return stepEnd
	}
	if c.flush() != nil {
		c.ending(endWriteError)
		return stepEnd
	}
	return stepNext
}

// runCommand runs a command that was read. IDLE goes on in the session
// loop (idleStep) and is completed there.
func (c *conn) runCommand(ctx context.Context, cmd *imap.Command) loopStep {
	c.nc.SetReadDeadline(time.Time{})
	if c.state == stateNotAuth {
		c.preAuthCmds++
	}
	c.commands++
	c.result = ""
	c.worked = true
	start := time.Now()
	err := c.dispatch(ctx, cmd)
	if errors.Is(err, errIdling) {
		c.idle.start = start
		return stepNext
	}
	return c.commandEnded(cmd, start, err)
}

// commandEnded counts a command whose response is written and sends it;
// err is what the command returned after its tagged response (complete).
func (c *conn) commandEnded(cmd *imap.Command, start time.Time, err error) loopStep {
	c.commandDone(cmd, start)
	if errors.Is(err, errLogout) {
		c.endLogout()
		c.flush()
		return stepEnd
	}
	if err != nil {
		c.ending(endConnError)
		c.log.Debug("connection ended", "err", err)
		return stepEnd
	}
	if c.nextCommandWaiting() {
		return stepNext // this response goes out with the next one's
	}
	if err := c.flush(); err != nil {
		c.ending(endWriteError)
		return stepEnd
	}
	c.endBodyBuffer()
	return stepNext
}

// endBodyBuffer gives a body buffer back once its output is sent (callers
// flush first): the buffer is for commands that run back to back, not
// for a wait for the client (the next command's rest, a literal, an
// AUTHENTICATE response), which gets the ordinary buffer.
func (c *conn) endBodyBuffer() {
	if c.bodyBuffer && c.bw.Buffered() == 0 {
		c.putWriter()
		c.acquire(nil)
	}
}

// nextCommandWaiting reports whether a whole line of the client's next
// command is buffered already: a client that pipelines (imaptest sends
// most commands that way). The response then goes out with the next
// command's in one write instead of a write each, as Dovecot corks its
// output. Every wait for the client inside a command flushes first (a
// literal's continuation request, AUTHENTICATE's, IDLE's), and the last
// command of a batch finds nothing buffered and flushes, so no response
// waits for input that cannot come.
func (c *conn) nextCommandWaiting() bool {
	if c.br == nil {
		return false
	}
	if c.prefix != nil && bytes.IndexByte(c.prefix.pre, '\n') >= 0 {
		return true
	}
	buf, _ := c.br.Peek(c.br.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

// endRead ends the session after reading a command failed (not a parse
// error): shutdown, the idle timer, the client gone, or an I/O error.
func (c *conn) endRead(err error) {
	if c.shuttingDown() {
		c.byeShutdown()
		return
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		c.ending(endIdleTimeout)
		c.bye("Autologout; idle for too long")
	case errors.Is(err, io.EOF):
		c.ending(endClientClosed)
	default:
		c.ending(endReadError)
		c.log.Debug("read command", "err", err)
	}
}

// endLogout records why a command ended the session: LOGOUT, or the
// server (a storage failure, the selected mailbox deleted).
func (c *conn) endLogout() {
	if c.state == stateLogout {
		c.ending(endLogout)
	} else {
		c.ending(endServerEnded)
	}
}

// byeShutdown ends the session for the server's shutdown.
func (c *conn) byeShutdown() {
	c.ending(endShutdown)
	c.bye("Server shutting down")
}

func (c *conn) bye(msg string) {
	c.acquire(nil)
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.w.WriteString("* BYE ")
	c.w.WriteString(msg)
	c.w.CRLF()
	c.flush()
}

// sanitize keeps a message on one line.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

// respError is a tagged NO/BAD a handler wants to send.
type respError struct {
	kind string // "NO" or "BAD"
	code string // response code without brackets, may be ""
	text string
}

func (e *respError) Error() string { return e.kind + " " + e.text }

func no(code, text string) error  { return &respError{"NO", code, text} }
func bad(code, text string) error { return &respError{"BAD", code, text} }

// handler runs one command. It returns nil for OK (the dispatcher writes
// "tag OK cmd completed" unless the handler wrote its own via okCode), a
// *respError, errLogout, or an I/O error that ends the connection.
type handler func(ctx context.Context, c *conn, cmd *imap.Command) error

type commandSpec struct {
	fn     handler
	states uint8 // bitmask of allowed states
}

const (
	inNotAuth  = 1 << stateNotAuth
	inAuth     = 1 << stateAuth
	inSelected = 1 << stateSelected
	inAny      = inNotAuth | inAuth | inSelected
	inLoggedIn = inAuth | inSelected
)

var commands map[string]commandSpec

func init() {
	commands = map[string]commandSpec{
		"CAPABILITY":   {cmdCapability, inAny},
		"NOOP":         {cmdNoop, inAny},
		"LOGOUT":       {cmdLogout, inAny},
		"ID":           {cmdID, inAny},
		"STARTTLS":     {cmdStartTLS, inNotAuth},
		"LOGIN":        {cmdLogin, inNotAuth},
		"AUTHENTICATE": {cmdAuthenticate, inNotAuth},
		"ENABLE":       {cmdEnable, inLoggedIn},
		"SELECT":       {cmdSelect, inLoggedIn},
		"EXAMINE":      {cmdSelect, inLoggedIn},
		"CREATE":       {cmdCreate, inLoggedIn},
		"DELETE":       {cmdDelete, inLoggedIn},
		"RENAME":       {cmdRename, inLoggedIn},
		"SUBSCRIBE":    {cmdSubscribe, inLoggedIn},
		"UNSUBSCRIBE":  {cmdSubscribe, inLoggedIn},
		"LIST":         {cmdList, inLoggedIn},
		"LSUB":         {cmdList, inLoggedIn},
		"NAMESPACE":    {cmdNamespace, inLoggedIn},
		"STATUS":       {cmdStatus, inLoggedIn},
		"APPEND":       {cmdAppend, inLoggedIn},
		"IDLE":         {cmdIdle, inLoggedIn},
		"CHECK":        {cmdCheck, inSelected},
		"CLOSE":        {cmdClose, inSelected},
		"UNSELECT":     {cmdClose, inSelected},
		"EXPUNGE":      {cmdExpunge, inSelected},
		"SEARCH":       {cmdSearch, inSelected},
		"ESEARCH":      {cmdESearch, inLoggedIn}, // RFC 7377 (multisearch.go)
		"FETCH":        {cmdFetch, inSelected},
		"STORE":        {cmdStore, inSelected},
		"COPY":         {cmdCopy, inSelected},
		"MOVE":         {cmdCopy, inSelected},
		"GETQUOTA":     {cmdGetQuota, inLoggedIn},
		"GETQUOTAROOT": {cmdGetQuotaRoot, inLoggedIn},
		"SORT":         {cmdSort, inSelected},
		"THREAD":       {cmdThread, inSelected},
		"CANCELUPDATE": {cmdCancelUpdate, inSelected},
		"NOTIFY":       {cmdNotify, inLoggedIn},
		// RFC 8437 (unauth.go)
		"UNAUTHENTICATE": {cmdUnauthenticate, inLoggedIn},
		"REPLACE":        {cmdReplace, inSelected}, // RFC 8508 (replace.go)
		"GETMETADATA":    {cmdGetMetadata, inLoggedIn},
		"SETMETADATA":    {cmdSetMetadata, inLoggedIn},
		"COMPRESS":       {cmdCompress, inLoggedIn},
		// RFC 4314 (acl.go)
		"SETACL":     {cmdSetACL, inLoggedIn},
		"DELETEACL":  {cmdSetACL, inLoggedIn},
		"GETACL":     {cmdGetACL, inLoggedIn},
		"LISTRIGHTS": {cmdListRights, inLoggedIn},
		"MYRIGHTS":   {cmdMyRights, inLoggedIn},
		"SETQUOTA":   {cmdSetQuota, inLoggedIn},
		// RFC 4467, 5524 (urlauth.go)
		"GENURLAUTH": {cmdGenURLAuth, inLoggedIn},
		"RESETKEY":   {cmdResetKey, inLoggedIn},
		"URLFETCH":   {cmdURLFetch, inLoggedIn},
	}
}

func (c *conn) dispatch(ctx context.Context, cmd *imap.Command) (err error) {
	c.cmd = cmd
	spec, ok := commands[cmd.Name]
	if !ok {
		c.tagged("BAD", "", "Unknown command")
		return nil
	}
	if spec.states&(1<<c.state) == 0 {
		switch c.state {
		case stateNotAuth:
			c.tagged("BAD", "", "Log in first")
		case stateAuth:
			c.tagged("BAD", "", "Select a mailbox first")
		default:
			c.tagged("BAD", "", "Command not valid in this state")
		}
		return nil
	}
	if c.uidOnly && usesSeqNumbers(cmd) {
		c.tagged("BAD", "UIDREQUIRED", "Message sequence numbers are not allowed after ENABLE UIDONLY")
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			c.ending(endPanic)
			c.log.Error("panic in command handler", "command", cmd.Name, "panic", v, "stack", string(debug.Stack()))
			c.w.WriteString("* BYE Internal server error\r\n")
			err = fmt.Errorf("panic in %s: %v", cmd.Name, v)
		}
	}()
	c.trimOthers()
	if err = c.recheckRights(ctx, cmd); err == nil {
		err = spec.fn(ctx, c, cmd)
	}
	if errors.Is(err, errIdling) {
		return err
	}
	return c.complete(ctx, cmd, err)
}

// complete writes the tagged response of a command whose handler returned
// err, after the updates the command may send (syncAfter). It returns nil,
// errLogout (the session ends after the response) or a connection error.
func (c *conn) complete(ctx context.Context, cmd *imap.Command, err error) error {
	var re *respError
	switch {
	case err == nil:
		// The command is done: a failure to send the updates after it does
		// not change its answer.
		err = c.syncAfter(ctx, cmd)
		if err != nil && !errors.Is(err, errLogout) {
			return err
		}
		c.tagged("OK", "", cmdName(cmd)+" completed")
	case errors.As(err, &re):
		err = nil
		if re.kind == "NO" {
			// Pending updates may be sent with a NO as well.
			err = c.syncAfter(ctx, cmd)
			if err != nil && !errors.Is(err, errLogout) {
				return err
			}
		}
		c.tagged(re.kind, re.code, re.text)
	case errors.Is(err, errOKSent):
		err = nil
	case errors.Is(err, errLogout):
	default:
		if isConnError(err) {
			return err
		}
		if isDiskFull(err) {
			c.log.Error("out of disk space", "command", cmd.Name, "user", c.user, "err", err)
			c.tagged("NO", "OVERQUOTA", "Not enough disk space on the server; try again later")
			return nil
		}
		if store.Unavailable(err) {
			c.log.Error("mail storage unavailable", "command", cmd.Name, "user", c.user, "err", err)
			c.tagged("NO", "UNAVAILABLE", "Mail storage is unavailable; try again later")
			return nil
		}
		c.log.Error("command failed", "command", cmd.Name, "user", c.user, "err", err)
		c.tagged("NO", "SERVERBUG", "Internal error; try again later")
		err = nil
	}
	return err
}

// errOKSent means the handler already wrote the tagged response.
var errOKSent = errors.New("tagged response sent")

func isConnError(err error) bool {
	if errors.Is(err, errClose) {
		return true // e.g. a body read that failed half-way through a literal
	}
	if store.Unavailable(err) {
		return false // the database's connection, not the client's
	}
	// *net.OpError, not net.Error: a storage error wrapping a
	// syscall.Errno satisfies net.Error too.
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

func cmdName(cmd *imap.Command) string {
	if cmd.UID {
		return "UID " + cmd.Name
	}
	return cmd.Name
}

// tagged writes the tagged completion response.
func (c *conn) tagged(kind, code, text string) {
	c.countBad(kind)
	c.result = kind
	c.w.WriteString(c.cmd.Tag)
	c.w.SP()
	c.w.WriteString(kind)
	c.w.SP()
	if code != "" {
		c.w.WriteByte('[')
		c.w.WriteString(code)
		c.w.WriteString("] ")
	}
	c.w.WriteString(text)
	c.w.CRLF()
}

// okCode finishes a command with "tag OK [code] text".
func (c *conn) okCode(ctx context.Context, code, text string) error {
	err := c.syncAfter(ctx, c.cmd)
	if err != nil && !errors.Is(err, errLogout) {
		return err
	}
	c.tagged("OK", code, text)
	if err != nil {
		return err // errLogout: the session ends after the tagged OK
	}
	return errOKSent
}

// maxSyncFailures is how many commands in a row may fail to bring the
// selected mailbox up to date before the session is ended.
const maxSyncFailures = 3

// syncAfter sends the pending updates at the end of a command (sync). The
// command's own work is done by then, so a storage error here never
// replaces its tagged response: see syncFailed. It returns nil, errLogout
// (the session must end: "* BYE" was written; the caller still writes the
// tagged response) or a connection error.
func (c *conn) syncAfter(ctx context.Context, cmd *imap.Command) error {
	if c.sel == nil {
		return nil
	}
	err := c.sync(ctx, allowExpunge(cmd))
	if err == nil {
		c.syncFailures = 0
		return nil
	}
	return c.syncFailed(cmd, err)
}

// syncFailed handles an error from sync. A storage error is logged at
// error level and the updates stay pending, to be retried at the next
// command; the session goes on unless it cannot: its database is unusable
// (storageUnusable) or the updates failed maxSyncFailures times in a row.
// Then it writes "* BYE" and returns errLogout. A connection error (or the
// errLogout of a deleted mailbox) is returned as is.
func (c *conn) syncFailed(cmd *imap.Command, err error) error {
	if errors.Is(err, errLogout) || isConnError(err) {
		return err
	}
	c.syncFailures++
	if c.sel != nil {
		c.sel.dirty = true
	}
	end := storageUnusable(err) || c.syncFailures >= maxSyncFailures
	c.log.Error("sending mailbox updates failed", "command", cmd.Name, "user", c.user,
		"err", err, "failures_in_a_row", c.syncFailures, "ending_session", end)
	if end {
		c.w.WriteString("* BYE [UNAVAILABLE] Server storage error; please reconnect later\r\n")
		return errLogout
	}
	return nil
}

// allowExpunge reports whether EXPUNGE responses may be sent at the end of
// cmd (RFC 9051 §7.5.2: not during FETCH, STORE, SEARCH; the UID forms may).
func allowExpunge(cmd *imap.Command) bool {
	if cmd.UID {
		return true
	}
	switch cmd.Name {
	case "FETCH", "STORE", "SEARCH", "SORT", "THREAD":
		return false
	}
	return true
}

func (c *conn) capabilities() string {
	var b strings.Builder
	b.WriteString("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE UNAUTHENTICATE")
	if c.state == stateNotAuth {
		if !c.isTLS && c.srv.cfg.TLS != nil {
			b.WriteString(" STARTTLS")
		}
		if c.authAllowed() {
			b.WriteString(" AUTH=PLAIN")
		} else {
			b.WriteString(" LOGINDISABLED")
		}
		return b.String()
	}
	b.WriteString(" NAMESPACE UNSELECT UIDPLUS MOVE SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS CHILDREN STATUS=SIZE ESEARCH SEARCHRES BINARY UTF8=ACCEPT CONDSTORE QRESYNC OBJECTID SAVEDATE MULTIAPPEND NOTIFY CATENATE REPLACE UIDONLY PREVIEW MULTISEARCH SEARCH=FUZZY")
	fmt.Fprintf(&b, " APPENDLIMIT=%d", c.srv.cfg.MaxLiteralSize)
	b.WriteString(quotaCapabilities)
	b.WriteString(sortCapabilities)
	b.WriteString(contextCapabilities)
	b.WriteString(metadataCapabilities)
	b.WriteString(aclCapabilities)
	b.WriteString(c.imapSieveCapability())
	b.WriteString(urlauthCapabilities)
	if c.compress == nil {
		b.WriteString(" COMPRESS=DEFLATE")
	}
	return b.String()
}

// enableCondstore turns CONDSTORE on (RFC 7162 §3.1: any CONDSTORE-enabling
// command does). Enabled while a mailbox is selected, it tells the client
// the mailbox's HIGHESTMODSEQ at once.
func (c *conn) enableCondstore() {
	if c.condstore {
		return
	}
	c.condstore = true
	if c.sel != nil {
		c.w.WriteString("* OK [HIGHESTMODSEQ ")
		c.w.Number(c.sel.modSeq)
		c.w.WriteString("] Highest\r\n")
	}
}

func (c *conn) authAllowed() bool {
	return c.isTLS || c.srv.cfg.InsecureAuth
}

// expungeResponse etc. live in select.go; closeSelected too.

func cmdCapability(ctx context.Context, c *conn, cmd *imap.Command) error {
	c.w.WriteString("* CAPABILITY ")
	c.w.WriteString(c.capabilities())
	c.w.CRLF()
	return nil
}

func cmdNoop(ctx context.Context, c *conn, cmd *imap.Command) error {
	return nil
}

func cmdCheck(ctx context.Context, c *conn, cmd *imap.Command) error {
	return nil
}

func cmdLogout(ctx context.Context, c *conn, cmd *imap.Command) error {
	c.w.WriteString("* BYE Logging out\r\n")
	c.tagged("OK", "", "LOGOUT completed")
	c.setState(stateLogout)
	return errLogout
}
