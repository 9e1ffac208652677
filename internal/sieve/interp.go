package sieve

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
)

type ctrl int

const (
	ctrlNext ctrl = iota
	ctrlStop
	ctrlReturn
)

// scope is the state of one running script (the top one or an include).
type scope struct {
	s       *Script
	vars    map[string]string
	globals map[string]bool // names declared global in this script
	match   []string        // match variables ${0}, ${1}, ...
}

// runner is one execution.
type runner struct {
	ctx   context.Context
	env   Envelope
	msg   *Message
	hdr   headerView
	lim   Limits
	res   *Result
	now   time.Time
	sc    *scope
	steps int

	flags     []string // imap4flags' internal variable
	usesFlags bool
	// carriesFlags: the variable started from Envelope.InitialFlags, so
	// keeps and fileinto use it even when the script does not use
	// imap4flags.
	carriesFlags bool
	globals      map[string]string

	includes int
	chain    []string        // include stack: "personal:name" / "global:name"
	once     map[string]bool // included with :once
	incCache map[string]*Script

	mailboxes []MailboxInfo
	mbLoaded  bool

	keepCancelled bool
	regexCache    map[string]*regexp.Regexp
	bodyCache     map[string][]string // body test texts by transform
	cur           pos
}

// Execute runs the script on msg. A *RuntimeError (a limit, a failed
// include, conflicting actions) comes with a Result whose ImplicitKeep is
// true and whose actions are dropped: the caller files the message into
// INBOX, so a broken script never loses mail. Other errors come from ctx
// or the Envelope's hooks.
func (s *Script) Execute(ctx context.Context, env Envelope, msg *Message, limits Limits) (*Result, error) {
	if msg == nil {
		msg = NewMessage(nil)
	}
	r := &runner{
		ctx: ctx, env: env, msg: msg, lim: limits.withDefaults(), res: &Result{},
		hdr:     headerView{fields: msg.fields},
		globals: map[string]string{}, once: map[string]bool{}, incCache: map[string]*Script{},
		regexCache: map[string]*regexp.Regexp{},
	}
	r.now = env.Now
	if r.now.IsZero() {
		r.now = time.Now()
	}
	r.sc = &scope{s: s, vars: map[string]string{}, globals: map[string]bool{}}
	r.usesFlags = s.exts["imap4flags"]
	switch {
	case env.IMAP != nil:
		r.flags = normalizeFlags(env.IMAP.Flags)
	case env.InitialFlags != nil:
		r.flags = normalizeFlags(env.InitialFlags)
		r.carriesFlags = true
	}
	_, err := r.block(s.cmds)
	r.res.Steps = r.steps
	if err != nil {
		var rt *RuntimeError
		if errors.As(err, &rt) {
			return &Result{ImplicitKeep: true, Steps: r.steps}, err
		}
		return &Result{ImplicitKeep: true, Steps: r.steps}, fmt.Errorf("sieve: %w", err)
	}
	r.res.ImplicitKeep = !r.keepCancelled
	if r.usesFlags || r.carriesFlags {
		r.res.ImplicitKeepFlags = append([]string{}, r.flags...)
	}
	if r.hdr.edited {
		r.res.FinalHeader = headerBytes(r.hdr.fields)
	}
	return r.res, nil
}

func (r *runner) fail(format string, args ...any) error {
	return &RuntimeError{Line: r.cur.line, Col: r.cur.col, Msg: fmt.Sprintf(format, args...)}
}

// step counts one unit of work against MaxSteps and checks ctx now and
// then.
func (r *runner) step() error { return r.spend(1) }

