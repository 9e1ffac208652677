package e2e_test

import "testing"

func testNeomutt(t *testing.T, srv *server) { t.Skip("todo") }
