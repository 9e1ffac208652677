package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-imap/tern/internal/message"
	"github.com/tern-imap/tern/internal/search"
	"github.com/tern-imap/tern/internal/store/sqlite/sqldb"
)

// BenchmarkFTSChoice decides the kind of full-text index (issue 11): it
// builds SQLite FTS5 tables of the same documents with the trigram
// tokenizer (detail=full and detail=none) and with the unicode61 word
// tokenizer, and reports size, build rate and query latency (candidates
// from the index plus the exact check on the stored text).
//
// The corpus is an mbox file from `ternbench bigbox gen --format mbox`:
//
//	ternbench bigbox gen --format mbox --messages 20000 --out /tmp/c.mbox
//	TERN_FTS_CORPUS=/tmp/c.mbox go test -run '^$' -bench FTSChoice -benchtime 1x ./internal/store/sqlite/
//
// One message in 1,000 gets the planted rare word "zephyrine" in its body.
func BenchmarkFTSChoice(b *testing.B) {
	path := os.Getenv("TERN_FTS_CORPUS")
	if path == "" {
		b.Skip("TERN_FTS_CORPUS not set (an mbox file from ternbench bigbox gen --format mbox)")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	msgs := splitMbox(raw)
	t0 := time.Now()
	docs := make([]search.Doc, 0, len(msgs))
	var textBytes int
	for i, m := range msgs {
		info, err := message.Parse(m)
		if err != nil {
			b.Fatal(err)
		}
		root, err := message.DecodeParts(info.Parts)
		if err != nil {
			b.Fatal(err)
		}
		d, err := search.Extract(bytes.NewReader(m), root, nil)
		if err != nil {
			b.Fatal(err)
		}
		if i%1000 == 7 {
			d.Body = append(d.Body, " zephyrine "...)
		}
		textBytes += d.Len()
		docs = append(docs, d)
	}
	extract := time.Since(t0)
	b.Logf("%d messages, %d bytes of mail, %d bytes of decoded text; extraction %.0f msgs/s",
		len(msgs), len(raw), textBytes, float64(len(msgs))/extract.Seconds())

	type query struct {
		name, needle, match string // match: FTS5 query for the word index
		cols                []int
	}
	body, hdrs := []int{2}, []int{0, 1}
	queries := []query{
		{"body-rare", "zephyrine", "zephyrine", body},
		{"body-substr", "ephyrin", "", body}, // inside a word: a word index cannot narrow
		{"body-common", "postmortem", "postmortem", body},
		{"from-name", "kowalski", "kowalski", hdrs},
		{"miss", "qqxyzzyq", "qqxyzzyq", body},
		{"cross-word", "ing bud", "", body},
	}
	variants := []struct{ name, tokenize, detail string }{
		{"trigram-full", "trigram case_sensitive 1", "full"},
		{"trigram-none", "trigram case_sensitive 1", "none"},
		{"words-full", "unicode61", "full"},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			dir := b.TempDir()
			db, err := sqldb.Open("file:" + filepath.Join(dir, "x.db") + "?_pragma=journal_mode(WAL)")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE VIRTUAL TABLE fts USING fts5(hdr, addr, body, mime, tokenize=%q, detail=%s)`,
				v.tokenize, v.detail)); err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			for start := 0; start < len(docs); start += 500 {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for i := start; i < min(start+500, len(docs)); i++ {
					d := &docs[i]
					if _, err := tx.ExecContext(ctx, `INSERT INTO fts(rowid, hdr, addr, body, mime) VALUES(?, ?, ?, ?, ?)`,
						i+1, d.Header, d.Fields, d.Body, d.MIME); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			build := time.Since(t0)
			if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				b.Fatal(err)
			}
			var total, contentBytes int64
			if err := db.QueryRowContext(ctx, `SELECT page_count * page_size FROM pragma_page_count, pragma_page_size`).Scan(&total); err != nil {
				b.Fatal(err)
			}
			if err := db.QueryRowContext(ctx, `SELECT SUM(pgsize) FROM dbstat WHERE name = 'fts_content'`).Scan(&contentBytes); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: build %.0f msgs/s (%.1f s), db %d bytes (stored text %d, index %d = %.2f x the text)",
				v.name, float64(len(docs))/build.Seconds(), build.Seconds(), total, contentBytes, total-contentBytes,
				float64(total-contentBytes)/float64(textBytes))
			b.ReportMetric(float64(len(docs))/build.Seconds(), "msgs/s")
			b.ReportMetric(float64(total)/float64(textBytes), "db/text")
			for _, q := range queries {
				var lat []time.Duration
				var hits, cands int
				for range 7 {
					t0 := time.Now()
					hits, cands = runChoiceQuery(b, db, v.tokenize+" detail="+v.detail, q.needle, q.match, q.cols)
					lat = append(lat, time.Since(t0))
				}
				slices.Sort(lat)
				b.Logf("%s: %-12s %-12q median %8.2f ms  hits %d  candidates %d", v.name, q.name, q.needle,
					float64(lat[len(lat)/2].Microseconds())/1000, hits, cands)
			}
		})
	}
}

// runChoiceQuery answers one query: candidates from the index (all rows
// when the index cannot narrow), then bytes.Contains on the stored text.
func runChoiceQuery(b *testing.B, db *sqldb.DB, tokenize, needle, wordMatch string, cols []int) (hits, cands int) {
	names := []string{"hdr", "addr", "body", "mime"}
	var sel []string
	for _, c := range cols {
		sel = append(sel, names[c])
	}
	q := `SELECT ` + strings.Join(sel, ", ") + ` FROM fts`
	var args []any
	colFilter := "{" + strings.Join(sel, " ") + "}: "
	switch {
	case strings.HasPrefix(tokenize, "trigram"):
		q += ` WHERE fts MATCH ?`
		if strings.Contains(tokenize, "detail=none") {
			colFilter = "" // no column filters without positions
		}
		if colFilter == "" {
			m, _ := trigramQuery([]byte(needle))
			args = append(args, m)
		} else {
			args = append(args, colFilter+`"`+needle+`"`)
		}
	case wordMatch != "":
		q += ` WHERE fts MATCH ?`
		args = append(args, colFilter+`"`+wordMatch+`"`)
	}
	rows, err := db.Query(q, args...)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	n := []byte(needle)
	vals := make([][]byte, len(sel))
	ptrs := make([]any, len(sel))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			b.Fatal(err)
		}
		cands++
		for _, v := range vals {
			if bytes.Contains(v, n) {
				hits++
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return hits, cands
}

// splitMbox splits an mbox file at its "From " lines (no unquoting: the
// generated mail has no ">From" lines that matter here).
func splitMbox(raw []byte) [][]byte {
	var out [][]byte
	for len(raw) > 0 {
		nl := bytes.IndexByte(raw, '\n')
		if nl < 0 {
			break
		}
		raw = raw[nl+1:] // the "From " line
		end := bytes.Index(raw, []byte("\nFrom "))
		if end < 0 {
			end = len(raw)
		} else {
			end++
		}
		out = append(out, bytes.ReplaceAll(raw[:end], []byte("\n"), []byte("\r\n")))
		raw = raw[end:]
	}
	return out
}
