package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
)

// searchBenchWords is a vocabulary of made-up words for benchmark text.
var searchBenchWords = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghiklmnoprstuvw"
	words := make([]string, 3000)
	for i := range words {
		var b strings.Builder
		for range 3 + r.IntN(7) {
			b.WriteByte(letters[r.IntN(len(letters))])
		}
		words[i] = b.String()
	}
	return words
}()

// searchBenchMessage is message i of the search benchmark: ~150 words of
// text, planted words with known counts as in ternbench bigbox gen:
// "zephyrine" in the body of one message in 1,000, "halfmoon" in every
// second, a From of "Ottoline Fairweather" in 4 of 10,000, "quetzalcoatl"
// in the subject of 5 of 10,000.
func searchBenchMessage(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	word := func() string { return searchBenchWords[int(r.ExpFloat64()*300)%len(searchBenchWords)] }
	from := fmt.Sprintf("%s %s <%s@example.org>", word(), word(), word())
	if i%2500 == 7 {
		from = "Ottoline Fairweather <ottoline@example.org>"
	}
	subject := word() + " " + word() + " " + word()
	if i%2000 == 3 {
		subject += " quetzalcoatl"
	}
	var body strings.Builder
	for j := range 150 {
		body.WriteString(word())
		if j%12 == 11 {
			body.WriteString("\r\n")
		} else {
			body.WriteByte(' ')
		}
	}
	if i%1000 == 1 {
		body.WriteString("zephyrine\r\n")
	}
	if i%2 == 0 {
		body.WriteString("halfmoon\r\n")
	}
	return fmt.Appendf(nil, "From: %s\r\nTo: someone@example.com\r\nSubject: %s\r\nDate: Mon, 2 Feb 2026 10:00:00 +0100\r\n"+
		"Message-ID: <%d.search@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s", from, subject, i, body.String())
}

// BenchmarkSearchIndexed measures SEARCH answered from the full-text
// index through the whole server on a 20,000-message mailbox (the index
// built before the server starts): the issue 11 searches.
//
//	TERN_SEARCH_PROFILE=/tmp go test -run '^$' -bench SearchIndexed -benchtime 20x ./internal/server/
//
// writes a CPU profile of each search's loop (without the setup) to
// $TERN_SEARCH_PROFILE/<name>.prof.
func BenchmarkSearchIndexed(b *testing.B) {
	const n = 20000
	addr := benchServerMsgs(b, n, true, searchBenchMessage, true)
	for _, tc := range []struct {
		name, cmd string
		hits      int
	}{
		{"BodyRare", "UID SEARCH BODY zephyrine", 20},
		{"TextRare", "UID SEARCH TEXT zephyrine", 20},
		{"From", `UID SEARCH FROM "Ottoline Fairweather"`, 8},
		{"Subject", "UID SEARCH SUBJECT quetzalcoatl", 10},
		{"Miss", "UID SEARCH BODY nowhereatall", 0},
		{"BodyCommon", "UID SEARCH BODY halfmoon", n / 2},
		// SEARCH=FUZZY (RFC 6203), the words with a typo.
		{"FuzzyFrom", `UID SEARCH FUZZY FROM "Ottoline Fairwether"`, 8},
		{"FuzzySubject", "UID SEARCH FUZZY SUBJECT quetzalcoat", 10},
		{"FuzzyCommon", "UID SEARCH FUZZY BODY halfmon", 10289}, // halfmoon, and other words close enough
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := dialBench(b, addr)
			if dir := os.Getenv("TERN_SEARCH_PROFILE"); dir != "" {
				// A CPU profile of the searches alone (not of the setup).
				f, err := os.Create(filepath.Join(dir, tc.name+".prof"))
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			for b.Loop() {
				if got := c.searchCount(tc.cmd); got != tc.hits {
					b.Fatalf("%s: %d hits, want %d", tc.cmd, got, tc.hits)
				}
			}
		})
	}
}

// searchCount runs a SEARCH command and returns how many numbers its
// SEARCH response holds.
func (c *benchConn) searchCount(cmd string) int {
	c.tag++
	tag := "b" + strconv.Itoa(c.tag)
	if _, err := io.WriteString(c.nc, tag+" "+cmd+"\r\n"); err != nil {
		c.b.Fatal(err)
	}
	n := 0
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			c.b.Fatalf("%s: %v", cmd, err)
		}
		if bytes.HasPrefix(line, []byte(tag+" ")) {
			if !bytes.HasPrefix(line[len(tag)+1:], []byte("OK")) {
				c.b.Fatalf("%s: %s", cmd, line)
			}
			return n
		}
		n += bytes.Count(line, []byte(" "))
		if bytes.HasPrefix(line, []byte("* SEARCH")) {
			n-- // "* SEARCH"
		}
	}
}
