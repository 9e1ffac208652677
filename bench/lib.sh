# bench/lib.sh: helpers shared by the bench scripts (sourced, not run).

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# free_port FROM: the first free port from FROM on. Another program on the
# machine (a test server, a second benchmark) may hold the usual ports.
free_port() {
	local p=$1
	while ! port_free "$p"; do p=$((p + 1)); done
	echo "$p"
}

# pin_cpus NAME: for --pin (PIN=1), SERVER_CPUS and CLIENT_CPUS become
# taskset prefixes for the first and the second half of the CPUs this
# process may use (a container's cpuset need not start at 0); without
# it both stay empty. NAME is the script, for its error messages.
pin_cpus() {
	SERVER_CPUS=() CLIENT_CPUS=()
	[ "$PIN" = 1 ] || return 0
	command -v taskset >/dev/null || { echo "$1: --pin needs taskset (util-linux)" >&2; exit 2; }
	local cpus=() spans span lo hi c half
	IFS=, read -ra spans <<<"$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)"
	for span in "${spans[@]}"; do
		lo=${span%%-*} hi=${span##*-}
		for ((c = lo; c <= hi; c++)); do cpus+=("$c"); done
	done
	if [ "${#cpus[@]}" -lt 2 ]; then echo "$1: --pin needs at least 2 CPUs" >&2; exit 2; fi
	half=$((${#cpus[@]} / 2))
	SERVER_CPUS=(taskset -c "$(IFS=,; echo "${cpus[*]:0:half}")")
	CLIENT_CPUS=(taskset -c "$(IFS=,; echo "${cpus[*]:half}")")
}

# pg_start DIR PORT [SETTINGS]: a private PostgreSQL cluster in DIR/pg
# (Debian's server binaries, initdb as nobody with trust authentication,
# loopback only, Unix socket in DIR/pg) listening on PORT, started with
# the extra server SETTINGS ("-c name=value ..."), under the CPUs of
# SERVER_CPUS when pin_cpus set it. Sets PGBIN, PGDATA and PG_PORT.
# Needs root. DIR must be readable by nobody.
pg_start() {
	local dir=$1 port=$2 settings=${3:-}
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	if [ ! -x "$PGBIN/initdb" ]; then
		echo "no PostgreSQL server binaries (apt-get install postgresql)" >&2
		return 1
	fi
	mkdir -p "$dir/pg"
	chown nobody:nogroup "$dir/pg"
	PGDATA=$dir/pg/data
	PG_PORT=$port
	runuser -u nobody -- "$PGBIN/initdb" -D "$PGDATA" -U tern --auth=trust -E UTF8 --locale=C >"$dir/pg/initdb.log"
	"${SERVER_CPUS[@]}" runuser -u nobody -- "$PGBIN/pg_ctl" start -w -D "$PGDATA" -l "$dir/pg/server.log" \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $dir/pg $settings" >/dev/null
}

# pg_createdb NAME: creates database NAME in pg_start's cluster and
# prints its URL.
pg_createdb() {
	runuser -u nobody -- "$PGBIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U tern "$1" || return
	echo "postgres://tern@127.0.0.1:$PG_PORT/$1?sslmode=disable"
}

# pg_stop: stops pg_start's cluster if it runs (for EXIT traps).
pg_stop() {
	if [ -n "${PGDATA:-}" ] && [ -f "$PGDATA/postmaster.pid" ]; then
		runuser -u nobody -- "$PGBIN/pg_ctl" stop -w -m fast -D "$PGDATA" >/dev/null 2>&1 || true
	fi
}

# build_bins: tern and ternbench from REPO's working tree into WORK/bin.
build_bins() {
	(cd "$REPO" && go build -o "$WORK/bin/tern" ./cmd/tern && go build -o "$WORK/bin/ternbench" ./cmd/ternbench)
}
