package blob_test

import (
	"testing"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/blob/blobtest"
)

func TestFileStore(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "buffered", true: "direct"}[direct], func(t *testing.T) {
			blobtest.Run(t, func(t *testing.T) blob.Store {
				s, err := blob.NewFileStore(t.TempDir(), blob.FileOptions{DirectIO: direct})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}
