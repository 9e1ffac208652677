package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
)

// report prints a table of the medians of JSON results: one row per
// workload (and concurrency), one column per server label, and the ratio
// of the first label (tern) to the second, oriented so that > 1 means the
// first is better.
func report(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ternbench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	first := fs.String("first", "tern", "label whose ratio to the others is reported")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	type key struct{ workload, label string }
	vals := map[key][]float64{}
	cpu := map[key][]float64{}
	rss := map[key][]float64{}
	perConn := map[key][]float64{}
	client := map[key][]float64{}
	usPerOp := map[key][]float64{}
	primary := map[string]string{}
	higher := map[string]bool{}
	var rows []string
	labels := []string{*first}
	for _, f := range fs.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "ternbench report: %v\n", err)
			return 1
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(stderr, "ternbench report: %s: %v\n", f, err)
			return 1
		}
		if r.Error != "" || r.Workload == "seed" {
			continue
		}
		w := fmt.Sprintf("%s c=%d", r.Workload, r.Concurrency)
		if r.Workload == "idle-fanout" {
			w = fmt.Sprintf("%s n=%.0f", r.Workload, r.Extra["connections"])
		}
		if !slices.Contains(rows, w) {
			rows = append(rows, w)
		}
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
		k := key{w, r.Label}
		primary[w], higher[w] = r.Primary, r.HigherBetter
		vals[k] = append(vals[k], r.Value)
		if r.Server != nil {
			cpu[k] = append(cpu[k], r.Server.CPUSeconds)
			rss[k] = append(rss[k], float64(r.Server.PeakRSSKiB)/1024)
		}
		if r.TimedCPU != nil {
			usPerOp[k] = append(usPerOp[k], r.TimedCPU.ServerUsPerOp)
		}
		if r.ClientCPUSeconds > 0 {
			client[k] = append(client[k], r.ClientCPUSeconds)
		}
		if v, ok := r.Extra["pss_kib_per_conn"]; ok {
			perConn[k] = append(perConn[k], v)
		}
	}
	fmt.Fprintf(stdout, "| workload | metric |")
	for _, l := range labels {
		fmt.Fprintf(stdout, " %s |", l)
	}
	for _, l := range labels[1:] {
		fmt.Fprintf(stdout, " %s/%s |", *first, l)
	}
	for _, l := range labels {
		fmt.Fprintf(stdout, " %s CPU s | %s peak RSS MiB |", l, l)
	}
	fmt.Fprintf(stdout, " runs |\n|---|---|")
	for range len(labels)*3 + len(labels) - 1 {
		fmt.Fprintf(stdout, "---|")
	}
	fmt.Fprintln(stdout, "---|")
	for _, w := range rows {
		fmt.Fprintf(stdout, "| %s | %s |", w, primary[w])
		for _, l := range labels {
			fmt.Fprintf(stdout, " %s |", fmtVal(vals[key{w, l}]))
		}
		a := median(vals[key{w, labels[0]}])
		for _, l := range labels[1:] {
			b := median(vals[key{w, l}])
			ratio := 0.0
			switch {
			case a == 0 || b == 0:
			case higher[w]:
				ratio = a / b
			default:
				ratio = b / a
			}
			if ratio == 0 {
				fmt.Fprintf(stdout, " – |")
			} else {
				fmt.Fprintf(stdout, " %.2f× |", ratio)
			}
		}
		for _, l := range labels {
			fmt.Fprintf(stdout, " %s | %s |", fmtVal(cpu[key{w, l}]), fmtVal(rss[key{w, l}]))
		}
		fmt.Fprintf(stdout, " %d |\n", len(vals[key{w, labels[0]}]))
	}
	medians := func(w string, m map[key][]float64) { // " label value" per label
		for _, l := range labels {
			fmt.Fprintf(stdout, " %s %s", l, fmtVal(m[key{w, l}]))
		}
	}
	for _, w := range rows {
		if len(perConn[key{w, labels[0]}]) == 0 {
			continue
		}
		fmt.Fprintf(stdout, "\n%s: server memory (PSS) per added idle connection (KiB, median):", w)
		medians(w, perConn)
		fmt.Fprintln(stdout)
	}
	for _, w := range rows {
		if len(client[key{w, labels[0]}]) == 0 {
			continue
		}
		fmt.Fprintf(stdout, "\n%s: server CPU µs per operation in the timed loop, median:", w)
		medians(w, usPerOp)
		fmt.Fprintf(stdout, "; load generator (ternbench) CPU s, median:")
		medians(w, client)
		fmt.Fprintln(stdout)
	}
	return 0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtVal(v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	m := median(v)
	switch {
	case m >= 100:
		return fmt.Sprintf("%.0f", m)
	case m >= 10:
		return fmt.Sprintf("%.1f", m)
	default:
		return fmt.Sprintf("%.2f", m)
	}
}
