// Command featcheck reports which features tern relies on are available in
// github.com/ncruces/go-sqlite3 (default build, and with ext/fts5
// registered) and in modernc.org/sqlite: FTS5 with the trigram tokenizer,
// JSON table-valued functions, and Go scalar functions over blobs.
//
//	go run ./cmd/featcheck
package main

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ncruces/go-sqlite3"
	ncdriver "github.com/ncruces/go-sqlite3/driver"
	"github.com/ncruces/go-sqlite3/ext/fts5"
	msqlite "modernc.org/sqlite"
)

var checks = []struct{ name, sql string }{
	{"sqlite_version", `SELECT sqlite_version()`},
	{"fts5 trigram", `CREATE VIRTUAL TABLE IF NOT EXISTS t USING fts5(x, tokenize='trigram');
	                  INSERT INTO t VALUES('Subject: quarterly report');
	                  SELECT count(*) FROM t WHERE t MATCH 'rterl'`},
	{"fts5 trigram LIKE", `SELECT count(*) FROM t WHERE x LIKE '%TERLY%'`},
	{"json_each", `SELECT group_concat(value) FROM json_each('[1,2]')`},
	{"Go scalar contains()", `SELECT contains(x'00616263', x'6263'), contains(x'00616263', x'6364')`},
}

func main() {
	dir, err := os.MkdirTemp("", "featcheck-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// ncruces direct API, default build: no extension registered.
	fmt.Println("== ncruces/go-sqlite3, direct API, default build")
	c := openNcruces(filepath.Join(dir, "a.db"))
	runNcruces(c)
	c.Close()

	fmt.Println("== ncruces/go-sqlite3, direct API, with ext/fts5 registered")
	c = openNcruces(filepath.Join(dir, "b.db"))
	if err := fts5.Register(c); err != nil {
		panic(err)
	}
	runNcruces(c)
	c.Close()

	fmt.Println("== ncruces/go-sqlite3/driver (database/sql), init callback registers fts5 + contains()")
	db, err := ncdriver.Open("file:"+filepath.Join(dir, "c.db"), func(c *sqlite3.Conn) error {
		if err := fts5.Register(c); err != nil {
			return err
		}
		return registerContains(c)
	})
	if err != nil {
		panic(err)
	}
	runSQL(db)
	db.Close()

	fmt.Println("== modernc.org/sqlite (database/sql), contains() via RegisterDeterministicScalarFunction")
	msqlite.MustRegisterDeterministicScalarFunction("contains", 2,
		func(ctx *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			h, _ := args[0].([]byte)
			n, _ := args[1].([]byte)
			return bytes.Contains(h, n), nil
		})
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "d.db"))
	if err != nil {
		panic(err)
	}
	runSQL(db)
	db.Close()
}

func openNcruces(path string) *sqlite3.Conn {
	c, err := sqlite3.Open(path)
	if err != nil {
		panic(err)
	}
	if err := registerContains(c); err != nil {
		panic(err)
	}
	return c
}

// registerContains registers contains(haystack, needle BLOB) as a
// deterministic Go scalar function, the shape of tern's blob helpers.
func registerContains(c *sqlite3.Conn) error {
	return c.CreateFunction("contains", 2, sqlite3.DETERMINISTIC|sqlite3.INNOCUOUS,
		func(ctx sqlite3.Context, arg ...sqlite3.Value) {
			ctx.ResultBool(bytes.Contains(arg[0].RawBlob(), arg[1].RawBlob()))
		})
}

func runNcruces(c *sqlite3.Conn) {
	for _, ck := range checks {
		// Run all but the last statement with Exec, then read the last one.
		sqlText := ck.sql
		var out []string
		err := func() error {
			for {
				s, tail, err := c.Prepare(sqlText)
				if err != nil {
					return err
				}
				if s == nil {
					return nil
				}
				out = out[:0]
				for s.Step() {
					for i := range s.ColumnCount() {
						out = append(out, s.ColumnText(i))
					}
				}
				err = s.Close()
				if err != nil {
					return err
				}
				sqlText = tail
			}
		}()
		report(ck.name, out, err)
	}
}

func runSQL(db *sql.DB) {
	db.SetMaxOpenConns(1)
	for _, ck := range checks {
		stmts := splitSQL(ck.sql)
		var err error
		for _, s := range stmts[:len(stmts)-1] {
			if _, err = db.Exec(s); err != nil {
				break
			}
		}
		var out []string
		if err == nil {
			var rows *sql.Rows
			rows, err = db.Query(stmts[len(stmts)-1])
			if err == nil {
				cols, _ := rows.Columns()
				for rows.Next() {
					vals := make([]sql.NullString, len(cols))
					ptrs := make([]any, len(cols))
					for i := range vals {
						ptrs[i] = &vals[i]
					}
					rows.Scan(ptrs...)
					for _, v := range vals {
						out = append(out, v.String)
					}
				}
				err = rows.Err()
				rows.Close()
			}
		}
		report(ck.name, out, err)
	}
}

func splitSQL(s string) []string {
	var out []string
	for _, part := range bytes.Split([]byte(s), []byte(";")) {
		if t := bytes.TrimSpace(part); len(t) > 0 {
			out = append(out, string(t))
		}
	}
	return out
}

func report(name string, out []string, err error) {
	if err != nil {
		fmt.Printf("  %-22s FAIL: %v\n", name, err)
		return
	}
	fmt.Printf("  %-22s ok: %v\n", name, out)
}
