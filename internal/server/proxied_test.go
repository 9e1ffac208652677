package server

import (
	"log/slog"
	"net"
	"testing"

	"github.com/tern-imap/tern/internal/proxied"
)

// A connection that came through a load balancer's PROXY header keeps
// its TCP connection for sendfile and idle parking (tcpConn), while its
// RemoteAddr is the client's.
func TestTCPConnThroughProxyHeader(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nets, err := proxied.ParseNetworks([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln := proxied.Wrap(inner, nets, slog.New(slog.DiscardHandler))
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 40000 143\r\n")); err != nil {
		t.Fatal(err)
	}
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.RemoteAddr().String(); got != "192.0.2.1:40000" {
		t.Errorf("RemoteAddr = %s, want the header's 192.0.2.1:40000", got)
	}
	if tcpConn(nc) == nil {
		t.Errorf("tcpConn of a %T is nil, want its TCP connection", nc)
	}
}
