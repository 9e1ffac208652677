//go:build !unix

package sqldb

// DiskFree cannot tell the free space here: callers must not rely on it.
func DiskFree(string) (uint64, bool) { return 0, false }
