package main

import (
	"slices"
	"time"
)

// recorder collects one worker's samples; recorders are merged at the end.
type recorder struct {
	ops map[string]*opSamples
}

type opSamples struct {
	lat    []time.Duration
	items  int64
	bytes  int64
	errors int64
}

func newRecorder() *recorder { return &recorder{ops: map[string]*opSamples{}} }

func (r *recorder) get(name string) *opSamples {
	s := r.ops[name]
	if s == nil {
		s = &opSamples{}
		r.ops[name] = s
	}
	return s
}

// add records one operation of kind name.
func (r *recorder) add(name string, d time.Duration, items, bytes int64) {
	s := r.get(name)
	s.lat = append(s.lat, d)
	s.items += items
	s.bytes += bytes
}

func (r *recorder) fail(name string) { r.get(name).errors++ }

func (r *recorder) merge(o *recorder) {
	for k, v := range o.ops {
		s := r.get(k)
		s.lat = append(s.lat, v.lat...)
		s.items += v.items
		s.bytes += v.bytes
		s.errors += v.errors
	}
}

// OpStats is one operation kind's summary in the JSON output.
type OpStats struct {
	Op          string  `json:"op"`
	Count       int     `json:"count"`
	Errors      int64   `json:"errors"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	Items       int64   `json:"items,omitempty"`
	ItemsPerSec float64 `json:"items_per_sec,omitempty"`
	Bytes       int64   `json:"bytes,omitempty"`
	MBPerSec    float64 `json:"mb_per_sec,omitempty"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Maxms       float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile (0..100) of sorted samples
// (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func (r *recorder) summary(elapsed time.Duration) []OpStats {
	names := make([]string, 0, len(r.ops))
	for k := range r.ops {
		names = append(names, k)
	}
	slices.Sort(names)
	sec := elapsed.Seconds()
	var out []OpStats
	for _, n := range names {
		s := r.ops[n]
		slices.Sort(s.lat)
		st := OpStats{Op: n, Count: len(s.lat), Errors: s.errors, Items: s.items, Bytes: s.bytes}
		if sec > 0 {
			st.OpsPerSec = float64(len(s.lat)) / sec
			st.ItemsPerSec = float64(s.items) / sec
			st.MBPerSec = float64(s.bytes) / sec / 1e6
		}
		if len(s.lat) > 0 {
			st.P50ms = ms(percentile(s.lat, 50))
			st.P99ms = ms(percentile(s.lat, 99))
			st.Maxms = ms(s.lat[len(s.lat)-1])
		}
		out = append(out, st)
	}
	return out
}