// spend counts n units of work: comparisons of long strings cost in
// proportion to their length (see matchCost).
func (r *runner) spend(n int) error {
	before := r.steps
	r.steps += n
	if r.steps > r.lim.MaxSteps {
		return r.fail("script used more than %d steps", r.lim.MaxSteps)
	}
	if r.steps>>10 != before>>10 {
		if err := r.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) block(cmds []*node) (ctrl, error) {
	for _, n := range cmds {
		c, err := r.command(n)
		if err != nil || c != ctrlNext {
			return c, err
		}
	}
	return ctrlNext, nil
}

func (r *runner) command(n *node) (ctrl, error) {
	if err := r.step(); err != nil {
		return ctrlStop, err
	}
	r.cur = n.pos
	switch n.name {
	case "if":
		ok, err := r.test(n.tests[0])
		if err != nil {
			return ctrlStop, err
		}
		if ok {
			return r.block(n.block)
		}
		for _, e := range n.elses {
			if e.name == "else" {
				return r.block(e.block)
			}
			r.cur = e.pos
			ok, err := r.test(e.tests[0])
			if err != nil {
				return ctrlStop, err
			}
			if ok {
				return r.block(e.block)
			}
		}
		return ctrlNext, nil
	case "stop":
		return ctrlStop, nil
	case "return":
		return ctrlReturn, nil
	case "include":
		return r.include(n)
	case "global":
		for _, name := range n.args[0].strs {
			r.sc.globals[strings.ToLower(name)] = true
		}
		return ctrlNext, nil
	case "set":
		return ctrlNext, r.set(n)
	case "setflag", "addflag", "removeflag":
		return ctrlNext, r.flagCommand(n)
	case "addheader":
		return ctrlNext, r.addHeader(n)
	case "deleteheader":
		return ctrlNext, r.deleteHeader(n)
	}
	return ctrlNext, r.action(n)
}

// str expands variables in s when the running script uses them.
func (r *runner) str(s string) string {
	if !r.sc.s.variables || !strings.Contains(s, "${") {
		return s
	}
	return r.expand(s)
}

func (r *runner) strs(a argument) []string {
	if !r.sc.s.variables {
		return a.strs
	}
	plain := true
	for _, s := range a.strs {
		plain = plain && !strings.Contains(s, "${")
	}
	if plain {
		return a.strs
	}
	out := make([]string, len(a.strs))
	for i, s := range a.strs {
		out[i] = r.str(s)
	}
	return out
}

func (r *runner) arg(n *node, i int) string { return r.str(n.args[i].strs[0]) }

func (r *runner) tagStr(n *node, tag string) (string, bool) {
	a, ok := n.tags[tag]
	if !ok {
		return "", false
	}
	return r.str(a.strs[0]), true
}

// test evaluates a test.
func (r *runner) test(n *node) (bool, error) {
	if err := r.step(); err != nil {
		return false, err
	}
	switch n.name {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "not":
		ok, err := r.test(n.tests[0])
		return !ok, err
	case "allof":
		for _, t := range n.tests {
			if ok, err := r.test(t); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	case "anyof":
		for _, t := range n.tests {
			if ok, err := r.test(t); ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	case "exists":
		for _, name := range r.strs(n.args[0]) {
			if len(r.hdr.values(name)) == 0 {
				return false, nil
			}
		}
		return true, nil
	case "size":
		if a, ok := n.tags["over"]; ok {
			return uint64(r.msg.Size()) > a.num, nil
		}
		return uint64(r.msg.Size()) < n.tags["under"].num, nil
	case "header":
		return r.match(n, r.headerValues(n, r.strs(n.args[0]), false), r.strs(n.args[1]))
	case "address":
		return r.match(n, r.headerValues(n, r.strs(n.args[0]), true), r.strs(n.args[1]))
	case "envelope":
		if err := r.notInIMAPEvent("envelope"); err != nil {
			return false, err
		}
		return r.match(n, r.envelopeValues(n), r.strs(n.args[1]))
	case "environment":
		return r.environment(n)
	case "string":
		var vals []string
		for _, v := range r.strs(n.args[0]) {
			if n.m.typ != "count" || v != "" {
				vals = append(vals, v)
			}
		}
		return r.match(n, vals, r.strs(n.args[1]))
	case "hasflag":
		keys := r.strs(n.args[len(n.args)-1])
		if n.m.typ != "count" {
			keys = splitFlagKeys(keys)
		}
		return r.match(n, r.flagValues(n), keys)
	case "body":
		vals, err := r.bodyValues(n)
		if err != nil {
			return false, err
		}
		return r.match(n, vals, r.strs(n.args[0]))
	case "date", "currentdate":
		return r.dateTest(n)
	case "mailboxexists", "specialuse_exists", "mailboxidexists":
		return r.mailboxTest(n)
	case "duplicate":
		return r.duplicate(n)
	}
	return false, r.fail("test %s not implemented", n.name)
}

// match runs the test's match type and comparator over values.
func (r *runner) match(n *node, values, keys []string) (bool, error) {
	mt, err := r.newMatcher(n.m, keys)
	if err != nil {
		return false, err
	}
	return mt.matchValues(values)
}

// headerValues returns the values of the named header fields, applying
// :index/:last; addresses splits them into addresses and takes the
// address part.
func (r *runner) headerValues(n *node, names []string, addresses bool) []string {
	var out []string
	for _, name := range names {
		if !addresses {
			out = append(out, pickIndex(r.hdr.decodedValues(name), n.m.index, n.m.last)...)
			continue
		}
		for _, list := range pickIndex(r.hdr.addressValues(name), n.m.index, n.m.last) {
			for _, a := range list {
				if p, ok := addressPart(a, n.m.addrPart); ok {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// pickIndex applies :index n (1-based) and :last (count from the end).
func pickIndex[T any](vals []T, index int, last bool) []T {
	if index == 0 {
		return vals
	}
	if index > len(vals) {
		return nil
	}
	if last {
		return vals[len(vals)-index : len(vals)-index+1]
	}
	return vals[index-1 : index]
}

func (r *runner) envelopeValues(n *node) []string {
	var out []string
	for _, part := range r.strs(n.args[0]) {
		var v string
		switch strings.ToLower(part) {
		case "from":
			v = r.env.From
		case "to":
			v = r.env.To
		case "orig_to":
			v = r.env.OrigTo
			if v == "" {
				v = r.env.To
			}
		case "auth":
			v = r.env.Auth
			if v == "" {
				continue
			}
		default:
			continue
		}
		if v == "" {
			// The null reverse-path matches "" whatever the part.
			out = append(out, "")
			continue
		}
		if p, ok := addressPart(v, n.m.addrPart); ok {
			out = append(out, p)
		}
	}
	return out
}

func (r *runner) regex(pattern, comparator string) (*regexp.Regexp, error) {
	key := comparator + "\x00" + pattern
	if re, ok := r.regexCache[key]; ok {
		return re, nil
	}
	if len(r.regexCache) >= 64 {
		return nil, r.fail("too many distinct regular expressions")
	}
	re, err := compileRegex(pattern, comparator)
	if err != nil {
		return nil, r.fail("%v", err)
	}
	r.regexCache[key] = re
	return re, nil
}

// addAction appends an action, enforcing MaxActions.
func (r *runner) addAction(a Action) error {
	if len(r.res.Actions) >= r.lim.MaxActions {
		return r.fail("more than %d actions", r.lim.MaxActions)
	}
	a.Line = r.cur.line
	r.res.Actions = append(r.res.Actions, a)
	return nil
}

func (r *runner) has(kind ActionKind) bool {
	for _, a := range r.res.Actions {
		if a.Kind == kind {
			return true
		}
	}
	return false
}

// header snapshot for delivering actions: nil when unedited.
func (r *runner) headerSnapshot() []byte {
	if !r.hdr.edited {
		return nil
	}
	return headerBytes(r.hdr.fields)
}

// action runs keep, fileinto, redirect, discard, reject, ereject, vacation.
func (r *runner) action(n *node) error {
	rejected := r.has(ActionReject) || r.has(ActionEreject)
	delivering := n.name == "keep" || n.name == "fileinto" || n.name == "redirect" || n.name == "vacation"
	if rejected && (delivering || n.name == "reject" || n.name == "ereject") {
		return r.fail("%s cannot be combined with reject", n.name)
	}
	switch n.name {
	case "keep":
		flags, err := r.actionFlags(n)
		if err != nil {
			return err
		}
		r.keepCancelled = true
		return r.addAction(Action{Kind: ActionKeep, Flags: flags, Header: r.headerSnapshot()})
	case "fileinto":
		flags, err := r.actionFlags(n)
		if err != nil {
			return err
		}
		a := Action{Kind: ActionFileinto, Mailbox: r.arg(n, 0), Flags: flags, Copy: n.has("copy"), Create: n.has("create"), Header: r.headerSnapshot()}
		a.SpecialUse, _ = r.tagStr(n, "specialuse")
		a.MailboxID, _ = r.tagStr(n, "mailboxid")
		if a.Mailbox == "" {
			return r.fail("fileinto: empty mailbox name")
		}
		if !a.Copy {
			r.keepCancelled = true
		}
		return r.addAction(a)
	case "redirect":
		addr := r.arg(n, 0)
		if _, err := mail.ParseAddress(addr); err != nil {
			return r.fail("redirect: invalid address %q", addr)
		}
		count := 0
		for _, a := range r.res.Actions {
			if a.Kind == ActionRedirect {
				if strings.EqualFold(a.Address, addr) {
					if !n.has("copy") {
						r.keepCancelled = true
					}
					return nil // the same address once (RFC 5228 §4.2)
				}
				count++
			}
		}
		if count >= r.lim.MaxRedirects {
			return r.fail("more than %d redirects", r.lim.MaxRedirects)
		}
		if !n.has("copy") {
			r.keepCancelled = true
		}
		return r.addAction(Action{Kind: ActionRedirect, Address: addr, Copy: n.has("copy"), Header: r.headerSnapshot()})
	case "discard":
		r.keepCancelled = true
		return r.addAction(Action{Kind: ActionDiscard})
	case "reject", "ereject":
		if err := r.notInIMAPEvent(n.name); err != nil {
			return err
		}
		for _, a := range r.res.Actions {
			if a.Kind == ActionKeep || a.Kind == ActionFileinto || a.Kind == ActionRedirect || a.Kind == ActionVacation {
				return r.fail("%s cannot be combined with %s", n.name, a.Kind)
			}
		}
		r.keepCancelled = true
		return r.addAction(Action{Kind: ActionKind(n.name), Reason: r.arg(n, 0)})
	case "vacation":
		if err := r.notInIMAPEvent(n.name); err != nil {
			return err
		}
		return r.vacation(n)
	}
	return r.fail("command %s not implemented", n.name)
}

// actionFlags returns the flags of keep/fileinto: :flags, else the
// internal variable; nil when imap4flags is not in use and no flags
// were carried in (Envelope.InitialFlags).
func (r *runner) actionFlags(n *node) ([]string, error) {
	if !r.usesFlags && !r.carriesFlags {
		return nil, nil
	}
	if a, ok := n.tags["flags"]; ok {
		return normalizeFlags(r.strs(a)), nil
	}
	return append([]string{}, r.flags...), nil
}
