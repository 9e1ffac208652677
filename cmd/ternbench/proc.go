package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server process accounting from /proc: the process given by --server-pid
// and all its descendants (Dovecot runs one process per connection).

// procSample is the memory and CPU of a process tree at one moment.
type procSample struct {
	procs  int
	rssKiB int64   // sum of VmRSS
	pssKiB int64   // sum of Pss (only from sampleTreePSS): shared pages split among sharers
	cpuSec float64 // utime+stime+cutime+cstime summed over the tree
	// diskBytes sums read_bytes over the tree (a process that exited
	// between two samples takes its count with it).
	diskBytes int64
}

var clkTck = 100.0 // USER_HZ on Linux

// readStat returns ppid and the four CPU tick counters of pid.
func readStat(pid int) (ppid int, ticks int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0]=state f[1]=ppid ... utime is field 14 of stat, i.e. f[11].
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: short", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	for _, k := range f[11:15] {
		v, _ := strconv.ParseInt(k, 10, 64)
		ticks += v
	}
	return ppid, ticks, nil
}

// procField returns the first number after key (as "VmRSS:") on a line of
// /proc/PID/file, or 0 when the file or the line is missing.
func procField(pid int, file, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

func readRSS(pid int) int64 { return procField(pid, "status", "VmRSS:") }

func readPSS(pid int) int64 { return procField(pid, "smaps_rollup", "Pss:") }

// readDiskBytes is what pid made the kernel read from storage (read_bytes
// of /proc/PID/io: page cache misses and their readahead, not reads the
// page cache answered).
func readDiskBytes(pid int) int64 { return procField(pid, "io", "read_bytes:") }

// sampleTree reads the process tree rooted at root.
func sampleTree(root int) (procSample, error) { return sampleTreeMem(root, false) }

// sampleTreePSS also sums the proportional set size (slower: reads smaps).
func sampleTreePSS(root int) (procSample, error) { return sampleTreeMem(root, true) }

func sampleTreeMem(root int, pss bool) (procSample, error) {
	ents, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return procSample{}, err
	}
	children := map[int][]int{}
	ticks := map[int]int64{}
	for _, e := range ents {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		ppid, t, err := readStat(pid)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
		ticks[pid] = t
	}
	if _, ok := ticks[root]; !ok {
		return procSample{}, fmt.Errorf("server pid %d not found", root)
	}
	var s procSample
	var total int64
	stack := []int{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		s.procs++
		total += ticks[p]
		s.rssKiB += readRSS(p)
		s.diskBytes += readDiskBytes(p)
		if pss {
			s.pssKiB += readPSS(p)
		}
		stack = append(stack, children[p]...)
	}
	s.cpuSec = float64(total) / clkTck
	return s, nil
}

// procMonitor samples the tree periodically and keeps the peak RSS.
type procMonitor struct {
	root  int
	start procSample
	mu    sync.Mutex
	peak  int64
	cpu   float64 // highest tree CPU seen
	stop  chan struct{}
	done  chan struct{}
}

func startMonitor(root int, every time.Duration) (*procMonitor, error) {
	s, err := sampleTree(root)
	if err != nil {
		return nil, err
	}
	m := &procMonitor{root: root, start: s, peak: s.rssKiB, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				if s, err := sampleTree(root); err == nil {
					m.mu.Lock()
					m.peak = max(m.peak, s.rssKiB)
					m.cpu = max(m.cpu, s.cpuSec)
					m.mu.Unlock()
				}
			}
		}
	}()
	return m, nil
}

// ServerStats is the server's resource use during a run.
type ServerStats struct {
	PID         int     `json:"pid"`
	Procs       int     `json:"procs"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	PeakRSSKiB  int64   `json:"peak_rss_kib"`
	StartRSSKiB int64   `json:"start_rss_kib"`
	FinalRSSKiB int64   `json:"final_rss_kib"`
}

func (m *procMonitor) finish() ServerStats {
	close(m.stop)
	<-m.done
	// Processes that just exited (Dovecot's per-connection imap) count in
	// their parent's cutime only once reaped: give the parent a moment.
	time.Sleep(300 * time.Millisecond)
	end, _ := sampleTree(m.root)
	m.mu.Lock()
	defer m.mu.Unlock()
	return ServerStats{
		PID: m.root, Procs: end.procs, CPUSeconds: max(end.cpuSec, m.cpu) - m.start.cpuSec,
		PeakRSSKiB: max(m.peak, end.rssKiB), StartRSSKiB: m.start.rssKiB, FinalRSSKiB: end.rssKiB,
	}
}

// selfCPUSeconds is this process's CPU time so far (user plus system).
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// TimedCPU is the CPU seconds the server (process tree) and ternbench
// spent in a workload's timed loop, and per operation of it.
type TimedCPU struct {
	ServerSeconds float64 `json:"server_seconds"`
	ClientSeconds float64 `json:"client_seconds"`
	ServerUsPerOp float64 `json:"server_us_per_op"`
	ClientUsPerOp float64 `json:"client_us_per_op"`
	server0       float64
	client0       float64
	ran           bool // the timed loop ended
}

// phase returns an options.timedPhase that samples server pid's tree
// and this process at the loop's start and end.
func (t *TimedCPU) phase(pid int) func(begin bool) {
	return func(begin bool) {
		s, _ := sampleTree(pid)
		c := selfCPUSeconds()
		if begin {
			t.server0, t.client0 = s.cpuSec, c
			return
		}
		t.ServerSeconds, t.ClientSeconds, t.ran = s.cpuSec-t.server0, c-t.client0, true
	}
}

// perOp fills the per-operation figures for ops operations.
func (t *TimedCPU) perOp(ops int) {
	if ops > 0 {
		t.ServerUsPerOp = t.ServerSeconds * 1e6 / float64(ops)
		t.ClientUsPerOp = t.ClientSeconds * 1e6 / float64(ops)
	}
}
