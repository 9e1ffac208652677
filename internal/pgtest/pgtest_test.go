package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestDatabases: two databases of the private cluster are separate and
// answer queries over TCP.
func TestDatabases(t *testing.T) {
	ctx := context.Background()
	u1, u2 := NewDatabase(t), NewDatabase(t)
	if u1 == u2 {
		t.Fatalf("the same database twice: %s", u1)
	}
	c1, err := pgx.Connect(ctx, u1)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	if _, err := c1.Exec(ctx, `CREATE TABLE x(a int)`); err != nil {
		t.Fatal(err)
	}
	c2, err := pgx.Connect(ctx, u2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	var n int
	if err := c2.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'x'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("table of the first database seen in the second: %d %v", n, err)
	}
}
