package sieve

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// node is a checked command or test.
type node struct {
	pos   pos
	name  string
	tags  map[string]argument // tags present; a flag tag has kind argTag
	args  []argument          // positional arguments, optional leading ones left out
	tests []*node
	block []*node
	elses []*node // for "if": the elsif and else branches in order
	m     *matchSpec
}

func (n *node) has(tag string) bool {
	_, ok := n.tags[tag]
	return ok
}

// Script is a compiled script, safe for concurrent use by several
// executions.
type Script struct {
	cmds      []*node
	exts      map[string]bool
	variables bool // "variables" required: strings are expanded
	opts      Options
	size      int
}

// Extensions returns the extensions the script requires, sorted.
func (s *Script) Extensions() []string {
	out := make([]string, 0, len(s.exts))
	for e := range s.exts {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

func (o Options) withDefaults() Options {
	if o.MaxScriptBytes <= 0 {
		o.MaxScriptBytes = 1 << 20
	}
	if o.MaxNesting <= 0 {
		o.MaxNesting = 32
	}
	// Checking and running recurse once per level: keep the stack small.
	o.MaxNesting = min(o.MaxNesting, 1000)
	return o
}

// Compile parses and checks a script. Errors are *CompileError with the
// line and column of the problem.
func Compile(src []byte, opts Options) (*Script, error) {
	opts = opts.withDefaults()
	if len(src) > opts.MaxScriptBytes {
		return nil, &CompileError{Line: 1, Col: 1, Msg: fmt.Sprintf("script too large (%d bytes, limit %d)", len(src), opts.MaxScriptBytes)}
	}
	if !utf8.Valid(src) {
		return nil, &CompileError{Line: 1, Col: 1, Msg: "script is not valid UTF-8"}
	}
	tree, err := parseScript(src, opts.MaxNesting)
	if err != nil {
		return nil, err
	}
	c := &checker{allowed: map[string]bool{}, s: &Script{exts: map[string]bool{}, opts: opts, size: len(src)}}
	exts := opts.Extensions
	if exts == nil {
		exts = supportedExtensions
	}
	for _, e := range exts {
		c.allowed[strings.ToLower(e)] = true
	}
	c.allowed["comparator-i;octet"] = true
	c.allowed["comparator-i;ascii-casemap"] = true
	cmds, err := c.block(tree, true)
	if err != nil {
		return nil, err
	}
	c.s.cmds = cmds
	return c.s, nil
}

type checker struct {
	s       *Script
	allowed map[string]bool
}

func errAt(p pos, format string, args ...any) error {
	return &CompileError{Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)}
}

// block checks a command list; top is the script's top level, the only
// place where require may appear (before any other command).
func (c *checker) block(in []*syntaxNode, top bool) ([]*node, error) {
	var out []*node
	requireOK := top
	for _, sn := range in {
		if sn.name == "require" {
			if !requireOK {
				return nil, errAt(sn.pos, "require must come before any other command, at the top of the script")
			}
			if err := c.require(sn); err != nil {
				return nil, err
			}
			continue
		}
		requireOK = false
		n, err := c.command(sn)
		if err != nil {
			return nil, err
		}
		if n.name == "elsif" || n.name == "else" {
			var prev *node
			if len(out) > 0 {
				prev = out[len(out)-1]
			}
			if prev == nil || prev.name != "if" || (len(prev.elses) > 0 && prev.elses[len(prev.elses)-1].name == "else") {
				return nil, errAt(sn.pos, "%s without a preceding if", n.name)
			}
			prev.elses = append(prev.elses, n)
			continue
		}
		out = append(out, n)
	}
	return out, nil
}

func (c *checker) require(sn *syntaxNode) error {
	if len(sn.args) != 1 || (sn.args[0].kind != argString && sn.args[0].kind != argStringList) || len(sn.tests) > 0 || sn.hasBlock {
		return errAt(sn.pos, "require takes one string list of extension names")
	}
	for _, name := range sn.args[0].strs {
		e := strings.ToLower(name)
		if !c.allowed[e] {
			return errAt(sn.args[0].pos, "unsupported extension %q in require", name)
		}
		c.s.exts[e] = true
		if e == "variables" {
			c.s.variables = true
		}
	}
	return nil
}

func (c *checker) command(sn *syntaxNode) (*node, error) {
	sp, ok := commands[sn.name]
	if !ok {
		if _, isTest := tests[sn.name]; isTest {
			return nil, errAt(sn.pos, "%s is a test, not a command", sn.name)
		}
		return nil, errAt(sn.pos, "unknown command %q", sn.name)
	}
	n, err := c.node(sn, sp)
	if err != nil {
		return nil, err
	}
	if sp.block != sn.hasBlock {
		if sp.block {
			return nil, errAt(sn.pos, "%s needs a block", sn.name)
		}
		return nil, errAt(sn.pos, "%s takes no block", sn.name)
	}
	if sn.hasBlock {
		if n.block, err = c.block(sn.block, false); err != nil {
			return nil, err
		}
	}
	return n, c.commandRules(n)
}

func (c *checker) test(sn *syntaxNode) (*node, error) {
	sp, ok := tests[sn.name]
	if !ok {
		if _, isCmd := commands[sn.name]; isCmd {
			return nil, errAt(sn.pos, "%s is a command, not a test", sn.name)
		}
		return nil, errAt(sn.pos, "unknown test %q", sn.name)
	}
	n, err := c.node(sn, sp)
	if err != nil {
		return nil, err
	}
	return n, c.testRules(n)
}

// node checks what every command and test shares: the extension, the
// tagged arguments, the positional arguments and the tests.
func (c *checker) node(sn *syntaxNode, sp *spec) (*node, error) {
	if sp.ext != "" && !c.s.exts[sp.ext] {
		return nil, errAt(sn.pos, "%s needs require %q", sn.name, sp.ext)
	}
	n := &node{pos: sn.pos, name: sn.name, tags: map[string]argument{}}
	groups := map[string]string{}
	args := sn.args
	for len(args) > 0 && args[0].kind == argTag {
		a := args[0]
		args = args[1:]
		ts, ok := sp.tags[a.tag]
		if !ok {
			return nil, errAt(a.pos, "%s has no tagged argument :%s", sn.name, a.tag)
		}
		if ts.ext != "" && !c.s.exts[ts.ext] {
			return nil, errAt(a.pos, ":%s needs require %q", a.tag, ts.ext)
		}
		if _, dup := n.tags[a.tag]; dup {
			return nil, errAt(a.pos, ":%s given twice", a.tag)
		}
		if ts.group != "" {
			if other, ok := groups[ts.group]; ok {
				return nil, errAt(a.pos, ":%s cannot be combined with :%s", a.tag, other)
			}
			groups[ts.group] = a.tag
		}
		if ts.arg != argNone {
			if len(args) == 0 || !argFits(args[0].kind, ts.arg) {
				return nil, errAt(a.pos, ":%s needs %s", a.tag, ts.arg)
			}
			n.tags[a.tag] = c.strings(args[0])
			args = args[1:]
		} else {
			n.tags[a.tag] = a
		}
	}
	if len(args) < sp.minArgs || len(args) > len(sp.args) {
		if len(args) > 0 && args[0].kind == argTag {
			return nil, errAt(args[0].pos, "unexpected tagged argument :%s", args[0].tag)
		}
		if len(sp.args) == sp.minArgs {
			return nil, errAt(sn.pos, "%s takes %d positional argument(s), found %d", sn.name, sp.minArgs, len(args))
		}
		return nil, errAt(sn.pos, "%s takes %d to %d positional arguments, found %d", sn.name, sp.minArgs, len(sp.args), len(args))
	}
	kinds := sp.args[len(sp.args)-len(args):]
	for i, a := range args {
		if !argFits(a.kind, kinds[i]) {
			if a.kind == argTag {
				return nil, errAt(a.pos, "tagged argument :%s must come before the positional arguments", a.tag)
			}
			return nil, errAt(a.pos, "%s: argument %d must be %s", sn.name, i+1, kinds[i])
		}
		n.args = append(n.args, c.strings(a))
	}
	switch {
	case sp.tests == 0 && len(sn.tests) > 0:
		return nil, errAt(sn.tests[0].pos, "%s takes no test", sn.name)
	case sp.tests == 1 && (len(sn.tests) != 1 || sn.testList):
		return nil, errAt(sn.pos, "%s needs exactly one test", sn.name)
	case sp.tests == -1 && !sn.testList:
		return nil, errAt(sn.pos, "%s needs a test list in parentheses", sn.name)
	}
	for _, st := range sn.tests {
		t, err := c.test(st)
		if err != nil {
			return nil, err
		}
		n.tests = append(n.tests, t)
	}
	if _, ok := sp.tags["comparator"]; ok {
		m, err := c.matchSpec(n)
		if err != nil {
			return nil, err
		}
		n.m = m
	}
	return n, nil
}

func argFits(have, want argKind) bool {
	switch want {
	case argString:
		return have == argString
	case argStringList:
		return have == argString || have == argStringList
	case argNumber:
		return have == argNumber
	}
	return false
}

// strings applies encoded-character (RFC 5228 §2.4.2.4) to a string
// argument when the script requires it.
func (c *checker) strings(a argument) argument {
	if !c.s.exts["encoded-character"] || (a.kind != argString && a.kind != argStringList) {
		return a
	}
	out := make([]string, len(a.strs))
	for i, s := range a.strs {
		out[i] = decodeEncodedCharacters(s)
	}
	a.strs = out
	return a
}

// constant reports whether s has no variable reference to expand at run time.
func (c *checker) constant(s string) bool {
	return !c.s.variables || !strings.Contains(s, "${")
}

func (c *checker) commandRules(n *node) error {
	switch n.name {
	case "fileinto":
		if mb := n.args[0].strs[0]; c.constant(mb) && mb == "" {
			return errAt(n.args[0].pos, "fileinto: empty mailbox name")
		}
		if a, ok := n.tags["specialuse"]; ok && c.constant(a.strs[0]) && !strings.HasPrefix(a.strs[0], `\`) {
			return errAt(a.pos, "fileinto :specialuse: %q is not a special-use flag", a.strs[0])
		}
	case "redirect":
		if addr := n.args[0].strs[0]; c.constant(addr) {
			if _, err := mail.ParseAddress(addr); err != nil {
				return errAt(n.args[0].pos, "redirect: invalid address %q", addr)
			}
		}
	case "setflag", "addflag", "removeflag":
		if len(n.args) == 2 {
			if err := c.variableName(n.args[0], n.args[0].strs[0]); err != nil {
				return err
			}
		}
	case "set":
		return c.variableName(n.args[0], n.args[0].strs[0])
	case "global":
		for _, name := range n.args[0].strs {
			if !c.s.exts["variables"] {
				return errAt(n.pos, "global needs require \"variables\"")
			}
			if err := c.variableName(n.args[0], name); err != nil {
				return err
			}
		}
	case "addheader", "deleteheader":
		name := n.args[0].strs[0]
		if c.constant(name) {
			if !validFieldName(name) {
				return errAt(n.args[0].pos, "%s: invalid header field name %q", n.name, name)
			}
			if protectedField(name) {
				return errAt(n.args[0].pos, "%s: the %s header field may not be changed", n.name, name)
			}
		}
		if n.name == "deleteheader" {
			if a, ok := n.tags["index"]; ok && a.num == 0 {
				return errAt(a.pos, ":index must be 1 or more")
			}
			if n.has("last") && !n.has("index") {
				return errAt(n.tags["last"].pos, ":last needs :index")
			}
		}
	case "include":
		name := n.args[0].strs[0]
		if name == "" || strings.ContainsAny(name, "/\x00") {
			return errAt(n.args[0].pos, "include: invalid script name %q", name)
		}
	case "vacation":
		if a, ok := n.tags["from"]; ok && c.constant(a.strs[0]) {
			if _, err := mail.ParseAddress(a.strs[0]); err != nil {
				return errAt(a.pos, "vacation :from: invalid address %q", a.strs[0])
			}
		}
	}
	return nil
}

func (c *checker) testRules(n *node) error {
	switch n.name {
	case "size":
		if !n.has("over") && !n.has("under") {
			return errAt(n.pos, "size needs :over or :under")
		}
	case "hasflag":
		if len(n.args) == 2 {
			for _, v := range n.args[0].strs {
				if err := c.variableName(n.args[0], v); err != nil {
					return err
				}
			}
		}
	case "date", "currentdate":
		part := n.args[len(n.args)-2]
		if c.constant(part.strs[0]) && !validDatePart(strings.ToLower(part.strs[0])) {
			return errAt(part.pos, "%s: unknown date part %q", n.name, part.strs[0])
		}
		if z, ok := n.tags["zone"]; ok && c.constant(z.strs[0]) {
			if _, ok := parseZone(z.strs[0]); !ok {
				return errAt(z.pos, "%s: bad :zone %q (want +hhmm or -hhmm)", n.name, z.strs[0])
			}
		}
	case "duplicate":
		if a, ok := n.tags["header"]; ok && !validFieldName(a.strs[0]) {
			return errAt(a.pos, "duplicate :header: invalid header field name %q", a.strs[0])
		}
	case "envelope":
		for _, p := range n.args[0].strs {
			if lp := strings.ToLower(p); c.constant(p) && lp != "from" && lp != "to" && lp != "auth" && lp != "orig_to" {
				return errAt(n.args[0].pos, "envelope: unknown envelope part %q", p)
			}
		}
	}
	if a, ok := n.tags["last"]; ok && n.name != "duplicate" && !n.has("index") {
		return errAt(a.pos, ":last needs :index")
	}
	if a, ok := n.tags["index"]; ok && a.num == 0 {
		return errAt(a.pos, ":index must be 1 or more")
	}
	return nil
}

// variableName checks a variable name to be set (RFC 5229 §3).
func (c *checker) variableName(a argument, name string) error {
	if !isIdentifier(name) && !isNamespacedIdentifier(name) {
		return errAt(a.pos, "invalid variable name %q", name)
	}
	return nil
}

func isIdentifier(s string) bool {
	if s == "" || !isIdentStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

// isNamespacedIdentifier accepts "global.name" (RFC 6609).
func isNamespacedIdentifier(s string) bool {
	ns, rest, ok := strings.Cut(s, ".")
	return ok && strings.EqualFold(ns, "global") && isIdentifier(rest)
}

// validFieldName checks an RFC 5322 field name: printable ASCII but colon.
func validFieldName(s string) bool {
	if s == "" || len(s) > 997 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 || s[i] == ':' {
			return false
		}
	}
	return true
}

// protectedField reports header fields editheader must not touch (RFC
// 5293 §6: Received, and Auto-Submitted which loop protection relies on).
func protectedField(name string) bool {
	return strings.EqualFold(name, "received") || strings.EqualFold(name, "auto-submitted")
}

// matchSpec is the match type, comparator and their details of a test.
type matchSpec struct {
	typ        string // is, contains, matches, regex, value, count
	rel        string // relational operator of :value/:count
	comparator string
	addrPart   string // all, localpart, domain, user, detail
	index      int    // :index (0: all)
	last       bool
	regexes    []*regexp.Regexp // precompiled constant keys of :regex
	globs      [][]globToken    // parsed constant keys of :matches (folded for i;ascii-casemap)
	globKeys   []string         // the keys globs were parsed from
}

var relOps = map[string]bool{"gt": true, "ge": true, "lt": true, "le": true, "eq": true, "ne": true}

func (c *checker) matchSpec(n *node) (*matchSpec, error) {
	m := &matchSpec{typ: "is", comparator: "i;ascii-casemap", addrPart: "all"}
	for _, t := range []string{"is", "contains", "matches", "regex", "value", "count"} {
		if a, ok := n.tags[t]; ok {
			m.typ = t
			if t == "value" || t == "count" {
				m.rel = strings.ToLower(a.strs[0])
				if !relOps[m.rel] {
					return nil, errAt(a.pos, "unknown relational operator %q", a.strs[0])
				}
			}
		}
	}
	for _, t := range []string{"all", "localpart", "domain", "user", "detail"} {
		if n.has(t) {
			m.addrPart = t
		}
	}
	if a, ok := n.tags["comparator"]; ok {
		m.comparator = strings.ToLower(a.strs[0])
		switch m.comparator {
		case "i;octet", "i;ascii-casemap":
		case "i;ascii-numeric":
			if !c.s.exts["comparator-i;ascii-numeric"] {
				return nil, errAt(a.pos, "comparator i;ascii-numeric needs require \"comparator-i;ascii-numeric\"")
			}
		default:
			return nil, errAt(a.pos, "unknown comparator %q", a.strs[0])
		}
	}
	if m.comparator == "i;ascii-numeric" && (m.typ == "contains" || m.typ == "matches" || m.typ == "regex") {
		return nil, errAt(n.pos, "comparator i;ascii-numeric does not support :%s", m.typ)
	}
	if a, ok := n.tags["index"]; ok {
		if a.num > 1<<20 {
			return nil, errAt(a.pos, ":index too large")
		}
		m.index = int(a.num)
	}
	m.last = n.has("last")
	if m.typ == "matches" && len(n.args) > 0 {
		keys := n.args[len(n.args)-1].strs
		constant := true
		for _, k := range keys {
			constant = constant && c.constant(k)
		}
		if constant {
			m.globKeys = keys
			for _, k := range keys {
				if m.comparator == "i;ascii-casemap" {
					k = foldASCII(k)
				}
				m.globs = append(m.globs, parseGlob(k))
			}
		}
	}
	if m.typ == "regex" && len(n.args) > 0 {
		keys := n.args[len(n.args)-1]
		for _, k := range keys.strs {
			if !c.constant(k) {
				m.regexes = nil
				break
			}
			re, err := compileRegex(k, m.comparator)
			if err != nil {
				return nil, errAt(keys.pos, "%v", err)
			}
			m.regexes = append(m.regexes, re)
		}
	}
	return m, nil
}
