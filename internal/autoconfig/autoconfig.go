// Package autoconfig serves Mozilla-style mail autoconfiguration
// (clientConfig version 1.1, the format of Thunderbird's ISPDB and of
// draft-ietf-mailmaint-autoconfig): the XML document a mail client fetches
// from https://autoconfig.<domain>/mail/config-v1.1.xml or
// https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml to learn
// which servers, ports and user name to use for an address.
package autoconfig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Paths are the URL paths the handler answers; anything else is 404.
var Paths = []string{
	"/.well-known/autoconfig/mail/config-v1.1.xml",
	"/mail/config-v1.1.xml",
}

// Username modes: what a client logs in with.
const (
	// UsernameLocalPart: "alice" for alice@example.org (tern's users are
	// usually named like that, and LMTP delivers alice@... to "alice").
	UsernameLocalPart = "localpart"
	// UsernameAddress: the whole address, for users created with names
	// like "alice@example.org" (several domains with the same local part).
	UsernameAddress = "address"
)

// Socket types of the format.
const (
	SocketSSL      = "SSL"      // implicit TLS
	SocketSTARTTLS = "STARTTLS" // plain connection upgraded with STARTTLS
)

// Config is what the handler advertises.
type Config struct {
	// Hostname is the public name of the IMAP server (it must match the
	// TLS certificate).
	Hostname string
	// IMAPSPort (implicit TLS) and IMAPPort (STARTTLS) are advertised in
	// that order of preference; 0 leaves one out. One must be set.
	IMAPSPort, IMAPPort int
	// Submission is the SMTP submission server clients send through (tern
	// has none of its own; the format requires one).
	SubmissionHost   string // empty: Hostname
	SubmissionPort   int
	SubmissionSocket string // SocketSTARTTLS or SocketSSL
	// Username is UsernameLocalPart or UsernameAddress.
	Username string
	// DisplayName names the provider in the client; empty: the domain.
	DisplayName string
	// Domains are the mail domains served. A request for an address in
	// another domain gets 404. Empty: any domain.
	Domains []string
}

func (c Config) validate() error {
	var errs []error
	if !ValidDomain(c.Hostname) {
		errs = append(errs, fmt.Errorf("invalid hostname %q", c.Hostname))
	}
	if c.SubmissionHost != "" && !ValidDomain(c.SubmissionHost) {
		errs = append(errs, fmt.Errorf("invalid submission host %q", c.SubmissionHost))
	}
	if c.IMAPSPort == 0 && c.IMAPPort == 0 {
		errs = append(errs, errors.New("no IMAP port to advertise"))
	}
	for _, p := range []int{c.IMAPSPort, c.IMAPPort} {
		if p < 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("invalid port %d", p))
		}
	}
	if c.SubmissionPort < 1 || c.SubmissionPort > 65535 {
		errs = append(errs, fmt.Errorf("invalid submission port %d", c.SubmissionPort))
	}
	if c.SubmissionSocket != SocketSSL && c.SubmissionSocket != SocketSTARTTLS {
		errs = append(errs, fmt.Errorf("invalid submission socket type %q", c.SubmissionSocket))
	}
	if c.Username != UsernameLocalPart && c.Username != UsernameAddress {
		errs = append(errs, fmt.Errorf("invalid username mode %q", c.Username))
	}
	for _, d := range c.Domains {
		if !ValidDomain(d) {
			errs = append(errs, fmt.Errorf("invalid domain %q", d))
		}
	}
	return errors.Join(errs...)
}

// ValidDomain reports whether s is an ASCII host name: dot-separated
// labels of letters, digits, '-' and '_', each 1 to 63 bytes and not
// starting or ending with '-', at most 253 bytes in all.
func ValidDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !validLabel(label) {
			return false
		}
	}
	return true
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Handler answers autoconfig requests.
type Handler struct {
	cfg Config
}

// New returns a handler for cfg, or an error naming what is invalid.
func New(cfg Config) (*Handler, error) {
	if cfg.SubmissionHost == "" {
		cfg.SubmissionHost = cfg.Hostname
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("autoconfig: %w", err)
	}
	cfg.Domains = lowerAll(cfg.Domains)
	return &Handler{cfg: cfg}, nil
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

// ServeHTTP serves the document on Paths to GET and HEAD; other paths get
// 404, other methods 405. The query parameter emailaddress (which
// Thunderbird sends) selects the domain: an address that is not a valid
// address gets 400, one in a domain not served 404. Without it the first
// configured domain is described (404 when none is configured).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !slices.Contains(Paths, r.URL.Path) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	domain, status, msg := h.domainFor(r.URL.Query().Get("emailaddress"))
	if status != http.StatusOK {
		http.Error(w, msg, status)
		return
	}
	body, err := h.document(domain)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(body)
}

// domainFor picks the domain to describe for the emailaddress parameter
// addr, or returns an HTTP status and message saying why there is none.
func (h *Handler) domainFor(addr string) (domain string, status int, msg string) {
	if addr == "" {
		if len(h.cfg.Domains) == 0 {
			return "", http.StatusNotFound, "no emailaddress given and no domains configured"
		}
		return h.cfg.Domains[0], http.StatusOK, ""
	}
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || !ValidDomain(addr[i+1:]) {
		return "", http.StatusBadRequest, "emailaddress is not an address"
	}
	domain = strings.ToLower(addr[i+1:])
	if len(h.cfg.Domains) > 0 && !slices.Contains(h.cfg.Domains, domain) {
		return "", http.StatusNotFound, "domain not served here"
	}
	return domain, http.StatusOK, ""
}

// document renders the clientConfig for domain.
func (h *Handler) document(domain string) ([]byte, error) {
	c := h.cfg
	domains := []string{domain}
	for _, d := range c.Domains {
		if d != domain {
			domains = append(domains, d)
		}
	}
	user := "%EMAILLOCALPART%"
	if c.Username == UsernameAddress {
		user = "%EMAILADDRESS%"
	}
	name := c.DisplayName
	if name == "" {
		name = domain
	}
	p := EmailProvider{ID: domain, Domains: domains, DisplayName: name, DisplayShortName: name}
	if c.IMAPSPort != 0 {
		p.Incoming = append(p.Incoming, newServer("imap", c.Hostname, c.IMAPSPort, SocketSSL, user))
	}
	if c.IMAPPort != 0 {
		p.Incoming = append(p.Incoming, newServer("imap", c.Hostname, c.IMAPPort, SocketSTARTTLS, user))
	}
	p.Outgoing = []Server{newServer("smtp", c.SubmissionHost, c.SubmissionPort, c.SubmissionSocket, user)}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(ClientConfig{Version: "1.1", Provider: p}); err != nil {
		return nil, fmt.Errorf("encode autoconfig: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func newServer(typ, host string, port int, socket, user string) Server {
	return Server{Type: typ, Hostname: host, Port: port, SocketType: socket,
		Authentication: "password-cleartext", Username: user}
}

// ClientConfig is the document's root element.
type ClientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider EmailProvider `xml:"emailProvider"`
}

// EmailProvider describes one provider: its domains and servers, the
// preferred server first.
type EmailProvider struct {
	ID               string   `xml:"id,attr"`
	Domains          []string `xml:"domain"`
	DisplayName      string   `xml:"displayName"`
	DisplayShortName string   `xml:"displayShortName"`
	Incoming         []Server `xml:"incomingServer"`
	Outgoing         []Server `xml:"outgoingServer"`
}

// Server is one incomingServer or outgoingServer. Username may hold the
// placeholders %EMAILADDRESS% and %EMAILLOCALPART%, which the client
// replaces.
type Server struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}
