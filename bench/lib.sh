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
