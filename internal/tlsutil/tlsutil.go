// Package tlsutil creates tern's self-signed certificate, reports
// fingerprints, and serves a reloadable certificate with a strict TLS
// configuration.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SelfSignedValidity is how long a generated certificate is valid.
const SelfSignedValidity = 10 * 365 * 24 * time.Hour

// DefaultPaths returns where the self-signed certificate lives in a data
// directory: <data>/tls/cert.pem and <data>/tls/key.pem.
func DefaultPaths(dataDir string) (certPath, keyPath string) {
	dir := filepath.Join(dataDir, "tls")
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

// DefaultHosts returns the names a self-signed certificate is made for:
// localhost, 127.0.0.1, ::1 and the machine's host name.
func DefaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append(hosts, h)
	}
	return hosts
}

// Generate creates a self-signed ECDSA P-256 server certificate for hosts
// (DNS names or IP addresses), valid from now for validFor. It returns the
// PEM-encoded certificate and PKCS#8 private key.
func Generate(hosts []string, validFor time.Duration, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("generate certificate: no host names")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[len(hosts)-1], Organization: []string{"tern self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal certificate key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// EnsureSelfSigned makes sure <dataDir>/tls/cert.pem and key.pem exist,
// generating a self-signed certificate for DefaultHosts if neither does.
// An existing pair is reused unchanged. It is an error if only one of the
// two files exists. created reports whether a new pair was written.
func EnsureSelfSigned(dataDir string) (certPath, keyPath string, created bool, err error) {
	certPath, keyPath = DefaultPaths(dataDir)
	certOK, err := exists(certPath)
	if err != nil {
		return "", "", false, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return "", "", false, err
	}
	switch {
	case certOK && keyOK:
		return certPath, keyPath, false, nil
	case certOK != keyOK:
		return "", "", false, fmt.Errorf("tls: only one of %s and %s exists; remove it to generate a new pair", certPath, keyPath)
	}
	certPEM, keyPEM, err := Generate(DefaultHosts(), SelfSignedValidity, time.Now())
	if err != nil {
		return "", "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return "", "", false, fmt.Errorf("tls: create directory: %w", err)
	}
	// Key first, so a crash in between leaves "only key" (reported above)
	// rather than a certificate without its key.
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return "", "", false, err
	}
	if err := writeAtomic(certPath, certPEM, 0o644); err != nil {
		return "", "", false, err
	}
	return certPath, keyPath, true, nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("tls: %w", err)
	}
}

func writeAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tls: write %s: %w", path, err)
	}
	return nil
}

// Fingerprint holds a certificate's fingerprints as colon-separated
// upper-case hex of the hash of its DER encoding.
type Fingerprint struct {
	SHA256 string
	SHA1   string
}

// Fingerprints reads the first certificate in the PEM file certPath and
// returns its fingerprints.
func Fingerprints(certPath string) (Fingerprint, error) {
	data, err := os.ReadFile(certPath)
	if err != nil {
		return Fingerprint{}, fmt.Errorf("fingerprints: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return Fingerprint{}, fmt.Errorf("fingerprints: no CERTIFICATE block in %s", certPath)
		}
		if b.Type == "CERTIFICATE" {
			return FingerprintsDER(b.Bytes), nil
		}
	}
}

// FingerprintsDER returns the fingerprints of a DER-encoded certificate.
func FingerprintsDER(der []byte) Fingerprint {
	s256 := sha256.Sum256(der)
	s1 := sha1.Sum(der)
	return Fingerprint{SHA256: colonHex(s256[:]), SHA1: colonHex(s1[:])}
}

func colonHex(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		fmt.Fprintf(&sb, "%02X", c)
	}
	return sb.String()
}

// ServerConfig returns a TLS server configuration: TLS 1.2 or later and,
// for TLS 1.2, only ECDHE key exchange with AEAD ciphers (AES-GCM,
// ChaCha20-Poly1305). TLS 1.3 suites are all AEAD and not configurable.
// The caller sets Certificates or GetCertificate.
func ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// Reloader holds the current certificate loaded from a cert/key file pair
// and can reload it (for example on SIGHUP) without restarting listeners.
type Reloader struct {
	certPath, keyPath string

	mu   sync.RWMutex
	cert *tls.Certificate
	cfg  *tls.Config
}

// NewReloader loads the pair and returns a Reloader serving it.
func NewReloader(certPath, keyPath string) (*Reloader, error) {
	r := &Reloader{certPath: certPath, keyPath: keyPath}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	cfg := ServerConfig()
	cfg.GetCertificate = r.GetCertificate
	r.cfg = cfg
	return r, nil
}

// Reload reads the pair from disk again. On error the previous certificate
// stays in use.
func (r *Reloader) Reload() error {
	cert, err := tls.LoadX509KeyPair(r.certPath, r.keyPath)
	if err != nil {
		return fmt.Errorf("load certificate %s / %s: %w", r.certPath, r.keyPath, err)
	}
	r.mu.Lock()
	r.cert = &cert
	r.mu.Unlock()
	return nil
}

// Paths returns the certificate and key file paths.
func (r *Reloader) Paths() (certPath, keyPath string) { return r.certPath, r.keyPath }

// Certificate returns the current certificate.
func (r *Reloader) Certificate() *tls.Certificate {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate(), nil
}

// TLSConfig returns the ServerConfig that serves the current certificate.
// The same *tls.Config is returned every time; reloading does not change
// it (GetCertificate picks up the new certificate). Callers must not
// modify it; Clone it first.
func (r *Reloader) TLSConfig() *tls.Config { return r.cfg }
