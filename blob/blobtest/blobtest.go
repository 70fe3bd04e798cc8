// Package blobtest is the conformance suite every blob.Store passes.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/imaginghub/imaginghub/blob"
)

// Run runs the suite against stores made by open; each call must return a
// new, empty store.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	ctx := context.Background()
	put := func(t *testing.T, s blob.Store, key string, data []byte) {
		t.Helper()
		w, err := s.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if w.Written() != int64(len(data)) {
			t.Fatalf("Written %d, want %d", w.Written(), len(data))
		}
		if err := w.Commit(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		data := bytes.Repeat([]byte("DICM"), 100000)
		put(t, s, "studies/1.2.3/1.2.3.4/1.2.3.4.5.dcm", data)
		r, err := s.Open(ctx, "studies/1.2.3/1.2.3.4/1.2.3.4.5.dcm")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got, _ := io.ReadAll(r)
		if !bytes.Equal(got, data) || r.Size() != int64(len(data)) {
			t.Fatalf("read %d bytes (size %d), want %d", len(got), r.Size(), len(data))
		}
		buf := make([]byte, 4)
		if _, err := r.ReadAt(buf, 400); err != nil || string(buf) != "DICM" {
			t.Fatalf("ReadAt: %q %v", buf, err)
		}
		if n, err := s.Stat(ctx, "studies/1.2.3/1.2.3.4/1.2.3.4.5.dcm"); err != nil || n != int64(len(data)) {
			t.Fatalf("Stat %d %v", n, err)
		}
	})
	t.Run("NotVisibleUntilCommit", func(t *testing.T) {
		s := open(t)
		w, err := s.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("partial"))
		if _, err := s.Open(ctx, "k"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("open before commit: %v", err)
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "k"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("stat after abort: %v", err)
		}
	})
	t.Run("ReplaceAndDelete", func(t *testing.T) {
		s := open(t)
		put(t, s, "a/b", []byte("one"))
		put(t, s, "a/b", []byte("two!"))
		if n, _ := s.Stat(ctx, "a/b"); n != 4 {
			t.Fatalf("size after replace %d", n)
		}
		if err := s.Delete(ctx, "a/b"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "a/b"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := s.Open(ctx, "a/b"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("open deleted: %v", err)
		}
	})
	t.Run("CleanTemp", func(t *testing.T) {
		s := open(t)
		for i := 0; i < 3; i++ {
			w, _ := s.Create(ctx)
			w.Write([]byte("orphan"))
		}
		put(t, s, "kept", []byte("x"))
		n, err := s.CleanTemp(ctx)
		if err != nil || n != 3 {
			t.Fatalf("CleanTemp removed %d, %v; want 3", n, err)
		}
		if _, err := s.Stat(ctx, "kept"); err != nil {
			t.Fatalf("committed blob removed: %v", err)
		}
	})
	t.Run("InvalidKeys", func(t *testing.T) {
		s := open(t)
		for _, k := range []string{"", "/abs", "../up", "a/../../b", "a//b", "a\\b"} {
			if _, err := s.Open(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("key %q: %v", k, err)
			}
		}
	})
	t.Run("Walk", func(t *testing.T) {
		s := open(t)
		keys := []string{"b/2/z.dcm", "a/1/x.dcm", "a/1/y.dcm", "a/2/x.dcm", "c"}
		for i, k := range keys {
			put(t, s, k, bytes.Repeat([]byte{'x'}, i+1))
		}
		w, _ := s.Create(ctx) // not committed: not walked
		w.Write([]byte("pending"))
		defer w.Abort()
		if err := s.Delete(ctx, "c"); err != nil {
			t.Fatal(err)
		}
		var got []string
		for b, err := range s.Walk(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if b.ModTime.IsZero() {
				t.Errorf("%s: no modification time", b.Key)
			}
			if want := int64(slices.Index(keys, b.Key) + 1); b.Size != want {
				t.Errorf("%s: size %d, want %d", b.Key, b.Size, want)
			}
			got = append(got, b.Key)
		}
		slices.Sort(got)
		if want := []string{"a/1/x.dcm", "a/1/y.dcm", "a/2/x.dcm", "b/2/z.dcm"}; !slices.Equal(got, want) {
			t.Errorf("walked %q, want %q", got, want)
		}
		n := 0
		for range s.Walk(ctx) {
			n++
			break
		}
		if n != 1 {
			t.Errorf("walk after break yielded %d", n)
		}
	})
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
