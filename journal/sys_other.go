//go:build !linux

package journal

import (
	"errors"
	"github.com/imaginghub/imaginghub/internal/durable"
	"os"
	"path/filepath"
)

func openFile(path string, size int64, init func(*os.File) error) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		return f, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	tmp := path + ".new"
	f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, false, err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off)
	}
	if err == nil {
		err = init(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, false, err
	}
	return f, true, durable.SyncDir(filepath.Dir(path))
}

func openDirect(path string) int { return -1 }

func closeFD(fd int) {}

func (j *Journal) writeAt(bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := j.f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

func (j *Journal) flush() error { return j.f.Sync() }
