// Package durable holds what the packages that write files need to make
// them durable.
package durable

import (
	"os"

	"golang.org/x/sys/unix"
)

// SyncDir makes the entries of dir (names created, renamed or removed in
// it) durable.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	err = unix.Fsync(fd)
	unix.Close(fd)
	if err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}
