package autoconfig

import (
	"encoding/xml"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// Independent of the package's types: the element names as the format
// (Thunderbird's readFromXML, the ISPDB files) spells them.
type docT struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID          string    `xml:"id,attr"`
		Domains     []string  `xml:"domain"`
		DisplayName string    `xml:"displayName"`
		ShortName   string    `xml:"displayShortName"`
		Incoming    []serverT `xml:"incomingServer"`
		Outgoing    []serverT `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type serverT struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           string `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username"`
}

func baseConfig() Config {
	return Config{
		Hostname:         "mail.example.org",
		IMAPSPort:        993,
		IMAPPort:         143,
		SubmissionHost:   "smtp.example.org",
		SubmissionPort:   587,
		SubmissionSocket: SocketSTARTTLS,
		Username:         UsernameLocalPart,
		Domains:          []string{"example.org", "Example.NET"},
	}
}

// start serves cfg over real HTTP on a loopback port.
func start(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func configURL(base, path, addr string) string {
	u := base + path
	if addr != "" {
		u += "?emailaddress=" + url.QueryEscape(addr)
	}
	return u
}

// fetch GETs the document and parses it, failing unless it is 200 XML.
func fetch(t *testing.T, u string) docT {
	t.Helper()
	resp, body := do(t, http.MethodGet, u)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", u, resp.Status, body)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/xml" {
		t.Fatalf("GET %s: content type %q", u, resp.Header.Get("Content-Type"))
	}
	if !strings.HasPrefix(string(body), "<?xml") {
		t.Errorf("no XML declaration: %.40q", body)
	}
	var d docT
	if err := xml.Unmarshal(body, &d); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
	return d
}

func TestDocument(t *testing.T) {
	srv := start(t, baseConfig())
	for _, path := range Paths {
		d := fetch(t, configURL(srv.URL, path, "alice@example.org"))
		p := d.Provider
		if d.Version != "1.1" || p.ID != "example.org" || p.DisplayName != "example.org" || p.ShortName != "example.org" {
			t.Errorf("%s: header fields %+v", path, d)
		}
		if strings.Join(p.Domains, ",") != "example.org,example.net" {
			t.Errorf("%s: domains %q", path, p.Domains)
		}
		want := []serverT{
			{"imap", "mail.example.org", "993", "SSL", "password-cleartext", "%EMAILLOCALPART%"},
			{"imap", "mail.example.org", "143", "STARTTLS", "password-cleartext", "%EMAILLOCALPART%"},
		}
		if len(p.Incoming) != 2 || p.Incoming[0] != want[0] || p.Incoming[1] != want[1] {
			t.Errorf("%s: incoming %+v", path, p.Incoming)
		}
		wantOut := serverT{"smtp", "smtp.example.org", "587", "STARTTLS", "password-cleartext", "%EMAILLOCALPART%"}
		if len(p.Outgoing) != 1 || p.Outgoing[0] != wantOut {
			t.Errorf("%s: outgoing %+v", path, p.Outgoing)
		}
	}
}

func TestDomainSelection(t *testing.T) {
	srv := start(t, baseConfig())
	path := Paths[1]
	// The domain asked for comes first and is the provider id; case does
	// not matter.
	d := fetch(t, configURL(srv.URL, path, "Bob@EXAMPLE.net"))
	if d.Provider.ID != "example.net" || strings.Join(d.Provider.Domains, ",") != "example.net,example.org" {
		t.Errorf("example.net: %+v", d.Provider)
	}
	// Without emailaddress: the first configured domain.
	d = fetch(t, configURL(srv.URL, path, ""))
	if d.Provider.ID != "example.org" {
		t.Errorf("no address: id %q", d.Provider.ID)
	}
	// A domain not served: 404, so the client goes on to its next method.
	for _, addr := range []string{"alice@example.com", "alice@sub.example.org"} {
		if resp, body := do(t, http.MethodGet, configURL(srv.URL, path, addr)); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s %s", addr, resp.Status, body)
		}
	}
	// Not an address: 400.
	for _, addr := range []string{"alice", "alice@", "@example.org", "alice@exa mple.org", "alice@<b>.org", "alice@example..org", "alice@-x.org"} {
		if resp, body := do(t, http.MethodGet, configURL(srv.URL, path, addr)); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %s %s", addr, resp.Status, body)
		}
	}
}

