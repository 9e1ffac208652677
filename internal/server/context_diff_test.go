package server_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestContextUpdateDifferential: live results (RFC 5267 RETURN (UPDATE))
// kept up to date incrementally, from the messages that changed, equal a
// full search after every round of random changes made by another
// session (flags and keywords set and cleared, new mail, copies,
// expunges). The watching session follows each result through the
// ADDTO/REMOVEFROM it receives and compares it with a fresh UID SEARCH
// (and UID SORT) of the same key. Keys are mostly ones answered per
// message (flags, text, size, UID ranges, MODSEQ, NOT/OR), some not
// (sequence numbers, "*"), which are searched again in full. SORT
// results are also followed in order, through the positions ADDTO
// carries, and must equal a fresh UID SORT.
func TestContextUpdateDifferential(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5267))
	ts := newTestServer(t, serverOpts{})
	ts.addUser("alice", "secret")
	watch, writer := ts.login("alice", "secret"), ts.login("alice", "secret")
	words := []string{"apple", "banana", "cherry", "delta", "echo"}
	appendOne := func() {
		msg := fmt.Sprintf("Subject: %s news\n\n%s and %s\n", words[r.IntN(len(words))], words[r.IntN(len(words))],
			strings.Repeat("x", r.IntN(300)))
		writer.appendMsg("INBOX", "", crlf(msg))
	}
	for range 30 {
		appendOne()
	}
	writer.ok("SELECT INBOX")
	watch.ok("SELECT INBOX")
	flags := []string{`\Seen`, `\Flagged`, `\Answered`, "foo"}
	var key func(depth int) string
	key = func(depth int) string {
		if depth > 0 {
			switch r.IntN(5) {
			case 0:
				return "NOT " + key(depth-1)
			case 1:
				return "OR " + key(depth-1) + " " + key(depth-1)
			case 2:
				return "(" + key(depth-1) + " " + key(depth-1) + ")"
			}
		}
		switch r.IntN(11) {
		case 0:
			return "SEEN"
		case 1:
			return "UNFLAGGED"
		case 2:
			return "ANSWERED"
		case 3:
			return "KEYWORD foo"
		case 4:
			return "SUBJECT " + words[r.IntN(len(words))]
		case 5:
			return "BODY " + words[r.IntN(len(words))]
		case 6:
			return fmt.Sprintf("LARGER %d", 100+r.IntN(300))
		case 7:
			return fmt.Sprintf("UID %d:%d", 1+r.IntN(40), 1+r.IntN(80))
		case 8:
			return fmt.Sprintf("MODSEQ %d", 1+r.IntN(60))
		case 9:
			return fmt.Sprintf("%d:%d", 1+r.IntN(20), 1+r.IntN(40)) // sequence numbers: searched in full
		}
		return fmt.Sprintf("UID %d:*", 1+r.IntN(50)) // "*": searched in full
	}
	type live struct {
		tag, key string
		sort     bool
		result   map[uint32]bool
		order    []uint32 // SORT: the result in sort order, by ADDTO/REMOVEFROM positions
	}
	var lives []*live
	for i := range 12 {
		k := key(2)
		cmd := "UID SEARCH RETURN (ALL UPDATE) " + k
		if i%4 == 3 {
			cmd = "UID SORT RETURN (ALL UPDATE) (REVERSE SIZE) UTF-8 " + k
		}
		lines := watch.ok(cmd)
		l := &live{tag: watch.lastTag(), key: k, sort: i%4 == 3, result: map[uint32]bool{}}
		for _, line := range lines {
			if rest, ok := strings.CutPrefix(line, `* ESEARCH (TAG "`+l.tag+`") UID ALL `); ok {
				set, _, _ := strings.Cut(rest, " ") // then MODSEQ n, for a MODSEQ key
				for _, u := range sortRun(t, set) {
					l.result[u] = true
					l.order = append(l.order, u)
				}
			}
		}
		lives = append(lives, l)
	}
	follow := func(lines []string) {
		for _, line := range lines {
			for _, l := range lives {
				rest, ok := strings.CutPrefix(line, `* ESEARCH (TAG "`+l.tag+`") UID `)
				if !ok {
					continue
				}
				kind, list, _ := strings.Cut(rest, " ")
				list = strings.Trim(list, "()")
				f := strings.Fields(list)
				for i := 1; i < len(f); i += 2 { // position, set, position, set...
					pos, err := strconv.Atoi(f[i-1])
					if err != nil {
						t.Fatalf("%q: %v", line, err)
					}
					run := expandSet(t, f[i])
					if l.sort {
						run = sortRun(t, f[i]) // in sort order
					}
					for j, u := range run {
						switch kind {
						case "ADDTO":
							l.result[u] = true
							if l.sort {
								at := min(pos-1+j, len(l.order))
								l.order = slices.Insert(l.order, at, u)
							}
						case "REMOVEFROM":
							delete(l.result, u)
							l.order = slices.DeleteFunc(l.order, func(v uint32) bool { return v == u })
						default:
							t.Fatalf("unexpected %q", line)
						}
					}
				}
			}
		}
	}
	for round := range 25 {
		for range 1 + r.IntN(4) {
			uid := 1 + r.IntN(40)
			switch r.IntN(7) {
			case 0, 1, 2:
				op := []string{"+FLAGS.SILENT", "-FLAGS.SILENT"}[r.IntN(2)]
				writer.ok(fmt.Sprintf("UID STORE %d:%d %s (%s)", uid, uid+r.IntN(5), op, flags[r.IntN(len(flags))]))
			case 3:
				appendOne()
			case 4:
				writer.ok(fmt.Sprintf("UID COPY %d INBOX", uid))
			case 5:
				writer.ok(fmt.Sprintf("UID STORE %d +FLAGS.SILENT (\\Deleted)", uid))
				writer.ok(fmt.Sprintf("UID EXPUNGE %d", uid))
			case 6:
				// The watcher changes flags itself.
				follow(watch.ok(fmt.Sprintf("UID STORE %d +FLAGS.SILENT (%s)", uid, flags[r.IntN(len(flags))])))
			}
		}
		follow(watch.ok("NOOP"))
		for _, l := range lives {
			cmd := "UID SEARCH " + l.key
			if l.sort {
				cmd = "UID SORT (REVERSE SIZE) UTF-8 " + l.key
			}
			var want []uint32
			for _, line := range watch.ok(cmd) {
				if f := strings.Fields(line); len(f) > 1 && (f[1] == "SEARCH" || f[1] == "SORT") {
					for _, n := range f[2:] {
						if strings.HasPrefix(n, "(") {
							break // (MODSEQ n)
						}
						u, err := strconv.ParseUint(n, 10, 32)
						if err != nil {
							t.Fatalf("%q: %v", line, err)
						}
						want = append(want, uint32(u))
					}
				}
			}
			if l.sort && !slices.Equal(l.order, want) {
				t.Fatalf("round %d (seed %d), %s: live order %v, full sort %v", round, seed, cmd, l.order, want)
			}
			slices.Sort(want)
			var got []uint32
			for u := range l.result {
				got = append(got, u)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("round %d (seed %d), %s: live result %v, full search %v", round, seed, cmd, got, want)
			}
		}
	}
}

// sortRun returns the numbers of an ESORT run in the order given
// (SetFromRuns keeps the order: "7,3:5" is 7, 3, 4, 5; "5:3" is 5, 4, 3).
func sortRun(t *testing.T, set string) []uint32 {
	t.Helper()
	var out []uint32
	for _, part := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			t.Fatalf("set %q: %v", set, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				t.Fatalf("set %q: %v", set, err)
			}
		}
		for n := a; ; {
			out = append(out, uint32(n))
			if n == b {
				break
			}
			if a < b {
				n++
			} else {
				n--
			}
		}
	}
	return out
}

// expandSet returns the numbers of a sequence set without "*".
func expandSet(t *testing.T, set string) []uint32 {
	t.Helper()
	var out []uint32
	for _, part := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			t.Fatalf("set %q: %v", set, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				t.Fatalf("set %q: %v", set, err)
			}
		}
		for n := min(a, b); n <= max(a, b); n++ {
			out = append(out, uint32(n))
		}
	}
	return out
}
