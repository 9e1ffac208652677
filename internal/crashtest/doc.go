// Package crashtest holds tests that run the real tern binary as a separate
// process and abuse it the way an unlucky operator would: SIGKILL at random
// moments under concurrent write load, a full disk, and a long mixed-load
// soak. The package has no non-test code besides this comment.
//
//	go test ./internal/crashtest/                           # short bounded run
//	TERN_CRASH_DURATION=60s go test -run Crash ./internal/crashtest/
//	TERN_SOAK_DURATION=10m TERN_SOAK_CLIENTS=300 go test -run Soak -timeout 0 ./internal/crashtest/
package crashtest
