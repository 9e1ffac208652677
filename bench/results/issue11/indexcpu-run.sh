#!/usr/bin/env bash
# Alternate `tern index user1` (empty index, 20,000 queued messages) of
# the two builds, each on a fresh copy of the imported data.
set -euo pipefail
cd /tmp/s4/idx
for round in 1 2 3; do
	order="base new"; [ $((round % 2)) = 0 ] && order="new base"
	for b in $order; do
		rm -rf "$b" && cp -a pristine "$b"
		sed -i "s#/tmp/s4/idx/pristine/#/tmp/s4/idx/$b/#" "$b/tern.toml"
		/usr/bin/time -f "round $round $b wall=%e user=%U sys=%S" ../tern-$b index user1 --config "$b/tern.toml" 2>&1 >/dev/null | tail -1
		ls -l "$b/data/users/1/mail.db" | awk -v b=$b '{print b, "mail.db bytes", $5}'
	done
done
