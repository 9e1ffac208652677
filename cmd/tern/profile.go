package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
)

// takeCPUProfileFlag removes the hidden benchmarking flag
// "--cpuprofile FILE" (or "--cpuprofile=FILE") from args and, when given,
// starts writing a CPU profile to FILE. The returned stop function ends
// the profile; it is a no-op when the flag was absent.
func takeCPUProfileFlag(args []string) (rest []string, stop func(), err error) {
	stop = func() {}
	var path string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "cpuprofile" {
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, stop, fmt.Errorf("--cpuprofile needs a file")
			}
			i++
			val = args[i]
		}
		path = val
	}
	if path == "" {
		return rest, stop, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, stop, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, stop, fmt.Errorf("cpu profile: %w", err)
	}
	return rest, func() { pprof.StopCPUProfile(); f.Close() }, nil
}
