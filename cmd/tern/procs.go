package main

import "runtime"

// minProcs is the fewest Ps (GOMAXPROCS) tern runs with, even on one
// CPU. SQLite (ncruces/go-sqlite3) and the body files make blocking file
// system calls (pread, pwrite, fsync) on the calling goroutine's thread,
// and a goroutine in a system call keeps its P until the runtime's
// monitor takes it back, which can take up to 10 ms. With a single P,
// every session waits while one commit's fsync runs: on one CPU, mixed
// client traffic ran at half the rate and APPEND at 40 % of what a
// second P gives (docs/PERFORMANCE.md, issue 9's tenth pass).
const minProcs = 2

// raiseProcs sets GOMAXPROCS to minProcs when the runtime chose fewer
// (one CPU, or a container limited to one) and the operator did not set
// it (env is the GOMAXPROCS environment variable). It returns the
// setting in force afterwards.
func raiseProcs(env string) int {
	n := runtime.GOMAXPROCS(0)
	if env != "" || n >= minProcs {
		return n
	}
	runtime.GOMAXPROCS(minProcs)
	return minProcs
}
