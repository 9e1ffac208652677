package server

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/tern-imap/tern/internal/blob"
	_ "github.com/tern-imap/tern/internal/store/postgres" // registers blob.ErrUnavailable as unavailable
)

// A storage error carrying a syscall.Errno (which has Timeout/Temporary
// methods and so satisfies net.Error) is not a connection error: the
// session must answer NO instead of silently dropping the client.
func TestIsConnError(t *testing.T) {
	storeErrs := []error{
		fmt.Errorf("append: %w", &fs.PathError{Op: "write", Path: "/data/blobs/x", Err: syscall.ENOSPC}),
		fmt.Errorf("open: %w", &fs.PathError{Op: "open", Path: "/data/blobs/y", Err: syscall.EIO}),
		fmt.Errorf("x: %w", syscall.EAGAIN),
	}
	for _, err := range storeErrs {
		if isConnError(err) {
			t.Errorf("%v: treated as a connection error", err)
		}
	}
	connErrs := []error{
		&net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded},
		fmt.Errorf("fetch: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}),
		net.ErrClosed, errClose,
		// A storage error that cut a literal half-way ends the connection.
		fmt.Errorf("urlfetch: %w: %w", errClose, fmt.Errorf("%w: cut", blob.ErrUnavailable)),
	}
	for _, err := range connErrs {
		if !isConnError(err) {
			t.Errorf("%v: not treated as a connection error", err)
		}
	}
}

type codedErr int

func (e codedErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e codedErr) Code() int     { return int(e) }

func TestIsDiskFull(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("append: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}),
		fmt.Errorf("commit: %w", codedErr(13)),
		fmt.Errorf("commit: %w", codedErr(13|256)), // extended code
	} {
		if !isDiskFull(err) {
			t.Errorf("%v: not disk full", err)
		}
	}
	for _, err := range []error{fmt.Errorf("x: %w", codedErr(5)), syscall.EIO} {
		if isDiskFull(err) {
			t.Errorf("%v: disk full", err)
		}
	}
}
