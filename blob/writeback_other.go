//go:build !linux

package blob

import (
	"errors"
	"os"
)

func startWriteback(f *os.File, off, n int64) {}

func setDirect(f *os.File, on bool) error { return errors.ErrUnsupported }
