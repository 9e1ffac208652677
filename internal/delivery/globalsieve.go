package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tern-imap/tern/internal/sieve"
	"github.com/tern-imap/tern/internal/store"
)

// Global Sieve scripts: the operator's scripts that run before and after
// every user's own (sieve.before, sieve.after) and the scripts that
// "include :global" names (sieve.global_dir). Semantics follow
// Pigeonhole's sieve_before/sieve_after:
//
//   - The scripts form one sequence: before scripts, the user's active
//     script (if any), after scripts. Each runs as its own execution (its
//     own variables) on the same message.
//   - The next script runs only when the one before it ended with a keep
//     in effect (its implicit keep, or an explicit keep). A script that
//     files the message elsewhere, discards, rejects or redirects without
//     :copy ends the sequence. "stop" ends only the script it is in.
//   - A keep of a script that is followed by another is not stored: the
//     next script decides where the message goes (its implicit keep is
//     INBOX). Every other action (fileinto :copy, redirect :copy,
//     vacation, header edits, duplicate marks) of every script that ran
//     is carried out.
//   - The flags of that keep (imap4flags: an explicit "keep :flags", or
//     the internal variable a plain or implicit keep uses) travel with
//     the message: the next script's internal variable starts with them
//     (sieve.Envelope.InitialFlags) instead of empty, so its implicit
//     keep, its keeps and its fileintos without :flags store them, and
//     hasflag/removeflag/setflag see and change them. A script that
//     does not use imap4flags passes them on unchanged. Pigeonhole
//     behaves alike for flags set with addflag/setflag (its imap4flags
//     variable lives in the result shared by the whole sequence) and
//     hands an explicit "keep :flags" of an earlier script to the final
//     implicit keep.
//   - Header edits (editheader) of a script are seen by the scripts after
//     it.
//   - A script that fails (a runtime error, or a user script that does
//     not compile) counts as an implicit keep: its actions are dropped
//     and the sequence goes on. A reject after an earlier script already
//     stored or sent the message is such an error.
//
// The before, after and global_dir scripts are read and compiled when
// tern starts (LoadGlobalScripts); a script that does not compile stops
// the start with its path, line and column. A running server reloads
// them on SIGHUP (cmd/tern: LoadGlobalScripts again, then
// Deliverer.SetGlobal); a set that fails to load leaves the old one in
// use.

// GlobalConfig names the operator's scripts.
type GlobalConfig struct {
	// Before and After are script files, or directories whose *.sieve
	// files run in the byte order of their names.
	Before, After []string
	// Dir holds the scripts "include :global" names: include :global
	// "spam" reads Dir/spam.sieve. Empty: no global includes.
	Dir string
	// IMAPSieve are the operator's IMAPSIEVE rules (imapsieve.go).
	IMAPSieve []IMAPSieveRule
}

// IMAPSieveRule runs the operator's scripts around a mailbox's own
// IMAPSIEVE script, as Pigeonhole's imapsieve_mailboxN_* settings do.
type IMAPSieveRule struct {
	Mailbox       string   // mailbox name pattern (LIST wildcards)
	From          string   // when set: only COPY from mailboxes matching this pattern
	Causes        []string // "APPEND", "COPY", "FLAG"; empty: all
	Before, After []string // script files or directories, as GlobalConfig.Before
}

// imapRule is a compiled IMAPSieveRule.
type imapRule struct {
	mailbox, from string
	causes        []string
	before, after []globalScript
}

// matches reports whether the rule runs for an event of cause on
// mailbox (from: a COPY's source mailbox).
func (r *imapRule) matches(mailbox, cause, from string) bool {
	if r.from != "" && (cause != "COPY" || !store.MatchMailbox([]string{r.from}, from)) {
		return false
	}
	return (len(r.causes) == 0 || slices.Contains(r.causes, cause)) && store.MatchMailbox([]string{r.mailbox}, mailbox)
}

// GlobalScripts are the operator's compiled scripts.
type GlobalScripts struct {
	before, after []globalScript
	includes      map[string][]byte // include :global targets by name
	imap          []imapRule
}

type globalScript struct {
	path   string
	script *sieve.Script
}

// stage is s as one script of a sequence.
func (s globalScript) stage() stage { return stage{what: s.path, script: s.script} }

// LoadGlobalScripts reads and compiles the scripts cfg names. Every
// script, those of Dir included, must compile.
func LoadGlobalScripts(cfg GlobalConfig) (*GlobalScripts, error) {
	g := &GlobalScripts{includes: map[string][]byte{}}
	if cfg.Dir != "" {
		files, err := sieveFiles(cfg.Dir, true)
		if err != nil {
			return nil, fmt.Errorf("sieve.global_dir: %w", err)
		}
		for _, f := range files {
			src, _, err := compileFile(f)
			if err != nil {
				return nil, fmt.Errorf("sieve.global_dir: %w", err)
			}
			g.includes[strings.TrimSuffix(filepath.Base(f), ".sieve")] = src
		}
	}
	var err error
	if g.before, err = loadSequence(cfg.Before); err != nil {
		return nil, fmt.Errorf("sieve.before: %w", err)
	}
	if g.after, err = loadSequence(cfg.After); err != nil {
		return nil, fmt.Errorf("sieve.after: %w", err)
	}
	for i, r := range cfg.IMAPSieve {
		ir := imapRule{mailbox: r.Mailbox, from: r.From, causes: r.Causes}
		if ir.before, err = loadSequence(r.Before); err != nil {
			return nil, fmt.Errorf("sieve.imapsieve_mailbox[%d].before: %w", i, err)
		}
		if ir.after, err = loadSequence(r.After); err != nil {
			return nil, fmt.Errorf("sieve.imapsieve_mailbox[%d].after: %w", i, err)
		}
		g.imap = append(g.imap, ir)
	}
	return g, nil
}

