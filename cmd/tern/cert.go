package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/tlsutil"
)

func (e *env) cert(args []string) int {
	c := command{name: "tern cert",
		about: "Print the TLS certificate path, its names, expiry and SHA-256 and SHA-1\nfingerprints (to compare with what a mail client shows). Without tls.cert\nin the configuration, the self-signed certificate in <data>/tls is used and\ncreated first if missing."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	if _, code, done := e.parse(c, fs, args); done {
		return code
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	certPath, keyPath, created, err := certPaths(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern cert: %v\n", err)
		return exitError
	}
	if created {
		fmt.Fprintf(e.stderr, "generated a new self-signed certificate\n")
	}
	fp, err := tlsutil.Fingerprints(certPath)
	if err != nil {
		fmt.Fprintf(e.stderr, "tern cert: %v\n", err)
		return exitError
	}
	fmt.Fprintf(e.stdout, "certificate: %s\nkey:         %s\n", certPath, keyPath)
	if crt, err := parseCertFile(certPath); err == nil {
		var names []string
		names = append(names, crt.DNSNames...)
		for _, ip := range crt.IPAddresses {
			names = append(names, ip.String())
		}
		fmt.Fprintf(e.stdout, "names:       %s\nexpires:     %s\n", strings.Join(names, ", "), crt.NotAfter.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	fmt.Fprintf(e.stdout, "SHA-256:     %s\nSHA-1:       %s\n", fp.SHA256, fp.SHA1)
	return exitOK
}

// certPaths returns the configured certificate pair, or the self-signed
// pair in the data directory (creating it if missing).
func certPaths(cfg *config.Config) (certPath, keyPath string, created bool, err error) {
	if cfg.TLS.Cert != "" {
		return cfg.TLS.Cert, cfg.TLS.Key, false, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("create data directory: %w", err)
	}
	return tlsutil.EnsureSelfSigned(cfg.DataDir)
}

func parseCertFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("no certificate in %s", path)
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
