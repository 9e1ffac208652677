package e2e_test

import "testing"

func testOfflineIMAP(t *testing.T, srv *server) { t.Skip("todo") }
func testNeomutt(t *testing.T, srv *server)     { t.Skip("todo") }
