package main

import (
	"runtime"
	"testing"
)

func TestRaiseProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })

	runtime.GOMAXPROCS(1)
	if got := raiseProcs("1"); got != 1 || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("GOMAXPROCS=1 set by the operator: raiseProcs = %d, runtime has %d; want 1 kept", got, runtime.GOMAXPROCS(0))
	}
	if got := raiseProcs(""); got != minProcs || runtime.GOMAXPROCS(0) != minProcs {
		t.Errorf("one P chosen by the runtime: raiseProcs = %d, runtime has %d; want %d", got, runtime.GOMAXPROCS(0), minProcs)
	}
	runtime.GOMAXPROCS(3)
	if got := raiseProcs(""); got != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("three Ps: raiseProcs = %d, runtime has %d; want 3 kept", got, runtime.GOMAXPROCS(0))
	}
}
