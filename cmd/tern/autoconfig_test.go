package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServe runs "tern serve args..." and returns the listeners'
// addresses by proto once want of them are open, and a stop func that
// sends SIGTERM and checks the exit code.
func startServe(t testing.TB, want int, args ...string) (map[string]string, *syncBuffer, func()) {
	t.Helper()
	got, logBuf, _, stop := startServeSignals(t, want, args...)
	return got, logBuf, stop
}

// startServeSignals is startServe that also returns the channel serve
// reads its signals from (SIGHUP for a reload).
func startServeSignals(t testing.TB, want int, args ...string) (map[string]string, *syncBuffer, chan<- os.Signal, func()) {
	t.Helper()
	got, logBuf, sigs, stop, err := tryServe(t, want, args...)
	if err != nil {
		t.Fatalf("%v: %s", err, logBuf.String())
	}
	return got, logBuf, sigs, stop
}

// tryServe is startServeSignals returning an error, with the log, when
// serve exits or hangs before it listens (a test that needs a port it
// picked beforehand retries on "address already in use").
func tryServe(t testing.TB, want int, args ...string) (map[string]string, *syncBuffer, chan<- os.Signal, func(), error) {
	t.Helper()
	sigs := make(chan os.Signal, 1)
	addrs := make(chan [2]string, 8)
	logBuf := &syncBuffer{}
	e := &env{
		stdin: strings.NewReader(""), stdout: logBuf, stderr: logBuf, signals: sigs,
		listening: func(proto, addr string) { addrs <- [2]string{proto, addr} },
	}
	done := make(chan int, 1)
	go func() { done <- e.run(append([]string{"serve", "--listen-managesieve", ""}, args...)) }()
	got := map[string]string{}
	for len(got) < want {
		select {
		case a := <-addrs:
			got[a[0]] = a[1]
		case code := <-done:
			return nil, logBuf, sigs, nil, fmt.Errorf("serve exited early with %d", code)
		case <-time.After(10 * time.Second):
			// Stop the serve that hangs, so that it does not run on
			// (holding its ports and data directory) into the next test.
			sigs <- syscall.SIGTERM
			select {
			case <-done:
			case <-time.After(15 * time.Second):
			}
			return nil, logBuf, sigs, nil, errors.New("serve did not start")
		}
	}
	stop := func() {
		sigs <- syscall.SIGTERM
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exit %d: %s", code, logBuf.String())
			}
		case <-time.After(15 * time.Second):
			// The goroutines say where the shutdown hangs (serve runs
			// in this process).
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("serve did not stop on SIGTERM; log:\n%s\ngoroutines:\n%s", logBuf.String(), stacks.String())
		}
	}
	return got, logBuf, sigs, stop, nil
}

type acDoc struct {
	Provider struct {
		ID       string   `xml:"id,attr"`
		Domains  []string `xml:"domain"`
		Incoming []struct {
			Hostname   string `xml:"hostname"`
			Port       int    `xml:"port"`
			SocketType string `xml:"socketType"`
			Username   string `xml:"username"`
		} `xml:"incomingServer"`
	} `xml:"emailProvider"`
}

func getAutoconfig(t *testing.T, c *http.Client, u string) (int, acDoc) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var d acDoc
	if resp.StatusCode == http.StatusOK {
		if err := xml.Unmarshal(body, &d); err != nil {
			t.Fatalf("%s: %v\n%s", u, err, body)
		}
	}
	return resp.StatusCode, d
}

func TestServeAutoconfig(t *testing.T) {
	needStore(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "tern.toml")
	os.WriteFile(conf, []byte(`
[autoconfig]
hostname = "imap.example.org"
imap_port = 0
[lmtp]
domains = ["example.org"]
`), 0o600)
	common := []string{"--config", conf, "--data", filepath.Join(dir, "data"), "--listen-imap", "", "--listen-imaps", "127.0.0.1:0", "--listen-lmtp", ""}

	t.Run("http", func(t *testing.T) {
		addrs, logBuf, stop := startServe(t, 2, append(common, "--listen-autoconfig", "127.0.0.1:0")...)
		defer stop()
		if !strings.Contains(logBuf.String(), "msg=listening proto=autoconfig addr="+addrs["autoconfig"]+" https=false") {
			t.Errorf("no listening log line: %s", logBuf.String())
		}
		base := "http://" + addrs["autoconfig"]
		code, d := getAutoconfig(t, http.DefaultClient, base+"/mail/config-v1.1.xml?emailaddress=alice%40example.org")
		if code != 200 || d.Provider.ID != "example.org" || len(d.Provider.Incoming) != 1 {
			t.Fatalf("%d %+v", code, d)
		}
		in := d.Provider.Incoming[0]
		if in.Hostname != "imap.example.org" || in.Port != 993 || in.SocketType != "SSL" || in.Username != "%EMAILLOCALPART%" {
			t.Errorf("incoming %+v", in)
		}
		if code, _ := getAutoconfig(t, http.DefaultClient, base+"/mail/config-v1.1.xml?emailaddress=alice%40example.com"); code != 404 {
			t.Errorf("domain not in lmtp.domains: %d", code)
		}
	})

	t.Run("https", func(t *testing.T) {
		os.WriteFile(conf, []byte(`
[autoconfig]
hostname = "imap.example.org"
tls = true
`), 0o600)
		addrs, _, stop := startServe(t, 2, append(common, "--listen-autoconfig", "127.0.0.1:0")...)
		defer stop()
		pemData, err := os.ReadFile(filepath.Join(dir, "data", "tls", "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pemData)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
		defer c.CloseIdleConnections()
		code, d := getAutoconfig(t, c, "https://"+addrs["autoconfig"]+"/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=bob%40any.example")
		if code != 200 || d.Provider.ID != "any.example" || len(d.Provider.Incoming) != 2 || d.Provider.Incoming[1].Port != 143 {
			t.Fatalf("%d %+v", code, d)
		}
		// Plain HTTP on the HTTPS port gets no document.
		if resp, err := http.Get("http://" + addrs["autoconfig"] + "/mail/config-v1.1.xml"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Error("plain HTTP served on the HTTPS listener")
			}
		}
	})

	t.Run("off by default", func(t *testing.T) {
		addrs, _, stop := startServe(t, 1, common...)
		defer stop()
		if _, ok := addrs["autoconfig"]; ok {
			t.Error("autoconfig listening without listen.autoconfig")
		}
	})

	t.Run("missing hostname", func(t *testing.T) {
		os.WriteFile(conf, []byte(""), 0o600)
		r := runT(t, "", append([]string{"serve"}, append(common, "--listen-autoconfig", "127.0.0.1:0")...)...)
		if r.code != exitError || !strings.Contains(r.stderr, "autoconfig.hostname") {
			t.Errorf("%+v", r)
		}
	})
}
