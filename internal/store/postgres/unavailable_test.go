package postgres

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tern-imap/tern/internal/store"
)

// TestUnreachable: the errors of a database that cannot be reached are
// store.Unavailable, over real TCP: a port nobody listens on, a server
// that accepts and never answers (connect_timeout), both in one
// failover URL, and a broken connection's read; a cancelled context
// (the client went away) and a bare EOF (which may be a client's) are
// not.
func TestUnreachable(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	url := func(hosts string) string {
		return fmt.Sprintf("postgres://tern@%s/tern?sslmode=disable&connect_timeout=1", hosts)
	}
	for _, tc := range []struct {
		name, url string
	}{
		{"refused", url(refused)},
		{"no answer", url(hung.Addr().String())},
		{"failover URL", url(hung.Addr().String()+","+refused) + "&target_session_attrs=read-write"},
	} {
		_, err := pgx.Connect(context.Background(), tc.url)
		if err == nil || !store.Unavailable(err) {
			t.Errorf("%s: %v is not Unavailable", tc.name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pgx.Connect(ctx, url(hung.Addr().String())); err == nil || store.Unavailable(err) {
		t.Errorf("cancelled: %v is Unavailable", err)
	}
	if store.Unavailable(fmt.Errorf("fetch: %w", io.ErrUnexpectedEOF)) {
		t.Error("a bare EOF is Unavailable")
	}
	if !store.Unavailable(fmt.Errorf("fetch: %w", &dbIOError{io.ErrUnexpectedEOF})) {
		t.Error("a database connection's EOF is not Unavailable")
	}
}
