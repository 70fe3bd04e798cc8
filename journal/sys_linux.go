package journal

import (
	"errors"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/durable"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openFile opens the journal at path, or creates it: size bytes of zeros
// (written, not merely allocated, so that a record's direct write later
// changes no filesystem metadata and its durability costs one device
// flush, not a filesystem journal commit), then init, then fsync, and only
// then its name, made durable. fresh reports a new file.
func openFile(path string, size int64, init func(*os.File) error) (f *os.File, fresh bool, err error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		f = os.NewFile(uintptr(fd), path)
		if err := lock(f); err != nil {
			f.Close()
			return nil, false, err
		}
		return f, false, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return nil, false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	tmp := path + ".new"
	fd, err = unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, &os.PathError{Op: "open", Path: tmp, Err: err}
	}
	f = os.NewFile(uintptr(fd), path)
	fail := func(op string, err error) (*os.File, bool, error) {
		f.Close()
		os.Remove(tmp)
		return nil, false, &os.PathError{Op: op, Path: tmp, Err: err}
	}
	if err := lock(f); err != nil {
		return fail("lock", err)
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off); err != nil {
			return fail("write", err)
		}
	}
	if err := init(f); err != nil {
		return fail("init", err)
	}
	if err := unix.Fsync(fd); err != nil {
		return fail("fsync", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail("rename", err)
	}
	return f, true, durable.SyncDir(filepath.Dir(path))
}

// lock takes an exclusive lock on the journal: one process writes it.
func lock(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrInUse, f.Name())
		}
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return nil
}

// openDirect opens a second descriptor of the journal for writing around
// the page cache (O_DIRECT), beside the first, which reads (recovery) and
// writes where direct I/O is refused. It returns -1 where the filesystem
// refuses direct I/O: writes then go through the page cache.
func openDirect(path string) int {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

func closeFD(fd int) { unix.Close(fd) }

// writeAt writes bufs at off, around the page cache while direct is set;
// flush makes them durable.
func (j *Journal) writeAt(bufs [][]byte, off int64) error {
	for len(bufs) > 0 {
		direct := j.direct.Load()
		fd := j.fd
		if direct {
			fd = j.dfd
		}
		n, err := unix.Pwritev(fd, bufs[:min(len(bufs), 1024)], off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EINVAL) && direct {
			// The filesystem took O_DIRECT at open but refuses the write.
			if j.direct.CompareAndSwap(true, false) {
				j.log.Info("intake journal: direct I/O refused, writing through the page cache", "err", err)
			}
			continue
		}
		if err != nil {
			return err
		}
		off += int64(n)
		for n > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			bufs[0] = bufs[0][n:]
			n = 0
		}
	}
	return nil
}

// flush makes every write that returned before it durable: the file's
// dirty pages written back, then the device's cache flushed (which on
// Linux fdatasync does even when nothing is dirty).
func (j *Journal) flush() error {
	for {
		err := unix.Fdatasync(j.fd)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
