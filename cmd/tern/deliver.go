package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/delivery"
	"github.com/tern-imap/tern/internal/store"
)

// Exit codes of tern deliver (sysexits.h, as MTAs expect from a local
// delivery agent).
const (
	exDataErr  = 65 // the input is not a message (empty, too big)
	exNoUser   = 67 // no such user
	exTempFail = 75 // try again later
	exNoPerm   = 77 // over quota (permanent)
	exUsage    = 64
)

func (e *env) deliver(args []string) int {
	c := command{name: "tern deliver",
		about: "Deliver one RFC 5322 message read from standard input, like a local delivery\n" +
			"agent (Postfix mailbox_command, procmail-style). A leading mbox \"From \" line\n" +
			"is dropped. Exit codes: 0 delivered, 64 usage, 65 bad input (empty or too\n" +
			"big), 67 no such user, 75 temporary failure, 77 over quota (75 with\n" +
			"lmtp.quota_full_tempfail) or rejected by the user's Sieve script. Without\n" +
			"--mailbox, the user's active Sieve script (if any) decides where it goes."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	user := fs.String("user", "", "recipient `user` name or address (user+detail delivers to folder detail when it exists)")
	mailbox := fs.String("mailbox", "", "deliver into `mailbox` (default: from the +detail, else INBOX; a missing mailbox means INBOX)")
	from := fs.String("from", "", "envelope sender `address`: adds Return-Path")
	rcpt := fs.String("recipient", "", "recipient `address`: adds Delivered-To")
	if _, code, done := e.parse(c, fs, args); done {
		if code == exitUsage {
			return exUsage
		}
		return code
	}
	if *user == "" {
		fmt.Fprintf(e.stderr, "%s: --user is required\n", c.name)
		return exUsage
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exTempFail
	}
	fromSet, rcptSet := false, false
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "from":
			fromSet = true
		case "recipient":
			rcptSet = true
		}
	})
	ctx := context.Background()
	code, err := e.deliverOne(ctx, cfg, *user, *mailbox, optString(*from, fromSet), optString(*rcpt, rcptSet))
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
	}
	return code
}

func optString(s string, set bool) *string {
	if !set {
		return nil
	}
	return &s
}

func (e *env) deliverOne(ctx context.Context, cfg *config.Config, user, mailbox string, from, rcpt *string) (int, error) {
	max := cfg.Limits.MaxLiteralSize
	msg, err := io.ReadAll(io.LimitReader(e.stdin, max+1))
	if err != nil {
		return exTempFail, fmt.Errorf("read message: %w", err)
	}
	if int64(len(msg)) > max {
		return exDataErr, fmt.Errorf("5.3.4 message larger than %d bytes", max)
	}
	if bytes.HasPrefix(msg, []byte("From ")) { // mbox envelope line
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		} else {
			msg = nil
		}
	}
	if len(bytes.TrimSpace(msg)) == 0 {
		return exDataErr, errors.New("empty message")
	}
	st, closeN, err := openStoreNotifying(ctx, cfg)
	if err != nil {
		return exTempFail, err
	}
	defer func() {
		st.Close()
		closeN()
	}()
	sender, err := spoolSender(cfg)
	if err != nil {
		return exTempFail, err
	}
	global, err := loadGlobalSieve(cfg)
	if err != nil {
		return exTempFail, err
	}
	d := newDeliverer(cfg, st, global, sender, nil)
	r, err := d.Resolve(ctx, user)
	if err != nil {
		if errors.Is(err, store.ErrNoSuchUser) {
			return exNoUser, fmt.Errorf("5.1.1 %w", err)
		}
		return exTempFail, err
	}
	in := delivery.Incoming{User: r.User, Detail: r.Detail, Address: user, Mailbox: mailbox, Body: delivery.TraceHeaders(msg, from, rcpt)}
	if from != nil {
		in.From = *from
	}
	if rcpt != nil {
		in.Address = *rcpt
	}
	res, err := d.DeliverFiltered(ctx, in)
	var rej *delivery.RejectError
	switch {
	case err == nil:
		if len(res) == 0 {
			fmt.Fprintf(e.stdout, "no copy stored for %s: the sieve script discarded or redirected the message\n", r.User)
		}
		for _, res := range res {
			fmt.Fprintf(e.stdout, "delivered to %s mailbox %s uid %d\n", r.User, res.Mailbox, res.UID)
		}
		return exitOK, nil
	case errors.As(err, &rej):
		return exNoPerm, fmt.Errorf("5.7.1 %w", err)
	case errors.Is(err, store.ErrOverQuota):
		if cfg.LMTP.QuotaFullTempFail {
			return exTempFail, fmt.Errorf("4.2.2 mailbox full: %w", err)
		}
		return exNoPerm, fmt.Errorf("5.2.2 mailbox full: %w", err)
	case errors.Is(err, store.ErrNoSuchUser):
		return exNoUser, fmt.Errorf("5.1.1 %w", err)
	}
	return exTempFail, fmt.Errorf("4.3.0 %w", err)
}
