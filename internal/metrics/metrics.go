// Package metrics holds tern's Prometheus series in a private registry:
// connections, sessions, commands, bytes, logins, deliveries, store
// operation latency and the mailbox index. The admin listener
// (internal/admin) serves them on /metrics.
//
// Every method is safe on a nil *Metrics and then does nothing, so code
// that runs without metrics (tests, tern deliver) needs no checks. The
// series a session touches on every command are created up front
// (Command, Listener), so the hot path only increments: no label lookup,
// no allocation.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every tern series.
const Namespace = "tern"

// Metrics is the set of tern's series and the registry that serves them.
type Metrics struct {
	reg *prometheus.Registry

	connAccepted *prometheus.CounterVec // listener
	connRefused  *prometheus.CounterVec // listener
	connOpen     *prometheus.GaugeVec   // listener, tls
	sessions     [numStates]prometheus.Gauge
	cmdTotal     *prometheus.CounterVec   // command, result
	cmdLatency   *prometheus.HistogramVec // command
	bytesIn      prometheus.Counter
	bytesOut     prometheus.Counter
	logins       [numLoginResults]prometheus.Counter
	deliveries   *prometheus.CounterVec   // proto, result
	storeLatency *prometheus.HistogramVec // op
}

// New returns the metrics in a new private registry, with the Go runtime
// and process collectors registered.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.connAccepted = m.counterVec("connections_accepted_total", "IMAP connections accepted, by listener.", "listener")
	m.connRefused = m.counterVec("connections_refused_total", "IMAP connections refused by the connection limits, by listener.", "listener")
	m.connOpen = m.gaugeVec("connections_open", "IMAP connections open now, by listener and whether TLS is active (implicit or after STARTTLS).", "listener", "tls")
	sessions := m.gaugeVec("sessions", "IMAP sessions open now, by state.", "state")
	for s := StateNotAuthenticated; s < numStates; s++ {
		m.sessions[s] = sessions.WithLabelValues(stateNames[s])
	}
	m.cmdTotal = m.counterVec("commands_total", "IMAP commands answered, by command and tagged result (OK, NO, BAD).", "command", "result")
	m.cmdLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "command_duration_seconds",
		Help:    "Time from a command read to its tagged response, by command (IDLE excluded).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"command"})
	m.reg.MustRegister(m.cmdLatency)
	m.bytesIn = m.counter("received_bytes_total", "Bytes read from IMAP clients (on the wire, TLS included).")
	m.bytesOut = m.counter("sent_bytes_total", "Bytes written to IMAP clients (on the wire, TLS included).")
	logins := m.counterVec("logins_total", "IMAP logins (LOGIN, AUTHENTICATE), by result.", "result")
	for r := LoginSuccess; r < numLoginResults; r++ {
		m.logins[r] = logins.WithLabelValues(loginNames[r])
	}
	m.deliveries = m.counterVec("deliveries_total", "Messages delivered by this process, per recipient, by protocol and result.", "proto", "result")
	m.storeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "store_operation_duration_seconds",
		Help:    "Latency of calls from the server to the store (through the mailbox index), by operation.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"op"})
	m.reg.MustRegister(m.storeLatency)
	return m
}

func (m *Metrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	m.reg.MustRegister(g)
	return g
}

// Registry is the private registry holding every series.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// SessionState is a session's state as counted by the sessions gauge.
type SessionState int

// Session states. StateNone is "not counted" (before start, after logout).
const (
	StateNone SessionState = iota - 1
	StateNotAuthenticated
	StateAuthenticated
	StateSelected
	numStates
)

var stateNames = [numStates]string{"not_authenticated", "authenticated", "selected"}

// SessionMoved moves one session from one state to another in the
// sessions gauge; StateNone on either side starts or ends it.
func (m *Metrics) SessionMoved(from, to SessionState) {
	if m == nil || from == to {
		return
	}
	if from > StateNone && from < numStates {
		m.sessions[from].Dec()
	}
	if to > StateNone && to < numStates {
		m.sessions[to].Inc()
	}
}

