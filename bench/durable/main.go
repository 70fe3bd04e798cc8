//go:build linux

// Command durable measures, for bench/ingest.sh, what making one instance
// durable costs on the filesystem at hand: its bytes written around the
// page cache (O_DIRECT, where the filesystem allows it) into a
// preallocated file, then the device's cache flushed (fdatasync). That is
// the least a receiver that answers only once an instance would survive a
// power loss waits for, per instance, when instances arrive one at a time.
//
// It prints the median in milliseconds as "durable_ms=D".
//
// Usage:
//
//	go run ./bench/durable [-size BYTES] [-n 200] DIR
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imaginghub/imaginghub/internal/durable"
)

func main() {
	size := flag.Int("size", 512<<10+4<<10, "bytes per instance")
	n := flag.Int("n", 200, "writes")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: durable [-size BYTES] [-n N] DIR")
		os.Exit(2)
	}
	d, err := measure(flag.Arg(0), *size, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "durable:", err)
		os.Exit(1)
	}
	fmt.Printf("durable_ms=%.3f\n", float64(d)/float64(time.Millisecond))
}

// measure returns the median of n durable writes of size bytes (rounded
// up to the alignment direct I/O asks for).
func measure(dir string, size, n int) (time.Duration, error) {
	size = (size + durable.Align - 1) / durable.Align * durable.Align
	buf := durable.AlignedBuffer(size)[:size]
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	path := filepath.Join(dir, "durable.ring")
	ring := int64(size) * 64
	if err := prealloc(path, ring); err != nil {
		return 0, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		// The filesystem refuses direct I/O: through the page cache, as
		// the hub's journal then writes.
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var ds []time.Duration
	off := int64(0)
	for range n {
		t := time.Now()
		if _, err := unix.Pwrite(fd, buf, off); err != nil {
			return 0, fmt.Errorf("direct write: %w", err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return 0, fmt.Errorf("fdatasync: %w", err)
		}
		ds = append(ds, time.Since(t))
		if off += int64(size); off+int64(size) > ring {
			off = 0
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// prealloc makes a file of size bytes whose blocks are allocated and
// written, so that the writes measured change no file metadata (as in a
// journal that is reused).
func prealloc(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zero)) {
		if _, err := f.Write(zero[:min(int64(len(zero)), size-off)]); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
