//go:build !linux

package blob

import (
	"errors"
	"github.com/imaginghub/imaginghub/internal/durable"
	"os"
	"path/filepath"
)

func createTemp(dir, prefix string) (*os.File, error) { return os.CreateTemp(dir, prefix+"*") }

func startWriteback(f *os.File, off, n int64) {}

func setDirect(f *os.File, on bool) error { return errors.ErrUnsupported }

// syncFiles makes the files and their directories durable, one by one.
func syncFiles(root string, files []string) error {
	dirs := map[string]bool{}
	for _, name := range files {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted since
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
		dirs[filepath.Dir(name)] = true
	}
	for d := range dirs {
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}
