//go:build !linux

// Package durable holds what the packages that write files need to make
// them durable.
package durable

import "os"

// SyncDir makes the entries of dir durable, as far as the system lets a
// directory be synced.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
