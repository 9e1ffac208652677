//go:build !unix

package sqlite

import "os"

// Without flock, a running server and tern check are not kept apart
// (serverlock.go).
func openServerLock(dir string, server, exclusive bool) (*os.File, error) { return nil, nil }
