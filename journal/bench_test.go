package journal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaginghub/imaginghub/journal"
)

// The journal's reason to be, measured on the machine at hand: making a
// received 512 KiB instance durable by appending it to the journal,
// against the way without it — a new file written, fsynced, renamed into
// place and its directory fsynced. Both run on a real disk (/var/tmp; /tmp
// may be a tmpfs), one after the other in the same run:
//
//	go test -run '^$' -bench . ./journal
func BenchmarkDurable512K(b *testing.B) {
	dir := journal.RealDiskDir(b)
	data := make([]byte, 512<<10)
	for i := range data {
		data[i] = byte(i * 31)
	}

	b.Run("journal", func(b *testing.B) {
		j, err := journal.Open(filepath.Join(dir, "intake.journal"), journal.Options{Size: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer j.Close()
		buf := journal.GetBuffer(int64(len(data)))
		buf.Write(data)
		defer buf.Put()
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for i := range b.N {
			seq, err := j.Append(fmt.Sprint("k", i), buf)
			if err != nil {
				b.Fatal(err)
			}
			j.Release(seq)
			if j.Used() > j.Size()/2 {
				b.StopTimer()
				if err := j.Checkpoint(func(uint64) error { return nil }); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
	})

	b.Run("file+fsync", func(b *testing.B) {
		files := filepath.Join(dir, "files")
		if err := os.MkdirAll(files, 0o750); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for i := range b.N {
			tmp := filepath.Join(files, fmt.Sprint("tmp-", i))
			f, err := os.Create(tmp)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if err := os.Rename(tmp, filepath.Join(files, fmt.Sprint("f-", i))); err != nil {
				b.Fatal(err)
			}
			d, err := os.Open(files)
			if err != nil {
				b.Fatal(err)
			}
			if err := d.Sync(); err != nil {
				b.Fatal(err)
			}
			d.Close()
		}
	})
}