// imapStages returns the operator's IMAPSIEVE scripts for an event of
// cause on mailbox (from: a COPY's source): the before scripts of every
// matching rule in rule order, then their after scripts.
func (g *GlobalScripts) imapStages(mailbox, cause, from string) (before, after []stage) {
	if g == nil {
		return nil, nil
	}
	for i := range g.imap {
		r := &g.imap[i]
		if !r.matches(mailbox, cause, from) {
			continue
		}
		for _, s := range r.before {
			before = append(before, s.stage())
		}
		for _, s := range r.after {
			after = append(after, s.stage())
		}
	}
	return before, after
}

// Empty reports whether g has no scripts at all (nil included).
func (g *GlobalScripts) Empty() bool {
	return g == nil || len(g.before) == 0 && len(g.after) == 0 && len(g.includes) == 0 && len(g.imap) == 0
}

// Counts returns how many before, after and includable scripts g has.
func (g *GlobalScripts) Counts() (before, after, includes int) {
	if g == nil {
		return 0, 0, 0
	}
	return len(g.before), len(g.after), len(g.includes)
}

// IMAPRules returns how many operator IMAPSIEVE rules g has.
func (g *GlobalScripts) IMAPRules() int {
	if g == nil {
		return 0
	}
	return len(g.imap)
}

// Runs reports whether g has scripts to run around the user's.
func (g *GlobalScripts) Runs() bool { return g != nil && len(g.before)+len(g.after) > 0 }

func loadSequence(paths []string) ([]globalScript, error) {
	var out []globalScript
	for _, p := range paths {
		files, err := sieveFiles(p, false)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			_, s, err := compileFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, globalScript{path: f, script: s})
		}
	}
	return out, nil
}

