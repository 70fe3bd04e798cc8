//go:build !linux

package blob

import (
	"errors"
	"os"
)

func createTemp(dir, prefix string) (*os.File, error) { return os.CreateTemp(dir, prefix+"*") }

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func startWriteback(f *os.File, off, n int64) {}

func setDirect(f *os.File, on bool) error { return errors.ErrUnsupported }
