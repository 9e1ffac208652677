//go:build unix

package auth

import "syscall"

// mapMatrix returns size bytes of anonymous memory mapped outside the Go
// heap (in the heap if the mapping fails). The kernel supplies zeroed
// pages on first touch; they stay resident until unmapMatrix.
func mapMatrix(size int) matrix {
	m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make(matrix, size)
	}
	return m
}

// unmapMatrix gives a matrix from mapMatrix back to the kernel. One that
// was allocated in the heap instead is not mapped: the call fails and the
// collector frees it.
func unmapMatrix(m matrix) {
	_ = syscall.Munmap(m)
}
