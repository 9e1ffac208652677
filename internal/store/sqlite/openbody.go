//go:build unix

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// openBodyFile opens a body file for reading. os.Open also tries to
// register the descriptor with the network poller, which a regular file
// refuses: four fcntl calls and a failed epoll_ctl per open, on every
// FETCH of a body kept in a file. os.NewFile of a blocking descriptor
// skips the poller (one fcntl to see that it blocks).
func openBodyFile(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
