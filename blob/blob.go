// Package blob stores the archive's files (DICOM Part 10 instances) under
// keys. Writers stream into a temporary object and Commit it: a blob is
// under its key only once complete, and durable when Commit returns, so
// whoever records a key (the catalog) does so after Commit.
//
// Store is the portable interface; FileStore keeps blobs as files under a
// directory (the embedded default). Every implementation passes the suite
// in blobtest.
package blob

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"
)

// Sentinel errors.
var (
	ErrNotFound   = errors.New("blob: not found")
	ErrInvalidKey = errors.New("blob: invalid key")
)

// Store keeps blobs by key.
type Store interface {
	// Create starts a new blob. Nothing is visible until Commit.
	Create(ctx context.Context) (Writer, error)
	// Open returns the blob stored under key, or ErrNotFound.
	Open(ctx context.Context, key string) (Reader, error)
	// Stat returns the size of the blob under key, or ErrNotFound.
	Stat(ctx context.Context, key string) (int64, error)
	// Delete removes the blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, key string) error
	// CleanTemp removes temporary objects left by writers that never
	// committed (a crash mid-transfer) and reports how many it removed.
	CleanTemp(ctx context.Context) (int, error)
	// Ping reports whether the store can be written.
	Ping(ctx context.Context) error
	// Walk yields every committed blob, in no promised order, for
	// consistency checks. Blobs committed or deleted while it runs may or may not be
	// seen. Iteration stops at the first error, yielded with a zero Info.
	Walk(ctx context.Context) iter.Seq2[Info, error]
}

// Info describes one committed blob.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time // when it was committed (its last write)
}

// Writer streams one new blob.
type Writer interface {
	io.Writer
	// Written is the number of bytes written so far.
	Written() int64
	// Commit puts the blob under key and makes it durable, replacing any
	// blob there.
	Commit(ctx context.Context, key string) error
	// Abort discards the blob. Abort after Commit does nothing.
	Abort() error
}

// Reader reads one blob.
type Reader interface {
	io.ReadSeekCloser
	io.ReaderAt
	Size() int64
}
