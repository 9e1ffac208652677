// Package logctx carries log attributes of a request in a
// context.Context, so that code below the server (the authenticator)
// logs with the session's id through its own logger, without taking a
// logger argument.
package logctx

import (
	"context"
	"log/slog"
)

type key struct{}

// With returns ctx carrying args (slog key-value pairs or slog.Attrs) in
// addition to those ctx already carries.
func With(ctx context.Context, args ...any) context.Context {
	prev, _ := ctx.Value(key{}).([]any)
	all := make([]any, 0, len(prev)+len(args))
	all = append(append(all, prev...), args...)
	return context.WithValue(ctx, key{}, all)
}

// Logger returns log with the attributes ctx carries, or log itself when
// it carries none.
func Logger(ctx context.Context, log *slog.Logger) *slog.Logger {
	if args, _ := ctx.Value(key{}).([]any); len(args) > 0 {
		return log.With(args...)
	}
	return log
}
