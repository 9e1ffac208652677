//go:build !linux

package durable

import "os"

// SyncData makes f's data durable: fsync where fdatasync is not at hand.
func SyncData(f *os.File) error { return f.Sync() }
