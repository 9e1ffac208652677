// Package sieve is tern's Sieve mail filter (RFC 5228): a lexer, a parser
// into a checked tree, and an interpreter with explicit limits.
//
// The API is small and stable:
//
//	s, err := sieve.Compile(src, sieve.Options{Include: resolver})
//	msg := sieve.NewMessage(raw)
//	res, err := s.Execute(ctx, sieve.Envelope{From: from, To: rcpt}, msg, sieve.Limits{})
//
// Compile parses and checks a script: a *CompileError carries the line,
// column and a message (unknown command, extension not required, require
// not at the top, wrong arguments, bad comparator or regex...). Options
// bound the script size and nesting depth and restrict the extensions a
// script may require (nil: all of Supported()). A compiled Script is
// immutable and may run concurrently.
//
// Execute runs the script for one message and recipient. The Envelope
// holds the SMTP envelope, the user's addresses and two optional hooks:
// Mailboxes (mailboxexists, specialuse_exists, mailboxidexists) and
// Duplicates (the duplicate test). Limits bound the work: evaluation
// steps, actions, redirects, include depth and count, variable sizes,
// header edits. A limit hit, a failed include or conflicting actions stop
// the script with a *RuntimeError and a Result that keeps the message
// (ImplicitKeep, no actions): a broken script never loses mail.
//
// The Result lists the actions in order — keep, fileinto (mailbox,
// flags, :copy, :create, :specialuse, :mailboxid), discard,
// reject/ereject (reason), redirect (address, :copy), vacation (the reply
// already built per RFC 5230 §5; sending and its once-per-period rule
// belong to the caller), addheader/deleteheader (applied: delivering
// actions carry the edited header) — and whether the implicit keep stands.
// Result.Deliveries merges the actions that store the message into one
// entry per mailbox ("keep" plus "fileinto INBOX" is one copy);
// Action.String describes an action in Sieve-like syntax.
// DefaultLimits returns the limits a zero Limits stands for.
//
// Supported extensions: see Supported(). Include (RFC 6609) loads scripts
// at execution time through Envelope.Include (else Options.Include); a script on the include
// stack again is a loop and an error. Regular expressions use Go's
// regexp (RE2: linear time, no backreferences).
package sieve
