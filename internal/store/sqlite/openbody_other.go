//go:build !unix

package sqlite

import "os"

// openBodyFile opens a body file for reading.
func openBodyFile(path string) (*os.File, error) { return os.Open(path) }
