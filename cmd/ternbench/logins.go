package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// loginsWorker is the logins workload: each operation connects, logs in
// as the next of --users and logs out, as the clients of a dead node do
// on the node that takes them. The run stops after --users logins at
// most, so no user logs in twice and no success cache answers: every
// login checks the password hash.
type loginsWorker struct {
	o    *options
	next *atomic.Int64 // the index of the next user, shared by the workers
}

func (w *loginsWorker) op(ctx context.Context, rec *recorder) error {
	i := int(w.next.Add(1) - 1)
	start := time.Now()
	c, err := dial(ctx, w.o.dialOpts(i))
	if err != nil {
		rec.fail("login")
		return err
	}
	defer c.Close()
	if err := c.login(w.o.user(i), w.o.password); err != nil {
		rec.fail("login")
		return fmt.Errorf("login %s: %w", w.o.user(i), err)
	}
	if err := c.logout(); err != nil {
		rec.fail("login")
		return fmt.Errorf("logout %s: %w", w.o.user(i), err)
	}
	rec.add("login", time.Since(start), 1, 0)
	return nil
}

func (w *loginsWorker) close() {}

// benchLogins runs the logins workload: --count, if set, bounded by
// --users.
func benchLogins(ctx context.Context, o *options) (*recorder, time.Duration, error) {
	if o.count == 0 || o.count > int64(o.users) {
		o.count = int64(o.users)
	}
	var next atomic.Int64
	return bench(ctx, o, func(context.Context, int) (worker, error) {
		return &loginsWorker{o: o, next: &next}, nil
	})
}
