package store

// unavailableChecks are the backends' tests for an error that says their
// database could not be reached (RegisterUnavailable).
var unavailableChecks []func(error) bool

// RegisterUnavailable adds a backend's test for an error that says its
// database (or its blob store) could not be reached or went away during
// the call (a PostgreSQL server that is down, restarting or failing
// over; an S3 store that does not answer), so that
// Unavailable recognises it. Backends call it from an init function.
func RegisterUnavailable(f func(error) bool) {
	unavailableChecks = append(unavailableChecks, f)
}

// Unavailable reports whether err says the store's database could not be
// reached: the command failed for now and may work when tried again. A
// server answers it as such (IMAP's [UNAVAILABLE]) rather than as an
// internal error, and never takes it for its client going away.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	for _, f := range unavailableChecks {
		if f(err) {
			return true
		}
	}
	return false
}
