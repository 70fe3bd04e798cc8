package blob

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// The store's own files are opened with plain system calls rather than
// os.CreateTemp and os.Open: those put a regular file in non-blocking mode
// and try to register it with the network poller (which refuses it), and
// File.Fd later switches it back — five system calls per file that do
// nothing for a file on disk, and on a virtual machine each costs tens of
// microseconds.

// createTemp creates a new file named prefix followed by random hex in
// dir, open for reading and writing, with no status flags set (so setDirect
// need not read them).
func createTemp(dir, prefix string) (*os.File, error) {
	for range 10 {
		name := filepath.Join(dir, prefix+randomHex())
		fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
	return nil, &os.PathError{Op: "createtemp", Path: filepath.Join(dir, prefix+"*"), Err: os.ErrExist}
}

// randomHex names temporary files; O_EXCL settles the rare collision, so
// the generator need not be cryptographic (and makes no system call).
func randomHex() string { return strconv.FormatUint(rand.Uint64(), 16) }

// startWriteback asks the kernel to begin writing [off, off+n) of f to the
// device without waiting, so that the fsync at commit finds most of a large
// file already written. Errors are ignored: the fsync reports them.
func startWriteback(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// setDirect turns direct I/O (O_DIRECT) on or off for f, a file made by
// createTemp: it carries no other status flag, so the new flags are set
// without reading the old ones.
func setDirect(f *os.File, on bool) error {
	fl := 0
	if on {
		fl = unix.O_DIRECT
	}
	_, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, fl)
	return err
}

// syncFiles makes the files (and their directory entries) durable: with
// one syncfs of the filesystem holding root, which writes back all its
// dirty data and commits its journal once, whatever the number of files.
func syncFiles(root string, files []string) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return &os.PathError{Op: "syncfs", Path: root, Err: err}
	}
	return nil
}