// LoginResult is the outcome of one login attempt.
type LoginResult int

// Login outcomes: success; failure (wrong user or password); lockout
// (refused by the failure throttle); limit (right password, refused by a
// connection limit); error (the check itself failed, e.g. the store).
const (
	LoginSuccess LoginResult = iota
	LoginFailure
	LoginLockout
	LoginLimit
	LoginError
	numLoginResults
)

var loginNames = [numLoginResults]string{"success", "failure", "lockout", "limit", "error"}

// Login counts one login attempt.
func (m *Metrics) Login(r LoginResult) {
	if m == nil || r < 0 || r >= numLoginResults {
		return
	}
	m.logins[r].Inc()
}

// Delivery counts one message delivered (or refused) for one recipient.
func (m *Metrics) Delivery(proto, result string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(proto, result).Inc()
}

// AddBytes counts bytes read from (in) and written to (out) clients.
func (m *Metrics) AddBytes(in, out int) {
	if m == nil {
		return
	}
	if in > 0 {
		m.bytesIn.Add(float64(in))
	}
	if out > 0 {
		m.bytesOut.Add(float64(out))
	}
}

// ListenerSeries are the connection series of one listener, created once.
type ListenerSeries struct {
	accepted, refused prometheus.Counter
	open              [2]prometheus.Gauge // [0] plain, [1] TLS
}

// Listener returns the series of the listener called name ("imap",
// "imaps"); nil on a nil *Metrics.
func (m *Metrics) Listener(name string) *ListenerSeries {
	if m == nil {
		return nil
	}
	return &ListenerSeries{
		accepted: m.connAccepted.WithLabelValues(name),
		refused:  m.connRefused.WithLabelValues(name),
		open:     [2]prometheus.Gauge{m.connOpen.WithLabelValues(name, "false"), m.connOpen.WithLabelValues(name, "true")},
	}
}

func tlsIndex(tls bool) int {
	if tls {
		return 1
	}
	return 0
}

// Accepted counts a connection admitted; it is open from now on.
func (l *ListenerSeries) Accepted(tls bool) {
	if l == nil {
		return
	}
	l.accepted.Inc()
	l.open[tlsIndex(tls)].Inc()
}

// Refused counts a connection refused by the connection limits.
func (l *ListenerSeries) Refused() {
	if l != nil {
		l.refused.Inc()
	}
}

// StartedTLS moves an open connection from plain to TLS (STARTTLS).
func (l *ListenerSeries) StartedTLS() {
	if l == nil {
		return
	}
	l.open[0].Dec()
	l.open[1].Inc()
}

// Closed counts an open connection closed.
func (l *ListenerSeries) Closed(tls bool) {
	if l != nil {
		l.open[tlsIndex(tls)].Dec()
	}
}

// CommandSeries are the series of one command name, created once so that
// counting a command costs two atomic adds and a histogram observation.
type CommandSeries struct {
	ok, no, bad prometheus.Counter
	latency     prometheus.Observer
}

// Command returns the series of the command called name (for example
// "FETCH", "UID FETCH"); nil on a nil *Metrics.
func (m *Metrics) Command(name string) *CommandSeries {
	if m == nil {
		return nil
	}
	return &CommandSeries{
		ok:      m.cmdTotal.WithLabelValues(name, "OK"),
		no:      m.cmdTotal.WithLabelValues(name, "NO"),
		bad:     m.cmdTotal.WithLabelValues(name, "BAD"),
		latency: m.cmdLatency.WithLabelValues(name),
	}
}

// Done counts one command answered with result ("OK", "NO" or "BAD";
// anything else is not counted) after d. A negative d records no latency.
func (s *CommandSeries) Done(result string, d time.Duration) {
	if s == nil {
		return
	}
	switch result {
	case "OK":
		s.ok.Inc()
	case "NO":
		s.no.Inc()
	case "BAD":
		s.bad.Inc()
	default:
		return
	}
	if d >= 0 {
		s.latency.Observe(d.Seconds())
	}
}
