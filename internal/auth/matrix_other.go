//go:build !unix

package auth

// mapMatrix allocates a matrix in the Go heap where there is no mmap.
func mapMatrix(size int) matrix { return make(matrix, size) }

// unmapMatrix leaves a matrix to the collector.
func unmapMatrix(matrix) {}
