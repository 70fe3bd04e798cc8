//go:build linux

// Command durable measures, for bench/ingest.sh, what writing one instance
// costs on the filesystem at hand, two ways:
//
//   - durable: the bytes written around the page cache (O_DIRECT, where
//     the filesystem allows it) into a preallocated file, then the
//     device's cache flushed (fdatasync). This
//     is the least a receiver that answers only once an instance would
//     survive a power loss waits for, per instance, when instances arrive
//     one at a time.
//   - cached: a new file created and the bytes written through the page
//     cache, then closed, as DCMTK's storescp does.
//
// It prints the medians in milliseconds as "durable_ms=D cached_ms=C".
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
	"unsafe"

	"golang.org/x/sys/unix"
)

const block = 4096

func main() {
	size := flag.Int("size", 512<<10+4<<10, "bytes per instance")
	n := flag.Int("n", 200, "writes of each kind")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: durable [-size BYTES] [-n N] DIR")
		os.Exit(2)
	}
	durable, cached, err := measure(flag.Arg(0), *size, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "durable:", err)
		os.Exit(1)
	}
	fmt.Printf("durable_ms=%.3f cached_ms=%.3f\n", ms(durable), ms(cached))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// measure alternates the two kinds of write n times each; the cached files
// are left in dir (deleting them would cost the next file-creating peer).
func measure(dir string, size, n int) (durable, cached time.Duration, err error) {
	size = (size + block - 1) / block * block
	buf := aligned(size)
	for i := range buf {
		buf[i] = byte(i * 31)
	}
	path := filepath.Join(dir, "durable.ring")
	ring := int64(size) * 64
	if err := prealloc(path, ring); err != nil {
		return 0, 0, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EINVAL) {
		// The filesystem refuses direct I/O: through the page cache, as
		// the hub's journal then writes.
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	var ds, cs []time.Duration
	off := int64(0)
	for i := range n {
		t := time.Now()
		if _, err := unix.Pwrite(fd, buf, off); err != nil {
			return 0, 0, fmt.Errorf("direct write: %w", err)
		}
		if err := unix.Fdatasync(fd); err != nil {
			return 0, 0, fmt.Errorf("fdatasync: %w", err)
		}
		ds = append(ds, time.Since(t))
		if off += int64(size); off+int64(size) > ring {
			off = 0
		}

		t = time.Now()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("cached.%d", i)), buf, 0o644); err != nil {
			return 0, 0, err
		}
		cs = append(cs, time.Since(t))
	}
	return median(ds), median(cs), nil
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

// aligned returns n bytes whose start is aligned for direct I/O.
func aligned(n int) []byte {
	raw := make([]byte, n+block)
	off := (block - int(uintptr(unsafe.Pointer(&raw[0]))%block)) % block
	return raw[off : off+n]
}
