//go:build sql

package main

import (
	"database/sql"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver"
)

func init() {
	extras = append(extras, func(*sqlite3.Conn) error {
		db, err := sql.Open("sqlite3", ":memory:")
		if err != nil {
			return err
		}
		defer db.Close()
		return db.Ping()
	})
}
