package server

import (
	"time"
)

// Connection limits, shaped so that an office behind one NAT address
// works while one address or one account cannot take the server:
//
//   - MaxConns bounds all connections.
//   - Before login a connection counts against its client address
//     (MaxPreAuthConnsPerIP; IPv4 address or IPv6 /64, as auth.ClientKey),
//     and opening it takes a token from the address's bucket
//     (ConnBurstPerIP tokens, refilled at ConnRatePerIP per second).
//   - From login on it counts against its user and address
//     (MaxUserIPConns, like Dovecot's mail_max_userip_connections) and its
//     user in total (MaxUserConns), no longer against the address.
//
// All counts live under Server.mu.

// userAddr keys the per-user-and-address count.
type userAddr struct{ user, addr string }

// rateBucket is a token bucket of new connections from one address.
type rateBucket struct {
	tokens float64
	last   time.Time
}

const (
	// maxRateBuckets bounds the rate table. A bucket exists only for an
	// address that completed a TCP handshake within the last
	// burst/rate seconds; beyond the bound, new addresses are not rate
	// limited (the other limits still apply).
	maxRateBuckets = 1 << 18
	// Full buckets are dropped (every rateSweepEvery at most) once there
	// are more than rateSweepAbove.
	rateSweepEvery = 5 * time.Second
	rateSweepAbove = 1024
)

// admitLocked decides whether a new connection from addr may start and,
// if so, counts it as not logged in. It returns "" or the BYE text.
// Callers hold s.mu.
func (s *Server) admitLocked(addr string, now time.Time) string {
	if len(s.conns) >= s.cfg.MaxConns {
		return "[UNAVAILABLE] Too many connections"
	}
	// The token is taken even when the address's own connection limit
	// refuses the connection, so an address hammering at that limit stays
	// rate limited (a full server refuses before any token is taken).
	if !s.takeTokenLocked(addr, now) {
		return "[UNAVAILABLE] Too many new connections; try again later"
	}
	if s.preAuth[addr] >= s.cfg.MaxPreAuthConnsPerIP {
		return "[UNAVAILABLE] Too many connections"
	}
	s.preAuth[addr]++
	return ""
}

// takeTokenLocked takes one token from addr's bucket.
func (s *Server) takeTokenLocked(addr string, now time.Time) bool {
	rate, burst := s.cfg.ConnRatePerIP, float64(s.cfg.ConnBurstPerIP)
	b := s.rates[addr]
	if b == nil {
		if len(s.rates) > rateSweepAbove && now.Sub(s.ratesSwept) >= rateSweepEvery {
			s.ratesSwept = now
			for k, o := range s.rates {
				if o.tokens+now.Sub(o.last).Seconds()*rate >= burst {
					delete(s.rates, k) // full again: same as no bucket
				}
			}
		}
		if len(s.rates) >= maxRateBuckets {
			return true
		}
		b = &rateBucket{tokens: burst, last: now}
		s.rates[addr] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// loginConn moves c from its address's pre-login count to user's counts.
// It returns "" or the text of the NO [LIMIT] refusing the login.
func (s *Server) loginConn(c *conn, user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := userAddr{user, c.addrKey}
	switch {
	case s.userAddrConns[k] >= s.cfg.MaxUserIPConns:
		return "Too many connections for this user from your address"
	case s.userConns[user] >= s.cfg.MaxUserConns:
		return "Too many connections for this user"
	}
	s.dropPreAuthLocked(c.addrKey)
	s.userAddrConns[k]++
	s.userConns[user]++
	c.countedUser = user
	return ""
}

// unloginConn undoes loginConn (the login failed after all).
func (s *Server) unloginConn(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropUserLocked(c)
	s.preAuth[c.addrKey]++
}

// endConnLocked removes an ended connection from its counts.
func (s *Server) endConnLocked(c *conn) {
	if c.countedUser != "" {
		s.dropUserLocked(c)
	} else {
		s.dropPreAuthLocked(c.addrKey)
	}
}

func (s *Server) dropPreAuthLocked(addr string) {
	if s.preAuth[addr]--; s.preAuth[addr] <= 0 {
		delete(s.preAuth, addr)
	}
}

func (s *Server) dropUserLocked(c *conn) {
	user := c.countedUser
	c.countedUser = ""
	k := userAddr{user, c.addrKey}
	if s.userAddrConns[k]--; s.userAddrConns[k] <= 0 {
		delete(s.userAddrConns, k)
	}
	if s.userConns[user]--; s.userConns[user] <= 0 {
		delete(s.userConns, user)
	}
}
