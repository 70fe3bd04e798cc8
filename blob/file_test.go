package blob_test

import (
	"testing"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/blob/blobtest"
)

func TestFileStore(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := blob.NewFileStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
