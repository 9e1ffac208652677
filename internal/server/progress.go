package server

import (
	"time"
)

// DefaultProgressInterval is how long a command runs before the first
// INPROGRESS response and how often one follows (Config.ProgressInterval).
const DefaultProgressInterval = 5 * time.Second

// progress sends RFC 9585 INPROGRESS responses during a long command:
// "* OK [INPROGRESS ("tag" done goal)] ...", at most one per interval, so
// a client (or a proxy) with a read timeout sees the command is alive.
// The goal is fixed for the command and done never decreases.
type progress struct {
	c     *conn
	tag   string
	goal  uint64
	every time.Duration
	next  time.Time
	done  uint64
}

// startProgress starts reporting for the running command, whose work is
// goal units (messages). It returns nil (report nothing) when reports are
// off (a negative Config.ProgressInterval) or there is no command.
func (c *conn) startProgress(goal int) *progress {
	every := c.srv.cfg.ProgressInterval
	if every < 0 || c.cmd == nil || c.cmd.Tag == "*" {
		return nil
	}
	return &progress{c: c, tag: c.cmd.Tag, goal: uint64(goal), every: every, next: time.Now().Add(every)}
}

// step records one more unit done and, if the interval has passed, sends
// and flushes an INPROGRESS response. The clock is read every 256 units,
// or at every unit when each is costly (always).
func (p *progress) step(always bool) error {
	if p == nil {
		return nil
	}
	p.done++
	if !always && p.done%256 != 0 {
		return nil
	}
	now := time.Now()
	if now.Before(p.next) {
		return nil
	}
	p.next = now.Add(p.every)
	w := p.c.w
	w.WriteString("* OK [INPROGRESS (")
	w.String(p.tag)
	w.SP()
	w.Number(min(p.done, p.goal))
	w.SP()
	w.Number(p.goal)
	w.WriteString(")] Still working\r\n")
	return p.c.flush()
}
