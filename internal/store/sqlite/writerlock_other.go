//go:build !unix

package sqlite

// Without flock, writers of other processes are arbitrated by SQLite's
// busy handler alone (writerlock.go).

type writerLock struct{}

func openWriterLock(dir string) (*writerLock, error) { return &writerLock{}, nil }
func (l *writerLock) close() error                   { return nil }
func (l *writerLock) hold() (func(), error)          { return func() {}, nil }
func (l *writerLock) yield() error                   { return nil }
