//go:build unix

package sqldb

import "syscall"

// DiskFree returns the bytes available to unprivileged writers on the
// file system holding dir, or false if that cannot be told.
func DiskFree(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
