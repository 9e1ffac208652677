// Package drvbench measures the per-statement CPU cost of pure-Go SQLite
// drivers on the statement shapes an IMAP server (tern) runs all day.
//
// Candidates (one top-level benchmark each, sub-benchmarks per shape):
//
//	BenchmarkModerncSQL    modernc.org/sqlite through database/sql, prepared
//	                       *sql.Stmt reused; in write transactions each use
//	                       goes through Tx.StmtContext, as tern does.
//	BenchmarkModerncDriver modernc.org/sqlite through its database/sql/driver
//	                       interfaces directly (sql.Conn.Raw), bypassing
//	                       database/sql: shows the share of database/sql.
//	BenchmarkNcrucesDirect github.com/ncruces/go-sqlite3 direct API
//	                       (Conn.Prepare, Stmt.Bind*/Step/Column*/Reset).
//	BenchmarkNcrucesSQL    github.com/ncruces/go-sqlite3/driver through
//	                       database/sql, same code as BenchmarkModerncSQL.
//
// Shapes: PointRead (JOIN of messages and contents by primary key, two blobs,
// mailbox_id bound to 1), PointRead2 (the same with mailbox_id 2; see
// pointReadName for why both exist), RangeRead (100 message rows), WriteTx
// (BEGIN IMMEDIATE; SELECT; 2 UPDATEs; COMMIT) and BeginCommit (empty
// BEGIN IMMEDIATE/COMMIT).
//
// Besides ns/op, B/op and allocs/op, every benchmark reports cpu-ns/op
// (process user+sys CPU per op, from getrusage) and, for ncruces,
// reprepares/op (SQLITE_STMTSTATUS_REPREPARE per op).
//
// Every candidate starts from a byte-identical copy of one database file
// (mailbox 1 with 10,000 messages and their contents rows; mailbox 2 with
// the same 10,000 messages pointing at the same contents) opened with
// journal_mode=WAL, synchronous=NORMAL, foreign_keys=ON, busy_timeout=5000.
//
// Run everything once:
//
//	go test -run '^$' -bench . -benchmem -cpu 1 -benchtime 2s
//
// On a shared machine, use ./run.sh (about 4.5 minutes on 2 cores), which
// builds the test binary once and runs the candidates in separate processes,
// rotating their order each round, under /usr/bin/time, then prints a
// markdown table of medians and ratios via cmd/summarize.
//
// Other commands:
//
//	go run ./cmd/featcheck          # FTS5 trigram, json_each, Go scalar functions
//	go run ./cmd/connmem -driver sqlite3 -n 17   # RSS per open connection
//	CGO_ENABLED=0 go build ./cmd/tiny-modernc    # binary size, static linking
//	CGO_ENABLED=0 go build -tags sql,fts5 ./cmd/tiny-ncruces
package drvbench
