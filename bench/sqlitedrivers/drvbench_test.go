package drvbench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3"
	_ "modernc.org/sqlite"                   // database/sql driver "sqlite"
)

// templatePath is the database every benchmark copies; built in TestMain.
var templatePath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drvbench-template-")
	if err != nil {
		panic(err)
	}
	templatePath = TemplateName(dir)
	if err := buildTemplate(templatePath); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildTemplate(path string) error {
	db, err := sql.Open("sqlite", DSN(path))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	if err := BuildTemplate(db); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// freshCopy returns the path of a private copy of the template database.
func freshCopy(b *testing.B) string {
	p := filepath.Join(b.TempDir(), "bench.db")
	if err := CopyFile(p, templatePath); err != nil {
		b.Fatal(err)
	}
	return p
}

// cpuNanos is the process's user+system CPU time so far.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// measure runs op in a b.Loop and also reports process CPU time per op
// (user+sys, including GC and any other goroutines) as cpu-ns/op. If
// reprepares is not nil, it returns (and resets) the number of times SQLite
// re-prepared the connection's statements, reported as reprepares/op.
func measure(b *testing.B, reprepares func() int64, op func() error) {
	if reprepares != nil {
		reprepares()
	}
	start := cpuNanos()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuNanos()-start)/float64(b.N), "cpu-ns/op")
	if reprepares != nil {
		b.ReportMetric(float64(reprepares())/float64(b.N), "reprepares/op")
	}
}

// stmtReprepares sums and resets SQLITE_STMTSTATUS_REPREPARE over the
// statements of an ncruces connection.
func stmtReprepares(conn *sqlite3.Conn) int64 {
	var n int64
	for s := range conn.Stmts() {
		n += int64(s.Status(sqlite3.STMTSTATUS_REPREPARE, true))
	}
	return n
}

// dbReprepares is stmtReprepares for the single connection of an ncruces
// database/sql pool.
func dbReprepares(db *sql.DB) int64 {
	c, err := db.Conn(context.Background())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	var n int64
	c.Raw(func(dc any) error {
		n = stmtReprepares(dc.(interface{ Raw() *sqlite3.Conn }).Raw())
		return nil
	})
	return n
}

// pointReadName names the PointRead sub-benchmark for mailbox mbox.
// PointRead binds mailbox_id = 1. Since SQLite 3.54 a statement like this
// join whose plan may depend on a parameter being 0 or 1 is expired by
// sqlite3_clear_bindings; a driver that clears bindings after every use then
// re-parses and re-plans it on every execution. PointRead2 binds
// mailbox_id = 2 and avoids that, showing the cost without it.
func pointReadName(mbox int64) string {
	if mbox == 1 {
		return "PointRead"
	}
	return fmt.Sprintf("PointRead%d", mbox)
}

func checkRows(n int) error {
	if n != RangeRows {
		return fmt.Errorf("RangeRead returned %d rows, want %d", n, RangeRows)
	}
	return nil
}

// ---------------------------------------------------------------------------
// database/sql, shared by candidates 1 (modernc) and 3 (ncruces driver).

func BenchmarkModerncSQL(b *testing.B) { benchDatabaseSQL(b, "sqlite", false) }
func BenchmarkNcrucesSQL(b *testing.B) { benchDatabaseSQL(b, "sqlite3", true) }

