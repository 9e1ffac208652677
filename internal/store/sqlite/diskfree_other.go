//go:build !unix

package sqlite

// diskFree cannot tell the free space here: the indexer does not wait.
func diskFree(string) (uint64, bool) { return 0, false }
