package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestWatchdogStopsOrphanedServer: a test binary that dies without
// stopping its cluster (here: exits in the middle of a test, as a
// -timeout panic does) leaves neither the server running nor its
// directory.
func TestWatchdogStopsOrphanedServer(t *testing.T) {
	if os.Getenv("PGTEST_ORPHAN") == "1" {
		c, err := Start()
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		pid, err := os.ReadFile(filepath.Join(c.dir, "data", "postmaster.pid"))
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		fmt.Println("CLUSTER", c.dir, strings.SplitN(string(pid), "\n", 2)[0])
		os.Exit(3) // no Stop, no return to Main
	}
	if _, err := findBin(); err != nil {
		t.Skipf("PostgreSQL is not installed: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchdogStopsOrphanedServer$")
	cmd.Env = append(os.Environ(), "PGTEST_ORPHAN=1")
	out, _ := cmd.Output()
	var dir string
	var pid int
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "CLUSTER %s %d", &dir, &pid); err == nil {
			break
		}
	}
	if dir == "" || pid <= 0 {
		t.Fatalf("the child did not start a cluster: %s", out)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, statErr := os.Stat(dir)
		alive := syscall.Kill(pid, 0) == nil
		if !alive && errors.Is(statErr, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			if alive {
				syscall.Kill(pid, syscall.SIGINT) // the test's own server: do not leave it
			}
			defer os.RemoveAll(dir)
			t.Fatalf("after the test process died: server %d alive %v, directory %s: %v", pid, alive, dir, statErr)
		}
	}
}