// benchDatabaseSQL follows tern's usage: one writer connection, statements
// prepared once on the *sql.DB and reused; inside a transaction every use
// goes through Tx.StmtContext(ctx, stmt).
func benchDatabaseSQL(b *testing.B, driverName string, isNcruces bool) {
	ctx := context.Background()
	db, err := sql.Open(driverName, DSN(freshCopy(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	prep := func(q string) *sql.Stmt {
		s, err := db.PrepareContext(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	point, rng := prep(SQLPointRead), prep(SQLRangeRead)
	selBox, updMsg, updBox := prep(SQLSelectBox), prep(SQLUpdateMsg), prep(SQLUpdateBox)
	var reprep func() int64
	if isNcruces {
		reprep = func() int64 { return dbReprepares(db) }
	}

	for _, mbox := range []int64{1, 2} {
		b.Run(pointReadName(mbox), func(b *testing.B) {
			r := NewRand()
			var size int64
			var parts, header []byte
			measure(b, reprep, func() error {
				return point.QueryRowContext(ctx, mbox, RandomUID(r)).Scan(&size, &parts, &header)
			})
		})
	}

	b.Run("RangeRead", func(b *testing.B) {
		r := NewRand()
		var uid, modseq, flags int64
		var kw string
		measure(b, reprep, func() error {
			lo := RandomRangeStart(r)
			rows, err := rng.QueryContext(ctx, 1, lo, lo+RangeRows-1)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				if err := rows.Scan(&uid, &modseq, &flags, &kw); err != nil {
					rows.Close()
					return err
				}
				n++
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
			return checkRows(n)
		})
	})

	b.Run("WriteTx", func(b *testing.B) {
		r := NewRand()
		measure(b, reprep, func() error {
			tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE via _txlock
			if err != nil {
				return err
			}
			defer tx.Rollback()
			var uidnext, hms int64
			if err := tx.StmtContext(ctx, selBox).QueryRowContext(ctx).Scan(&uidnext, &hms); err != nil {
				return err
			}
			hms++
			if _, err := tx.StmtContext(ctx, updMsg).ExecContext(ctx, hms&0x1f, hms, RandomUID(r)); err != nil {
				return err
			}
			if _, err := tx.StmtContext(ctx, updBox).ExecContext(ctx, hms); err != nil {
				return err
			}
			return tx.Commit()
		})
	})

	b.Run("BeginCommit", func(b *testing.B) {
		measure(b, reprep, func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			return tx.Commit()
		})
	})
}

// ---------------------------------------------------------------------------
// modernc through database/sql/driver directly (sql.Conn.Raw). Not a
// candidate for tern as such; it splits candidate 1's cost into the driver's
// share and database/sql's share.

func BenchmarkModerncDriver(b *testing.B) { benchDriver(b, "sqlite") }

func benchDriver(b *testing.B, driverName string) {
	ctx := context.Background()
	db, err := sql.Open(driverName, DSN(freshCopy(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	sc, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	err = sc.Raw(func(dc any) error {
		conn := dc.(interface {
			driver.ConnPrepareContext
			driver.ConnBeginTx
		})
		type stmt interface {
			driver.Stmt
			driver.StmtQueryContext
			driver.StmtExecContext
		}
		prep := func(q string) stmt {
			s, err := conn.PrepareContext(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			return s.(stmt)
		}
		point, rng := prep(SQLPointRead), prep(SQLRangeRead)
		selBox, updMsg, updBox := prep(SQLSelectBox), prep(SQLUpdateMsg), prep(SQLUpdateBox)
		nv := func(n int) []driver.NamedValue {
			a := make([]driver.NamedValue, n)
			for i := range a {
				a[i].Ordinal = i + 1
			}
			return a
		}

		for _, mbox := range []int64{1, 2} {
			b.Run(pointReadName(mbox), func(b *testing.B) {
				r := NewRand()
				args, dest := nv(2), make([]driver.Value, 3)
				var size int64
				var parts, header []byte
				measure(b, nil, func() error {
					args[0].Value, args[1].Value = mbox, RandomUID(r)
					rows, err := point.QueryContext(ctx, args)
					if err != nil {
						return err
					}
					if err := rows.Next(dest); err != nil {
						rows.Close()
						return err
					}
					size = dest[0].(int64)
					parts = append(parts[:0], dest[1].([]byte)...)
					header = append(header[:0], dest[2].([]byte)...)
					return rows.Close()
				})
				_ = size
			})
		}

		b.Run("RangeRead", func(b *testing.B) {
			r := NewRand()
			args, dest := nv(3), make([]driver.Value, 4)
			var uid, modseq, flags int64
			var kw string
			measure(b, nil, func() error {
				lo := RandomRangeStart(r)
				args[0].Value, args[1].Value, args[2].Value = int64(1), lo, lo+RangeRows-1
				rows, err := rng.QueryContext(ctx, args)
				if err != nil {
					return err
				}
				n := 0
				for rows.Next(dest) == nil {
					uid, modseq, flags = dest[0].(int64), dest[1].(int64), dest[2].(int64)
					kw = dest[3].(string)
					n++
				}
				if err := rows.Close(); err != nil {
					return err
				}
				return checkRows(n)
			})
			_, _, _, _ = uid, modseq, flags, kw
		})

		b.Run("WriteTx", func(b *testing.B) {
			r := NewRand()
			a1, a3, dest := nv(1), nv(3), make([]driver.Value, 2)
			measure(b, nil, func() error {
				tx, err := conn.BeginTx(ctx, driver.TxOptions{})
				if err != nil {
					return err
				}
				rows, err := selBox.QueryContext(ctx, nil)
				if err != nil {
					tx.Rollback()
					return err
				}
				err = rows.Next(dest)
				rows.Close()
				if err != nil {
					tx.Rollback()
					return err
				}
				hms := dest[1].(int64) + 1
				a3[0].Value, a3[1].Value, a3[2].Value = hms&0x1f, hms, RandomUID(r)
				if _, err := updMsg.ExecContext(ctx, a3); err != nil {
					tx.Rollback()
					return err
				}
				a1[0].Value = hms
				if _, err := updBox.ExecContext(ctx, a1); err != nil {
					tx.Rollback()
					return err
				}
				return tx.Commit()
			})
		})

		b.Run("BeginCommit", func(b *testing.B) {
			measure(b, nil, func() error {
				tx, err := conn.BeginTx(ctx, driver.TxOptions{})
				if err != nil {
					return err
				}
				return tx.Commit()
			})
		})

		for _, s := range []stmt{point, rng, selBox, updMsg, updBox} {
			s.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Candidate 2: ncruces direct API, every statement prepared once.

func BenchmarkNcrucesDirect(b *testing.B) {
	conn, err := sqlite3.Open(freshCopy(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	for _, p := range PragmaStatements() {
		if err := conn.Exec(p); err != nil {
			b.Fatal(err)
		}
	}
	prep := func(q string) *sqlite3.Stmt {
		s, _, err := conn.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	point, rng := prep(SQLPointRead), prep(SQLRangeRead)
	selBox, updMsg, updBox := prep(SQLSelectBox), prep(SQLUpdateMsg), prep(SQLUpdateBox)
	begin, commit, rollback := prep("BEGIN IMMEDIATE"), prep("COMMIT"), prep("ROLLBACK")
	defer func() {
		for _, s := range []*sqlite3.Stmt{point, rng, selBox, updMsg, updBox, begin, commit, rollback} {
			s.Close()
		}
	}()

	// bind binds int64 arguments to s, starting at parameter 1.
	bind := func(s *sqlite3.Stmt, args ...int64) error {
		for i, a := range args {
			if err := s.BindInt64(i+1, a); err != nil {
				return err
			}
		}
		return nil
	}

	reprep := func() int64 { return stmtReprepares(conn) }

	for _, mbox := range []int64{1, 2} {
		b.Run(pointReadName(mbox), func(b *testing.B) {
			r := NewRand()
			var size int64
			var parts, header []byte
			measure(b, reprep, func() error {
				if err := bind(point, mbox, RandomUID(r)); err != nil {
					return err
				}
				if !point.Step() {
					point.Reset()
					return fmt.Errorf("PointRead: no row: %v", point.Err())
				}
				size = point.ColumnInt64(0)
				parts = point.ColumnBlob(1, parts[:0])
				header = point.ColumnBlob(2, header[:0])
				return point.Reset()
			})
			_ = size
		})
	}

	b.Run("RangeRead", func(b *testing.B) {
		r := NewRand()
		var uid, modseq, flags int64
		var kw string
		measure(b, reprep, func() error {
			lo := RandomRangeStart(r)
			if err := bind(rng, 1, lo, lo+RangeRows-1); err != nil {
				return err
			}
			n := 0
			for rng.Step() {
				uid, modseq, flags = rng.ColumnInt64(0), rng.ColumnInt64(1), rng.ColumnInt64(2)
				kw = rng.ColumnText(3)
				n++
			}
			if err := rng.Reset(); err != nil {
				return err
			}
			return checkRows(n)
		})
		_, _, _, _ = uid, modseq, flags, kw
	})

	b.Run("WriteTx", func(b *testing.B) {
		r := NewRand()
		measure(b, reprep, func() (err error) {
			if err := begin.Exec(); err != nil {
				return err
			}
			defer func() {
				if err != nil {
					rollback.Exec()
				}
			}()
			if !selBox.Step() {
				selBox.Reset()
				return fmt.Errorf("no mailbox: %v", selBox.Err())
			}
			uidnext, hms := selBox.ColumnInt64(0), selBox.ColumnInt64(1)
			_ = uidnext
			if err := selBox.Reset(); err != nil {
				return err
			}
			hms++
			if err := bind(updMsg, hms&0x1f, hms, RandomUID(r)); err != nil {
				return err
			}
			if err := updMsg.Exec(); err != nil {
				return err
			}
			if err := bind(updBox, hms); err != nil {
				return err
			}
			if err := updBox.Exec(); err != nil {
				return err
			}
			return commit.Exec()
		})
	})

	b.Run("BeginCommit", func(b *testing.B) {
		measure(b, reprep, func() error {
			if err := begin.Exec(); err != nil {
				return err
			}
			return commit.Exec()
		})
	})

	// The same with Conn.Exec, which parses the SQL text every time.
	b.Run("BeginCommitExec", func(b *testing.B) {
		measure(b, reprep, func() error {
			if err := conn.Exec("BEGIN IMMEDIATE"); err != nil {
				return err
			}
			return conn.Exec("COMMIT")
		})
	})
}

// TestSanity checks that every candidate sees the same data and the same
// pragma settings, so the benchmarks compare like with like.
func TestSanity(t *testing.T) {
	for _, drv := range []string{"sqlite", "sqlite3"} {
		t.Run(drv, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "s.db")
			if err := CopyFile(p, templatePath); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open(drv, DSN(p))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			var jm string
			var sync, fk, bt, n, sum int64
			if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&jm); err != nil {
				t.Fatal(err)
			}
			db.QueryRow(`PRAGMA synchronous`).Scan(&sync)
			db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk)
			db.QueryRow(`PRAGMA busy_timeout`).Scan(&bt)
			db.QueryRow(`SELECT count(*), sum(length(header)) FROM contents`).Scan(&n, &sum)
			t.Logf("%s: journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d contents=%d avg header=%d",
				drv, jm, sync, fk, bt, n, sum/max(n, 1))
			if jm != "wal" || sync != 1 || fk != 1 || bt != 5000 || n != NumMessages {
				t.Fatal("unexpected settings or data")
			}
		})
	}
	t.Run("ncruces-direct", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "s.db")
		if err := CopyFile(p, templatePath); err != nil {
			t.Fatal(err)
		}
		conn, err := sqlite3.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, s := range PragmaStatements() {
			if err := conn.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for _, q := range []string{"PRAGMA journal_mode", "PRAGMA synchronous", "PRAGMA foreign_keys", "PRAGMA busy_timeout"} {
			s, _, err := conn.Prepare(q)
			if err != nil {
				t.Fatal(err)
			}
			s.Step()
			got = append(got, s.ColumnText(0))
			s.Close()
		}
		t.Logf("ncruces direct: %v", got)
		if fmt.Sprint(got) != "[wal 1 1 5000]" {
			t.Fatal("unexpected settings")
		}
	})
}
