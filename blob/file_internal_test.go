package blob

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCommitsShareDirectoryFsyncs: commits into one directory at
// once all land, share fsyncs, and leave no bookkeeping behind.
func TestConcurrentCommitsShareDirectoryFsyncs(t *testing.T) {
	s := storeWith(t, "study/series/first.dcm")
	ctx := context.Background()
	// storeWith made the directory, so only the entries' fsyncs are counted.
	before := s.dirFsyncs.Load()
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Create(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			if _, err := w.Write(make([]byte, 64<<10)); err != nil {
				errs[i] = err
				return
			}
			errs[i] = w.Commit(ctx, fmt.Sprintf("study/series/%d.dcm", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if size, err := s.Stat(ctx, fmt.Sprintf("study/series/%d.dcm", i)); err != nil || size != 64<<10 {
			t.Fatalf("blob %d: size %d, %v", i, size, err)
		}
	}
	fsyncs := s.dirFsyncs.Load() - before
	if fsyncs < 1 || fsyncs > n {
		t.Errorf("%d directory fsyncs for %d commits", fsyncs, n)
	}
	t.Logf("%d directory fsyncs for %d concurrent commits", fsyncs, n)
	s.mu.Lock()
	left := len(s.syncs)
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d directory sync entries left", left)
	}
}

// TestCommitsWaitingForAnFsyncShareTheNext: commits that arrive while a
// directory fsync runs are all served by the one fsync after it.
func TestCommitsWaitingForAnFsyncShareTheNext(t *testing.T) {
	s := storeWith(t, "st/se/first.dcm")
	ctx := context.Background()
	dir := s.objs + "/st/se"
	// An fsync of the directory is under way (as if another commit's).
	s.mu.Lock()
	d := &dirSync{running: true, started: 7, done: 6, users: 1}
	d.cond.L = &s.mu
	s.syncs[dir] = d
	s.mu.Unlock()

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Create(ctx)
			if err == nil {
				errs[i] = w.Commit(ctx, fmt.Sprintf("st/se/%d.dcm", i))
			} else {
				errs[i] = err
			}
		}()
	}
	// Wait until every commit is waiting for the directory.
	for {
		s.mu.Lock()
		users := d.users
		s.mu.Unlock()
		if users == n+1 {
			break
		}
		runtime.Gosched()
	}
	before := s.dirFsyncs.Load()
	s.mu.Lock()
	d.running, d.done, d.users = false, 7, d.users-1 // the running fsync ends
	d.cond.Broadcast()
	s.mu.Unlock()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if got := s.dirFsyncs.Load() - before; got != 1 {
		t.Errorf("%d directory fsyncs after the running one, want 1 for all %d waiting commits", got, n)
	}
}

// storeWith opens a file store that closes when the test ends, holding one
// committed blob under key (so its directories exist).
func storeWith(t *testing.T, key string) *FileStore {
	t.Helper()
	s, err := NewFileStore(t.TempDir(), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, key); err != nil {
		t.Fatal(err)
	}
	return s
}

// Direct writes stage aligned blocks and write the last, partial one
// through the page cache; the file must come out exactly as written
// whatever its length and however the writes are cut, and also when the
// store falls back to buffered writes in the middle of a file (a
// filesystem refusing direct I/O).
func TestDirectWritesExact(t *testing.T) {
	var logs bytes.Buffer
	s, err := NewFileStore(t.TempDir(), FileOptions{DirectIO: true, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	direct := false // the filesystem takes direct I/O
	wantWarnings := 0
	sizes := []int{0, 1, directBlock - 1, directBlock, directBlock + 1, writebackChunk - 1, writebackChunk, writebackChunk + 1, 3*writebackChunk + 4321}
	// fallBackAt: -1 never; 0 and 1 before that write; 2 by the kernel
	// refusing a direct write (a misaligned stage) in the middle of one.
	for _, fallBackAt := range []int{-1, 0, 1, 2} {
		for i, size := range sizes {
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(j*7 + i)
			}
			s.noDirect.Store(false) // each file starts direct, where the filesystem allows
			w, err := s.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fw := w.(*fileWriter)
			startedDirect := fw.direct
			if fallBackAt < 0 && i == 0 {
				direct = fw.direct
			}
			if fallBackAt < 0 && i == 0 && !fw.direct {
				// Then every file below is written buffered, and must
				// come out exact all the same.
				t.Log("this filesystem refuses direct I/O")
			}
			// Writes of uneven sizes, as a network delivers them.
			for j, k := 0, 0; j < size; k++ {
				if fallBackAt == 2 && k == 0 && fw.direct {
					b := make([]byte, cap(fw.stage)+1)
					fw.stage = b[1 : 1 : cap(fw.stage)+1] // not on a block boundary
				}
				if k == fallBackAt && fallBackAt < 2 && fw.direct {
					if err := fw.fallBack(); err != nil {
						t.Fatal(err)
					}
				}
				n := min(size-j, 1000+k*37731)
				if _, err := w.Write(data[j : j+n]); err != nil {
					t.Fatal(err)
				}
				j += n
			}
			if w.Written() != int64(size) {
				t.Fatalf("Written %d, want %d", w.Written(), size)
			}
			key := fmt.Sprintf("d/%d/%d", fallBackAt+1, size)
			if err := w.Commit(ctx, key); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(s.objs, filepath.FromSlash(key)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("fall back at write %d, %d bytes: read back %d bytes, not what was written", fallBackAt, size, len(got))
			}
			if fw.refused || !startedDirect {
				wantWarnings++ // fell back, or refused at the start
			}
		}
	}
	if direct && wantWarnings < 3*len(sizes)/2 {
		t.Errorf("only %d of the writers fell back", wantWarnings)
	}
	// Every fallback (the flag is reset for each file) warned once.
	want := wantWarnings
	if n := strings.Count(logs.String(), "direct I/O refused"); n != want {
		t.Errorf("%d warnings about direct I/O, want %d:\n%s", n, want, logs.String())
	}
}
