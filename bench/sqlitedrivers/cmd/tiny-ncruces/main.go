// Command tiny-ncruces is a minimal github.com/ncruces/go-sqlite3 program,
// for binary size and static linking checks. Build tags select what is
// linked in:
//
//	CGO_ENABLED=0 go build -o /tmp/tiny-ncruces ./cmd/tiny-ncruces                # direct API only
//	CGO_ENABLED=0 go build -tags sql -o /tmp/tiny-ncruces-sql ./cmd/tiny-ncruces  # + database/sql driver
//	CGO_ENABLED=0 go build -tags sql,fts5 -o /tmp/tiny-ncruces-fts5 ./cmd/tiny-ncruces  # + ext/fts5
package main

import (
	"fmt"

	"github.com/ncruces/go-sqlite3"
)

// extra hooks for the build-tagged files.
var extras []func(*sqlite3.Conn) error

func main() {
	c, err := sqlite3.Open(":memory:")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, f := range extras {
		if err := f(c); err != nil {
			panic(err)
		}
	}
	s, _, err := c.Prepare(`SELECT sqlite_version()`)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Step()
	fmt.Println("ncruces", s.ColumnText(0))
}
