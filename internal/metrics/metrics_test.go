package metrics_test

import (
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/metrics"
)

// Counting a command, a state change and bytes allocates nothing: these
// run on every command and every read and write of a session.
func TestHotPathDoesNotAllocate(t *testing.T) {
	m := metrics.New()
	cmd := m.Command("FETCH")
	l := m.Listener("imap")
	allocs := testing.AllocsPerRun(1000, func() {
		cmd.Done("OK", 300*time.Microsecond)
		m.SessionMoved(metrics.StateAuthenticated, metrics.StateSelected)
		m.SessionMoved(metrics.StateSelected, metrics.StateAuthenticated)
		m.AddBytes(100, 4000)
		m.Login(metrics.LoginSuccess)
		l.StartedTLS()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per command", allocs)
	}
}

// A nil *Metrics and nil series are valid and count nothing.
func TestNilSafe(t *testing.T) {
	var m *metrics.Metrics
	m.Command("FETCH").Done("OK", time.Millisecond)
	m.Listener("imap").Accepted(true)
	m.SessionMoved(metrics.StateNone, metrics.StateNotAuthenticated)
	m.AddBytes(1, 1)
	m.Login(metrics.LoginFailure)
	m.Delivery("lmtp", "delivered")
	m.RegisterIndex(nil)
	if st := m.WrapStore(nil); st != nil {
		t.Fatal("WrapStore on nil metrics changed the store")
	}
}

func BenchmarkCommandDone(b *testing.B) {
	m := metrics.New()
	cmd := m.Command("FETCH")
	b.ReportAllocs()
	for b.Loop() {
		cmd.Done("OK", 300*time.Microsecond)
	}
}
