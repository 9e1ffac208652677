package sieve

import (
	"errors"
	"strings"
)

// include (RFC 6609): the named script is fetched through the
// IncludeResolver, compiled with the includer's options and run in a
// scope of its own; only variables declared "global" are shared. A
// script already on the include stack is a loop (an error); :once skips
// a script included before in this execution.

func (r *runner) include(n *node) (ctrl, error) {
	name := n.args[0].strs[0]
	global := n.has("global")
	key := "personal:" + name
	if global {
		key = "global:" + name
	}
	if n.has("once") && r.once[key] {
		return ctrlNext, nil
	}
	for _, k := range r.chain {
		if k == key {
			return ctrlStop, r.fail("include loop: %s includes itself (%s)", name, strings.Join(append(r.chain, key), " -> "))
		}
	}
	if len(r.chain) >= r.lim.MaxIncludeDepth {
		return ctrlStop, r.fail("includes nested deeper than %d", r.lim.MaxIncludeDepth)
	}
	if r.includes >= r.lim.MaxIncludes {
		return ctrlStop, r.fail("more than %d includes", r.lim.MaxIncludes)
	}
	r.includes++
	script, err := r.loadInclude(name, global, key)
	if err != nil {
		if errors.Is(err, ErrScriptNotFound) && n.has("optional") {
			return ctrlNext, nil
		}
		return ctrlStop, err
	}
	if n.has("once") {
		r.once[key] = true
	}
	saved, savedPos := r.sc, r.cur
	r.sc = &scope{s: script, vars: map[string]string{}, globals: map[string]bool{}}
	r.chain = append(r.chain, key)
	c, err := r.block(script.cmds)
	r.chain = r.chain[:len(r.chain)-1]
	r.sc, r.cur = saved, savedPos
	if r.sc.s.exts["imap4flags"] || script.exts["imap4flags"] {
		r.usesFlags = true
	}
	if err != nil {
		return ctrlStop, err
	}
	if c == ctrlStop {
		return ctrlStop, nil
	}
	return ctrlNext, nil // "return" ends only the included script
}

func (r *runner) loadInclude(name string, global bool, key string) (*Script, error) {
	if s, ok := r.incCache[key]; ok {
		return s, nil
	}
	top := r.sc.s
	resolver := r.env.Include
	if resolver == nil {
		resolver = top.opts.Include
	}
	if resolver == nil {
		return nil, &RuntimeError{Line: r.cur.line, Col: r.cur.col, Msg: "include " + name + ": no script storage", wrapped: ErrScriptNotFound}
	}
	src, err := resolver.Resolve(r.ctx, name, global)
	if err != nil {
		if errors.Is(err, ErrScriptNotFound) {
			return nil, &RuntimeError{Line: r.cur.line, Col: r.cur.col, Msg: "include " + name + ": script not found", wrapped: ErrScriptNotFound}
		}
		if r.ctx.Err() != nil {
			return nil, err
		}
		return nil, r.fail("include %s: %v", name, err)
	}
	s, err := Compile(src, top.opts)
	if err != nil {
		return nil, r.fail("include %s: %v", name, err)
	}
	r.incCache[key] = s
	return s, nil
}
