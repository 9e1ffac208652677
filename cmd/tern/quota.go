package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tern-imap/tern/internal/config"
	"github.com/tern-imap/tern/internal/store"
)

func (e *env) userQuota(args []string) int {
	c := command{name: "tern user quota", args: "NAME", nargs: 1,
		about: "Show user NAME's quota and usage, or set limits. Sizes take K, M, G or T\n" +
			"suffixes (powers of 1024); 0, none or unlimited removes a limit. IMAP\n" +
			"clients see the limits with GETQUOTAROOT (RFC 9208); APPEND/COPY over a\n" +
			"limit fail with NO [OVERQUOTA] and LMTP answers 552 5.2.2."}
	fs := e.newFlagSet(c)
	flags := config.AddFlags(fs, false)
	storage := fs.String("storage", "", "storage limit `size` (e.g. 2G)")
	messages := fs.String("messages", "", "message count limit `n`")
	pos, code, done := e.parse(c, fs, args)
	if done {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var sl, ml int64
	var err error
	if set["storage"] {
		if sl, err = parseSize(*storage); err != nil {
			fmt.Fprintf(e.stderr, "%s: --storage: %v\n", c.name, err)
			return exitUsage
		}
	}
	if set["messages"] {
		if ml, err = parseCount(*messages); err != nil {
			fmt.Fprintf(e.stderr, "%s: --messages: %v\n", c.name, err)
			return exitUsage
		}
	}
	cfg, ok := e.loadConfig(c.name, flags)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	err = e.withStore(ctx, cfg, func(st store.Store) error {
		acct, err := st.Account(ctx, pos[0])
		if err != nil {
			if errors.Is(err, store.ErrNoSuchUser) {
				return fmt.Errorf("no user %q", pos[0])
			}
			return err
		}
		defer acct.Close()
		q, err := acct.Quota(ctx)
		if err != nil {
			return err
		}
		if set["storage"] || set["messages"] {
			if set["storage"] {
				q.StorageLimit = sl
			}
			if set["messages"] {
				q.MessageLimit = ml
			}
			if err := acct.SetQuota(ctx, q.StorageLimit, q.MessageLimit); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "%s: storage %s of %s, messages %d of %s\n", pos[0],
			formatSize(q.StorageUsed), limitString(q.StorageLimit, formatSize),
			q.MessagesUsed, limitString(q.MessageLimit, func(n int64) string { return strconv.FormatInt(n, 10) }))
		return nil
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\n", c.name, err)
		return exitError
	}
	return exitOK
}

func limitString(n int64, f func(int64) string) string {
	if n == 0 {
		return "unlimited"
	}
	return f(n)
}

// parseSize parses "2G", "500M", "100k", "1024", "1.5G"; 0, none and
// unlimited mean no limit (0).
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "0", "none", "unlimited":
		return 0, nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("invalid size %q (use e.g. 2G, 500M, 100K or bytes)", s)
	}
	return int64(f * mult), nil
}

func parseCount(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "none", "unlimited":
		return 0, nil
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid count %q", s)
	}
	return n, nil
}

func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n), 0
	for v >= unit && exp < 4 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[exp-1])
}
