package tlsutil

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnsureSelfSignedCreatesAndReuses(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, created, err := EnsureSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("created = false on first call")
	}
	if certPath != filepath.Join(dir, "tls", "cert.pem") || keyPath != filepath.Join(dir, "tls", "key.pem") {
		t.Fatalf("paths %s %s", certPath, keyPath)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}

	c := readCert(t, certPath)
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	for _, h := range DefaultHosts() {
		if err := c.VerifyHostname(h); err != nil {
			t.Errorf("certificate not valid for %s: %v", h, err)
		}
	}
	if life := c.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Errorf("certificate valid for only %v", life)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Fatalf("pair does not load: %v", err)
	}

	before, _ := os.ReadFile(certPath)
	_, _, created, err = EnsureSelfSigned(dir)
	if err != nil || created {
		t.Fatalf("second call: created=%v err=%v", created, err)
	}
	after, _ := os.ReadFile(certPath)
	if !bytes.Equal(before, after) {
		t.Fatal("certificate regenerated on second call")
	}

	// Only one half of the pair: refuse rather than overwrite.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := EnsureSelfSigned(dir); err == nil {
		t.Fatal("no error with the key missing")
	}
}

var fpRE = regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`)

func TestFingerprints(t *testing.T) {
	dir := t.TempDir()
	certPath, _, _, err := EnsureSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := Fingerprints(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if !fpRE.MatchString(fp.SHA256) {
		t.Errorf("SHA256 %q not colon hex", fp.SHA256)
	}
	if len(fp.SHA1) != 59 {
		t.Errorf("SHA1 %q wrong length", fp.SHA1)
	}
	if got := FingerprintsDER(readCert(t, certPath).Raw); got != fp {
		t.Errorf("FingerprintsDER %v != Fingerprints %v", got, fp)
	}
	// Cross-check with openssl when available.
	if _, err := exec.LookPath("openssl"); err == nil {
		for alg, want := range map[string]string{"-sha256": fp.SHA256, "-sha1": fp.SHA1} {
			out, err := exec.Command("openssl", "x509", "-noout", "-fingerprint", alg, "-in", certPath).Output()
			if err != nil {
				t.Fatal(err)
			}
			_, got, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
			if got != want {
				t.Errorf("openssl %s fingerprint %s, ours %s", alg, got, want)
			}
		}
	}
	if _, err := Fingerprints(filepath.Join(dir, "tls", "key.pem")); err == nil {
		t.Error("Fingerprints(key file) did not fail")
	}
}

// handshake connects to addr trusting only the certificate in certPath and
// returns the certificate the server presented.
func handshake(t *testing.T, addr, certPath string, cfg *tls.Config) (*x509.Certificate, error) {
	t.Helper()
	pemData, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs = pool
	cfg.ServerName = "localhost"
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _, err := EnsureSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.TLSConfig())
	first, err := handshake(t, addr, certPath, nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}

	// Replace the pair on disk; the old certificate is served until Reload.
	os.Remove(certPath)
	os.Remove(keyPath)
	if _, _, _, err := EnsureSelfSigned(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := handshake(t, addr, certPath, &tls.Config{InsecureSkipVerify: true}); err != nil || !got.Equal(first) {
		t.Fatalf("before reload: err=%v, new cert served early", err)
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	second, err := handshake(t, addr, certPath, nil)
	if err != nil {
		t.Fatalf("after reload: %v", err)
	}
	if second.Equal(first) {
		t.Fatal("old certificate served after reload")
	}

	// A broken file on disk: Reload fails and the current cert stays.
	if err := os.WriteFile(certPath, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("Reload of garbage succeeded")
	}
	if !bytes.Equal(r.Certificate().Certificate[0], second.Raw) {
		t.Fatal("failed reload replaced the certificate")
	}
}

func TestServerConfigRejectsWeakClients(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _, err := EnsureSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReloader(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if r.TLSConfig().MinVersion != tls.VersionTLS12 {
		t.Fatal("MinVersion not TLS 1.2")
	}
	addr := serveTLS(t, r.TLSConfig())

	if _, err := handshake(t, addr, certPath, &tls.Config{MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		t.Error("TLS 1.1 client accepted")
	}
	cbc := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}
	if _, err := handshake(t, addr, certPath, cbc); err == nil {
		t.Error("TLS 1.2 CBC-only client accepted")
	}
	gcm := &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}
	if _, err := handshake(t, addr, certPath, gcm); err != nil {
		t.Errorf("TLS 1.2 GCM client refused: %v", err)
	}
	if _, err := handshake(t, addr, certPath, &tls.Config{MinVersion: tls.VersionTLS13}); err != nil {
		t.Errorf("TLS 1.3 client refused: %v", err)
	}
}
