// Command connmem estimates memory per open connection: it opens N
// connections to one WAL database (filled by the first), runs a small query
// on each, and prints the process RSS and Go heap growth per connection.
//
//	go run ./cmd/connmem -driver sqlite  -n 16   # modernc.org/sqlite
//	go run ./cmd/connmem -driver sqlite3 -n 16   # ncruces/go-sqlite3/driver
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	_ "github.com/ncruces/go-sqlite3/driver"
	_ "modernc.org/sqlite"

	"drvbench"
)

func rssKB() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

func heapKB() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse / 1024)
}

func main() {
	drv := flag.String("driver", "sqlite", "sqlite (modernc) or sqlite3 (ncruces)")
	n := flag.Int("n", 16, "connections")
	flag.Parse()
	dir, _ := os.MkdirTemp("", "connmem-")
	defer os.RemoveAll(dir)
	db, err := sql.Open(*drv, drvbench.DSN(filepath.Join(dir, "m.db")))
	if err != nil {
		panic(err)
	}
	db.SetMaxOpenConns(*n)
	db.SetMaxIdleConns(*n)
	if err := drvbench.BuildTemplate(db); err != nil {
		panic(err)
	}
	ctx := context.Background()
	first, _ := db.Conn(ctx)
	rss0, heap0 := rssKB(), heapKB()
	conns := []*sql.Conn{first}
	for len(conns) < *n {
		c, err := db.Conn(ctx)
		if err != nil {
			panic(err)
		}
		conns = append(conns, c)
	}
	var sum int64
	for _, c := range conns {
		// Touch a few hundred pages so each connection's page cache fills a bit.
		if err := c.QueryRowContext(ctx, `SELECT sum(length(header)) FROM contents WHERE id <= 2000`).Scan(&sum); err != nil {
			panic(err)
		}
	}
	rss1, heap1 := rssKB(), heapKB()
	k := int64(*n - 1)
	fmt.Printf("%s: %d extra connections: RSS +%d kB (%d kB/conn), Go heap in use +%d kB (%d kB/conn)\n",
		*drv, k, rss1-rss0, (rss1-rss0)/k, heap1-heap0, (heap1-heap0)/k)
	for _, c := range conns {
		c.Close()
	}
	db.Close()
}
