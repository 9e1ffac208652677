package main

import (
	"testing"

	"github.com/tern-imap/tern/internal/auth"
	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/server"
)

// The configuration's defaults (what tern serve passes on) are the
// server's and the authenticator's own defaults, so the limits tested in
// those packages with zero configuration are the ones an operator gets.
func TestConfigDefaultsMatchPackages(t *testing.T) {
	d := config.Default()
	l := d.Limits
	for _, c := range []struct {
		key       string
		got, want float64
	}{
		{"limits.max_conns", float64(l.MaxConns), server.DefaultMaxConns},
		{"limits.max_preauth_conns_per_ip", float64(l.MaxPreAuthConnsPerIP), server.DefaultMaxPreAuthConnsPerIP},
		{"limits.conn_rate_per_ip", l.ConnRatePerIP, server.DefaultConnRatePerIP},
		{"limits.conn_burst_per_ip", float64(l.ConnBurstPerIP), server.DefaultConnBurstPerIP},
		{"limits.max_userip_conns", float64(l.MaxUserIPConns), server.DefaultMaxUserIPConns},
		{"limits.max_user_conns", float64(l.MaxUserConns), server.DefaultMaxUserConns},
		{"limits.max_line_length", float64(l.MaxLineLength), server.DefaultMaxLineLength},
		{"limits.max_literal_size", float64(l.MaxLiteralSize), server.DefaultMaxLiteralSize},
	} {
		if c.got != c.want {
			t.Errorf("%s: config default %v, server default %v", c.key, c.got, c.want)
		}
	}
	p, dp := authPolicy(d), auth.DefaultPolicy
	if p.FreeFailures != dp.FreeFailures || p.BaseDelay != dp.BaseDelay || p.MaxDelay != dp.MaxDelay ||
		p.Window != dp.Window || p.MaxUserFailures != dp.MaxUserFailures || p.MaxIPFailures != dp.MaxIPFailures {
		t.Errorf("auth policy from the config defaults %+v differs from auth.DefaultPolicy %+v", p, dp)
	}
}
