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
