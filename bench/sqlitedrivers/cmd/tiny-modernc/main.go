// Command tiny-modernc is a minimal modernc.org/sqlite program (database/sql),
// for binary size and static linking checks:
//
//	CGO_ENABLED=0 go build -o /tmp/tiny-modernc ./cmd/tiny-modernc && file /tmp/tiny-modernc
package main

import (
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite"
)

func main() {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		panic(err)
	}
	var v string
	if err := db.QueryRow(`SELECT sqlite_version()`).Scan(&v); err != nil {
		panic(err)
	}
	fmt.Println("modernc", v)
}