// sieveFiles returns path itself when it is a file, or the *.sieve
// files in it, sorted by name, when it is a directory. dirOnly refuses
// a file.
func sieveFiles(path string, dirOnly bool) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		if dirOnly {
			return nil, fmt.Errorf("%s is not a directory", path)
		}
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sieve") && !strings.HasPrefix(e.Name(), ".") && !e.IsDir() {
			out = append(out, filepath.Join(path, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// compileFile reads and compiles a script.
func compileFile(path string) ([]byte, *sieve.Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	s, err := sieve.Compile(src, sieve.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return src, s, nil
}

// includeResolver resolves "include" for one delivery: :personal from
// the user's scripts (IncludeSource), :global from GlobalScripts' Dir
// when configured, else from the IncludeSource too.
type includeResolver struct {
	personal IncludeSource // nil: no personal scripts
	user     string
	global   *GlobalScripts
}

func (r includeResolver) Resolve(ctx context.Context, name string, global bool) ([]byte, error) {
	if global && r.global != nil && len(r.global.includes) > 0 {
		if src, ok := r.global.includes[name]; ok {
			return src, nil
		}
		return nil, fmt.Errorf("global script %q: %w", name, sieve.ErrScriptNotFound)
	}
	if r.personal == nil {
		return nil, fmt.Errorf("script %q: %w", name, sieve.ErrScriptNotFound)
	}
	b, err := r.personal.Script(ctx, r.user, name, global)
	if err == nil && b == nil {
		return nil, fmt.Errorf("script %q: %w", name, sieve.ErrScriptNotFound)
	}
	return b, err
}

// stage is one script of a delivery's sequence.
type stage struct {
	what   string // for logs: "user script" or the global script's path
	script *sieve.Script
	err    error // the user's script does not compile
}

// stages lists the scripts to run for a user whose active script is
// userSrc (nil: none) between g's before and after scripts.
func (d *Deliverer) stages(g *GlobalScripts, userSrc []byte) []stage {
	if userSrc == nil {
		return sequence(g, nil)
	}
	s, err := d.scripts.compile(userSrc, sieve.Options{})
	return sequence(g, &stage{what: "user script", script: s, err: err})
}

// sequence is g's before scripts, user (nil: none), g's after scripts.
func sequence(g *GlobalScripts, user *stage) []stage {
	var out []stage
	if g != nil {
		for _, s := range g.before {
			out = append(out, s.stage())
		}
	}
	if user != nil {
		out = append(out, *user)
	}
	if g != nil {
		for _, s := range g.after {
			out = append(out, s.stage())
		}
	}
	return out
}

// errRejectAfterDelivery: a reject in a later script of the sequence
// after an earlier one stored or sent the message.
var errRejectAfterDelivery = errors.New("reject after an earlier script stored or sent the message")

// StageReport is what one script of a sequence did, for "tern sieve
// test".
type StageReport struct {
	Script string        // the global script's path, or "user script"
	Result *sieve.Result // its own result; for a failed script an implicit keep
	Err    error         // why it failed (it then counts as an implicit keep)
	// Next: the message went on to the next script (the keep was in
	// effect and one follows).
	Next bool
}

// Simulate runs the sequence a delivery would run — g's before scripts,
// user (nil: none), g's after scripts — on in.Body with env and returns
// the combined result, storing and sending nothing. report, when not
// nil, gets each script's outcome in order. env.Include nil: include
// :global reads g's directory and :personal finds nothing.
func (d *Deliverer) Simulate(ctx context.Context, g *GlobalScripts, user *sieve.Script, in Incoming, env sieve.Envelope, report func(StageReport)) *sieve.Result {
	var u *stage
	if user != nil {
		u = &stage{what: "user script", script: user}
	}
	stages := sequence(g, u)
	if env.Include == nil {
		env.Include = includeResolver{user: in.User, global: g}
	}
	return d.runSequence(ctx, in, env, stages, report)
}

// runSequence runs the scripts of stages in turn as described at the top
// of this file and returns the combined result. It never fails: a
// failing script counts as an implicit keep. report (nil: none) gets
// each script's outcome.
func (d *Deliverer) runSequence(ctx context.Context, in Incoming, env sieve.Envelope, stages []stage, report func(StageReport)) *sieve.Result {
	out := &sieve.Result{ImplicitKeep: true}
	msg := sieve.NewMessage(in.Body)
	var header []byte  // the header as edited so far; nil: the original
	var flags []string // the flags the keep passed on; nil: none yet
	for i, st := range stages {
		err := st.err
		var r *sieve.Result
		if err == nil {
			senv := env
			senv.InitialFlags = flags
			if env.IMAP != nil && flags != nil { // the message's flags as the keep left them
				ev := *env.IMAP
				ev.Flags = flags
				senv.IMAP = &ev
			}
			r, err = st.script.Execute(ctx, senv, msg, d.opts.SieveLimits)
		}
		if err == nil && rejectsAfterDelivery(out.Actions, r.Actions) {
			err = errRejectAfterDelivery
		}
		if err != nil {
			d.log.Warn("sieve: script failed; it keeps the message", "user", in.User, "script", st.what, "err", err)
			r = &sieve.Result{ImplicitKeep: true, ImplicitKeepFlags: flags}
		}
		keeps := r.ImplicitKeep || hasAction(r.Actions, sieve.ActionKeep)
		next := keeps && i < len(stages)-1
		if next {
			flags = keptFlags(r, flags)
		}
		if report != nil {
			report(StageReport{Script: st.what, Result: r, Err: err, Next: next})
		}
		for _, a := range r.Actions {
			if a.Kind == sieve.ActionKeep && next {
				continue // deferred: the next script decides
			}
			if a.Header == nil && header != nil && carriesMessage(a.Kind) {
				a.Header = header
			}
			out.Actions = append(out.Actions, a)
		}
		out.DuplicateMarks = append(out.DuplicateMarks, r.DuplicateMarks...)
		out.Steps += r.Steps
		out.ImplicitKeep, out.ImplicitKeepFlags = r.ImplicitKeep, r.ImplicitKeepFlags
		if r.FinalHeader != nil {
			header = r.FinalHeader
			msg = sieve.NewMessage(append(append([]byte{}, header...), msg.Body()...))
		}
		if !next {
			break
		}
	}
	out.FinalHeader = header
	return out
}

// keptFlags are the flags of the keep with which r passes the message
// on: its last explicit keep's, else its implicit keep's; a script that
// set none (no imap4flags, nothing carried in) passes on carried.
func keptFlags(r *sieve.Result, carried []string) []string {
	for i := len(r.Actions) - 1; i >= 0; i-- {
		if a := r.Actions[i]; a.Kind == sieve.ActionKeep {
			if a.Flags != nil {
				return a.Flags
			}
			return carried
		}
	}
	if r.ImplicitKeepFlags != nil {
		return r.ImplicitKeepFlags
	}
	return carried
}

func hasAction(actions []sieve.Action, kind sieve.ActionKind) bool {
	return slices.ContainsFunc(actions, func(a sieve.Action) bool { return a.Kind == kind })
}

// carriesMessage: actions that store or send the message itself.
func carriesMessage(k sieve.ActionKind) bool {
	return k == sieve.ActionKeep || k == sieve.ActionFileinto || k == sieve.ActionRedirect
}

// rejectsAfterDelivery reports whether later rejects a message that
// earlier actions already store or send.
func rejectsAfterDelivery(earlier, later []sieve.Action) bool {
	if !hasAction(later, sieve.ActionReject) && !hasAction(later, sieve.ActionEreject) {
		return false
	}
	return slices.ContainsFunc(earlier, func(a sieve.Action) bool {
		return carriesMessage(a.Kind) || a.Kind == sieve.ActionVacation
	})
}