func TestAnyDomain(t *testing.T) {
	cfg := baseConfig()
	cfg.Domains = nil
	cfg.SubmissionHost = "" // defaults to Hostname
	cfg.IMAPPort = 0        // STARTTLS not advertised
	cfg.Username = UsernameAddress
	srv := start(t, cfg)
	d := fetch(t, configURL(srv.URL, Paths[0], "carol@any.example"))
	p := d.Provider
	if p.ID != "any.example" || len(p.Domains) != 1 || p.Domains[0] != "any.example" {
		t.Errorf("provider %+v", p)
	}
	if len(p.Incoming) != 1 || p.Incoming[0].Port != "993" || p.Incoming[0].Username != "%EMAILADDRESS%" {
		t.Errorf("incoming %+v", p.Incoming)
	}
	if len(p.Outgoing) != 1 || p.Outgoing[0].Hostname != "mail.example.org" || p.Outgoing[0].Username != "%EMAILADDRESS%" {
		t.Errorf("outgoing %+v", p.Outgoing)
	}
	// No address and no configured domain: nothing to describe.
	if resp, _ := do(t, http.MethodGet, configURL(srv.URL, Paths[0], "")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("no address, no domains: %s", resp.Status)
	}
}

func TestEscaping(t *testing.T) {
	cfg := baseConfig()
	cfg.DisplayName = `Tom & Jerry's <"mail">`
	srv := start(t, cfg)
	resp, body := do(t, http.MethodGet, configURL(srv.URL, Paths[0], "a@example.org"))
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	if strings.Contains(string(body), `<"mail">`) || strings.Contains(string(body), "& ") {
		t.Errorf("display name not escaped:\n%s", body)
	}
	var d docT
	if err := xml.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d.Provider.DisplayName != cfg.DisplayName {
		t.Errorf("display name %q, want %q", d.Provider.DisplayName, cfg.DisplayName)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	srv := start(t, baseConfig())
	u := configURL(srv.URL, Paths[0], "alice@example.org")
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch} {
		resp, _ := do(t, m, u)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %s, Allow %q", m, resp.Status, resp.Header.Get("Allow"))
		}
	}
	get, getBody := do(t, http.MethodGet, u)
	head, headBody := do(t, http.MethodHead, u)
	if head.StatusCode != http.StatusOK || len(headBody) != 0 || head.ContentLength != int64(len(getBody)) || get.ContentLength != int64(len(getBody)) {
		t.Errorf("HEAD: %s, %d body bytes, length %d; GET %d bytes", head.Status, len(headBody), head.ContentLength, len(getBody))
	}
	for _, p := range []string{"/", "/mail/", "/mail/config-v1.1.xml/x", "/.well-known/autoconfig/mail/config-v1.1.xmlx", "/autodiscover/autodiscover.xml"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if resp, _ := do(t, m, srv.URL+p); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s %s: %s", m, p, resp.Status)
			}
		}
	}
}

func TestNewRejects(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"no hostname":     func(c *Config) { c.Hostname = "" },
		"bad hostname":    func(c *Config) { c.Hostname = "mail example" },
		"bad submission":  func(c *Config) { c.SubmissionHost = "a/b" },
		"no imap port":    func(c *Config) { c.IMAPPort, c.IMAPSPort = 0, 0 },
		"port too big":    func(c *Config) { c.IMAPSPort = 70000 },
		"no smtp port":    func(c *Config) { c.SubmissionPort = 0 },
		"socket type":     func(c *Config) { c.SubmissionSocket = "tls" },
		"username mode":   func(c *Config) { c.Username = "email" },
		"bad domain":      func(c *Config) { c.Domains = []string{"example.org", "a@b"} },
		"too long domain": func(c *Config) { c.Domains = []string{strings.Repeat("a", 64) + ".org"} },
	} {
		cfg := baseConfig()
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(baseConfig()); err != nil {
		t.Errorf("base config: %v", err)
	}
}
