package journal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/imaginghub/imaginghub/journal"
)

// The journal's reason to be, measured on the machine at hand: making a
// received 512 KiB instance durable by appending it to the journal,
// against the way without it — a new file written, fsynced, renamed into
// place and its directory fsynced — by one writer and by four at once
// (four associations). Both run on a real disk (/var/tmp; /tmp may be a
// tmpfs), one after the other in the same run:
//
//	go test -run '^$' -bench . ./journal
func BenchmarkDurable512K(b *testing.B) {
	dir := journal.RealDiskDir(b)
	data := make([]byte, 512<<10)
	for i := range data {
		data[i] = byte(i * 31)
	}

	for _, writers := range []int{1, 4} {
		b.Run(fmt.Sprintf("journal/writers=%d", writers), func(b *testing.B) {
			j, err := journal.Open(filepath.Join(dir, fmt.Sprint("intake.journal.", writers)), journal.Options{Size: 256 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			buf := journal.GetBuffer(int64(len(data)))
			buf.Write(data)
			defer buf.Put()
			durable(b, writers, len(data), func(i int) error {
				seq, err := j.Append(fmt.Sprint("k", i), buf)
				if err != nil {
					return err
				}
				j.Release(seq)
				if j.Used() > j.Size()/2 {
					return j.Checkpoint(func(uint64) error { return nil })
				}
				return nil
			})
		})

		b.Run(fmt.Sprintf("file+fsync/writers=%d", writers), func(b *testing.B) {
			files := filepath.Join(dir, fmt.Sprint("files.", writers))
			if err := os.MkdirAll(files, 0o750); err != nil {
				b.Fatal(err)
			}
			durable(b, writers, len(data), func(i int) error {
				tmp := filepath.Join(files, fmt.Sprint("tmp-", i))
				f, err := os.Create(tmp)
				if err != nil {
					return err
				}
				defer f.Close()
				if _, err := f.Write(data); err != nil {
					return err
				}
				if err := f.Sync(); err != nil {
					return err
				}
				if err := os.Rename(tmp, filepath.Join(files, fmt.Sprint("f-", i))); err != nil {
					return err
				}
				d, err := os.Open(files)
				if err != nil {
					return err
				}
				defer d.Close()
				return d.Sync()
			})
		})
	}
}

// durable runs one(0..b.N-1) spread over writers goroutines.
func durable(b *testing.B, writers, size int, one func(i int) error) {
	b.SetBytes(int64(size))
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < b.N; i += writers {
				if err := one(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
