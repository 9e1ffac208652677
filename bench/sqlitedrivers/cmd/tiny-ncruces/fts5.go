//go:build fts5

package main

import "github.com/ncruces/go-sqlite3/ext/fts5"

func init() { extras = append(extras, fts5.Register) }
