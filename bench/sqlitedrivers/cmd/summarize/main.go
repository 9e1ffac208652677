// Command summarize reads `go test -bench` output (from ./run.sh, possibly
// several runs per benchmark) on stdin and prints a markdown table of
// medians per shape and candidate, with ns/op and cpu-ns/op ratios against
// the baseline candidate (ModerncSQL).
//
//	go run ./cmd/summarize < results/bench.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	baseline := flag.String("baseline", "ModerncSQL", "candidate the ratios are relative to")
	flag.Parse()

	// samples[candidate][shape][unit] = values
	samples := map[string]map[string]map[string][]float64{}
	var candOrder, shapeOrder []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // strip GOMAXPROCS suffix
			}
		}
		cand, shape, ok := strings.Cut(name, "/")
		if !ok {
			continue
		}
		if samples[cand] == nil {
			samples[cand] = map[string]map[string][]float64{}
			candOrder = append(candOrder, cand)
		}
		if samples[cand][shape] == nil {
			samples[cand][shape] = map[string][]float64{}
			if !slices.Contains(shapeOrder, shape) {
				shapeOrder = append(shapeOrder, shape)
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			samples[cand][shape][f[i+1]] = append(samples[cand][shape][f[i+1]], v)
		}
	}
	// Baseline first, the rest in order of appearance.
	slices.SortStableFunc(candOrder, func(a, b string) int {
		switch {
		case a == *baseline:
			return -1
		case b == *baseline:
			return 1
		}
		return 0
	})

	fmt.Println("| shape | candidate | n | ns/op | cpu-ns/op | B/op | allocs/op | reprepares/op | ns/op vs base | cpu vs base | min–max ns/op |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, shape := range shapeOrder {
		base := samples[*baseline][shape]
		for _, cand := range candOrder {
			m := samples[cand][shape]
			if m == nil {
				continue
			}
			ns := m["ns/op"]
			rp := "–"
			if v, ok := median(m["reprepares/op"]); ok {
				rp = fmt.Sprintf("%.2g", v)
			}
			fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s–%s |\n",
				shape, cand, len(ns),
				fmtMed(ns), fmtMed(m["cpu-ns/op"]), fmtMed(m["B/op"]), fmtMed(m["allocs/op"]), rp,
				ratio(ns, base["ns/op"]), ratio(m["cpu-ns/op"], base["cpu-ns/op"]),
				fmtNum(slices.Min(ns)), fmtNum(slices.Max(ns)))
		}
	}
}

func median(v []float64) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

func fmtNum(v float64) string {
	if v >= 100 || v == float64(int64(v)) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func fmtMed(v []float64) string {
	m, ok := median(v)
	if !ok {
		return "–"
	}
	return fmtNum(m)
}

func ratio(v, base []float64) string {
	a, ok1 := median(v)
	b, ok2 := median(base)
	if !ok1 || !ok2 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
