#!/usr/bin/env bash
# Runs the driver benchmarks interleaved, for a shared machine:
# builds the test binary once, then for each round runs every candidate in
# its own process (order rotated each round) with -cpu 1, under
# /usr/bin/time for process user+sys, and finally prints medians.
#
#   ./run.sh                # 5 rounds, -benchtime 2s
#   ROUNDS=3 BENCHTIME=1s ./run.sh
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-2s}
OUT=${OUT:-results}
CANDS=(ModerncSQL NcrucesDirect NcrucesSQL ModerncDriver)

mkdir -p "$OUT"
go test -c -o "$OUT/drvbench.test" .
: > "$OUT/bench.txt"
: > "$OUT/time.txt"
go version >> "$OUT/bench.txt"
grep -E 'modernc.org/sqlite |ncruces/go-sqlite3 ' go.mod >> "$OUT/bench.txt"

for ((r = 0; r < ROUNDS; r++)); do
	for ((i = 0; i < ${#CANDS[@]}; i++)); do
		c=${CANDS[$(((i + r) % ${#CANDS[@]}))]}
		echo "round $((r + 1))/$ROUNDS: $c" >&2
		/usr/bin/time -a -o "$OUT/time.txt" -f "$c round=$((r + 1)) user=%U sys=%S wall=%e maxrss_kb=%M" \
			"$OUT/drvbench.test" -test.run '^$' -test.bench "^Benchmark$c\$" \
			-test.benchmem -test.cpu 1 -test.benchtime "$BENCHTIME" -test.count 1 \
			| tee -a "$OUT/bench.txt" | grep '^Benchmark' >&2
	done
done
go run ./cmd/summarize < "$OUT/bench.txt" | tee "$OUT/summary.md"
