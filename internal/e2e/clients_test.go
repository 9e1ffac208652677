package e2e_test

import (
	"testing"
)

// clientUsers are the accounts TestClients creates, one per client so
// the subtests can run in parallel without seeing each other's mail.
var clientUsers = map[string]string{
	"py":      "py-secret",
	"mbsync":  "mb-secret",
	"offline": "oi-secret",
	"curl":    "curl-secret",
	"mutt":    "mutt-secret",
}

// TestClients starts one tern server per store and drives each real
// client against it in its own subtest.
func TestClients(t *testing.T) {
	forEachStore(t, func(t *testing.T, store []string) {
		srv := startServer(t, clientUsers, store...)
		t.Run("python-imaplib", func(t *testing.T) { t.Parallel(); testPython(t, srv) })
		t.Run("curl", func(t *testing.T) { t.Parallel(); testCurl(t, srv) })
		t.Run("mbsync", func(t *testing.T) { t.Parallel(); testMbsync(t, srv) })
		t.Run("offlineimap", func(t *testing.T) { t.Parallel(); testOfflineIMAP(t, srv) })
		t.Run("neomutt", func(t *testing.T) { t.Parallel(); testNeomutt(t, srv) })
	})
}
