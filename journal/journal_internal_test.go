package journal

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirectWritesOnRealDisk runs the journal in a directory of /var/tmp,
// which unlike /tmp is not a tmpfs on most systems, so that records and
// checkpoints are written with O_DIRECT, and checks that the writes were
// not refused (misaligned buffers or offsets would make the journal fall
// back to the page cache).
func TestDirectWritesOnRealDisk(t *testing.T) {
	dir := RealDiskDir(t)
	path := filepath.Join(dir, "intake.journal")

	j := mustOpen(t, path)
	defer func() { j.Close() }()
	if !j.direct.Load() {
		t.Skipf("the filesystem of %s refuses O_DIRECT", dir)
	}

	type rec struct {
		seq  uint64
		key  string
		data []byte
	}
	appendRec := func(key string, n int) rec {
		t.Helper()
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		b := GetBuffer(int64(n))
		defer b.Put()
		b.Write(data)
		seq, err := j.Append(key, b)
		if err != nil {
			t.Fatalf("Append(%s): %v", key, err)
		}
		return rec{seq, key, data}
	}

	// A checkpoint passes the first records; the ring wraps with the rest.
	var before []rec
	for i, n := range []int{0, 1, 4095, 4096, 4097, 100 << 10} {
		before = append(before, appendRec(fmt.Sprintf("before-%d", i), n))
	}
	for _, r := range before {
		j.Release(r.seq)
	}
	if err := j.Checkpoint(func(uint64) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var want []rec
	for i := 0; int64(i)*(100<<10+Block) < j.size; i++ {
		r := appendRec(fmt.Sprintf("after-%d", i), 100<<10)
		want = append(want, r)
		if len(want) > 3 {
			j.Release(want[0].seq)
			want = want[1:]
			if err := j.Checkpoint(func(uint64) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !j.direct.Load() {
		t.Fatal("direct writes were refused: the journal fell back to the page cache")
	}
	j.Close()

	j = mustOpen(t, path)
	got := j.Pending()
	if len(got) != len(want) {
		t.Fatalf("%d records pending, want %d", len(got), len(want))
	}
	for i, r := range got {
		data, err := j.Read(r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != want[i].seq || r.Key != want[i].key || !bytes.Equal(data, want[i].data) {
			t.Errorf("pending record %d: seq %d key %q (%d bytes), want seq %d key %q (%d bytes)", i, r.Seq, r.Key, len(data), want[i].seq, want[i].key, len(want[i].data))
		}
	}
}

// TestGroupCommitAcrossTheRingEnd: records written while a flush is
// under way wait for the next one and share it; records placed across the
// end of the ring (the last ones from its start) are found in order by a
// reopen.
func TestGroupCommitAcrossTheRingEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "intake.journal")
	j := mustOpen(t, path)
	defer func() { j.Close() }()
	const size = 5000 // three blocks with the header
	need := recordLen(size)
	data := func(i int) []byte {
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(i*31 + k)
		}
		return b
	}
	appendAsync := func(key string, d []byte) <-chan error {
		done := make(chan error, 1)
		b := GetBuffer(size)
		b.Write(d)
		go func() {
			_, err := j.Append(key, b)
			b.Put()
			done <- err
		}()
		return done
	}

	// Bring the head to where two records fit before the end, not three.
	for i := 0; ; i++ {
		j.mu.Lock()
		head := j.head
		j.mu.Unlock()
		if head+3*need > j.size {
			if head+2*need > j.size {
				t.Fatalf("head at %d: the setup expected room for two records before the end (%d)", head, j.size)
			}
			break
		}
		b := GetBuffer(size)
		b.Write(data(1000 + i))
		seq, err := j.Append("fill", b)
		b.Put()
		if err != nil {
			t.Fatal(err)
		}
		j.Release(seq)
		if err := j.Checkpoint(func(uint64) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}

	// The first record's flush is held while four more are written.
	var flushes atomic.Int32
	held, release := make(chan struct{}), make(chan struct{})
	j.hookFlush = func() {
		if flushes.Add(1) == 1 {
			close(held)
			<-release
		}
	}
	first := appendAsync("batch-0", data(0))
	<-held
	var rest []<-chan error
	for i := 1; i <= 4; i++ {
		rest = append(rest, appendAsync(fmt.Sprintf("batch-%d", i), data(i)))
	}
	testenv.WaitFor(t, "the four records written", 20*time.Second, func() bool {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.appending == 5 && len(j.writing) == 0
	})
	for i, done := range rest {
		select {
		case err := <-done:
			t.Fatalf("Append batch-%d returned (%v) before a flush that followed its write", i+1, err)
		default:
		}
	}
	close(release)
	for i, done := range append([]<-chan error{first}, rest...) {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Append batch-%d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Append batch-%d did not return", i)
		}
	}
	if n := flushes.Load(); n != 2 {
		t.Errorf("%d flushes for the five records, want 2 (the first one's, and one shared by the four written while it ran)", n)
	}
	j.Close()

	j = mustOpen(t, path)
	got := j.Pending()
	if len(got) != 5 {
		t.Fatalf("%d records pending, want the 5 of the batch", len(got))
	}
	wrapped := false
	seen := map[int]bool{}
	for i, r := range got {
		d, err := j.Read(r)
		if err != nil {
			t.Fatal(err)
		}
		// The four went into the ring in whatever order they came.
		var k int
		if _, err := fmt.Sscanf(r.Key, "batch-%d", &k); err != nil || seen[k] || (i == 0) != (k == 0) || !bytes.Equal(d, data(k)) || (i > 0 && r.Seq != got[i-1].Seq+1) {
			t.Errorf("pending record %d: seq %d key %q, data equal: %v", i, r.Seq, r.Key, err == nil && bytes.Equal(d, data(k)))
		}
		seen[k] = true
		wrapped = wrapped || r.off == ringStart
	}
	if !wrapped {
		t.Error("no record of the batch went to the ring's start")
	}
}

// A record write that fails leaves a hole recovery would stop at, so the
// journal takes no record until a checkpoint has moved its tail past the
// hole; then it works again, and a reopen finds exactly what followed.
func TestFailedWriteStopsAppendsUntilCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "intake.journal")
	j := mustOpen(t, path)
	defer func() { j.Close() }()
	appendRec := func(key string) error {
		b := GetBuffer(1 << 10)
		defer b.Put()
		b.Write(bytes.Repeat([]byte{7}, 1000))
		seq, err := j.Append(key, b)
		if err == nil {
			j.Release(seq)
		}
		return err
	}
	if err := appendRec("ok-1"); err != nil {
		t.Fatal(err)
	}
	// Writes fail: the descriptor they go through is read-only.
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	saved, direct := j.fd, j.direct.Load()
	j.fd = int(ro.Fd())
	j.direct.Store(false)
	if err := appendRec("lost"); err == nil {
		t.Fatal("append through a read-only descriptor succeeded")
	}
	j.fd = saved
	j.direct.Store(direct)
	if err := appendRec("after-hole"); err == nil || !strings.Contains(err.Error(), "unusable until the next checkpoint") {
		t.Fatalf("append after a failed write: %v", err)
	}
	if err := j.Checkpoint(func(uint64) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := appendRec("ok-2"); err != nil {
		t.Fatalf("append after the checkpoint: %v", err)
	}
	j.Close()
	j = mustOpen(t, path)
	if p := j.Pending(); len(p) != 1 || p[0].Key != "ok-2" {
		t.Fatalf("pending after reopen: %+v, want only ok-2", p)
	}
}

// mustOpen opens a journal of 1 MiB at path.
func mustOpen(t *testing.T, path string) *Journal {
	t.Helper()
	j, err := Open(path, Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// RealDiskDir returns a new directory under /var/tmp, removed when tb
// ends: unlike /tmp on many systems not a tmpfs, so that direct I/O and
// fsyncs there cost what they cost on a disk. Without /var/tmp, a
// temporary directory of the test.
func RealDiskDir(tb testing.TB) string {
	dir, err := os.MkdirTemp("/var/tmp", "journal-test-")
	if err != nil {
		return tb.TempDir()
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// A record is acknowledged only once every record before it in the ring
// is durable (recovery stops at the first record it does not find): a
// record written after an earlier one that is still being written waits
// for it, and fails if it fails.
func TestRecordWaitsForTheOnesBefore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "intake.journal")
	j := mustOpen(t, path)
	defer func() { j.Close() }()
	appendAsync := func(key string) <-chan error {
		done := make(chan error, 1)
		b := GetBuffer(1 << 10)
		b.Write(bytes.Repeat([]byte(key[:1]), 1000))
		go func() {
			seq, err := j.Append(key, b)
			b.Put()
			if err == nil {
				j.Release(seq)
			}
			done <- err
		}()
		return done
	}
	var flushes atomic.Int32
	j.hookFlush = func() { flushes.Add(1) }

	for _, failing := range []bool{false, true} {
		// The next record's write is held until release says how it ends.
		j.mu.Lock()
		first := j.nextSeq
		j.mu.Unlock()
		writing, release := make(chan struct{}), make(chan error)
		j.hookWrite = func(seq uint64) error {
			if seq != first {
				return nil
			}
			close(writing)
			return <-release
		}
		a := appendAsync("a-first")
		<-writing
		before := flushes.Load()
		b := appendAsync("b-second")
		testenv.WaitFor(t, "the second record written", 20*time.Second, func() bool {
			j.mu.Lock()
			defer j.mu.Unlock()
			return j.appending == 2 && len(j.writing) == 1
		})
		time.Sleep(20 * time.Millisecond) // room for a wrong acknowledgement
		select {
		case err := <-b:
			t.Fatalf("failing=%v: the second record returned (%v) while the first was being written", failing, err)
		default:
		}
		if n := flushes.Load() - before; n != 0 {
			t.Errorf("failing=%v: %d flushes while the first record was being written, want none (they could not acknowledge anything)", failing, n)
		}
		var cause error
		if failing {
			cause = errors.New("device gone")
		}
		release <- cause
		errA, errB := <-a, <-b
		if !failing {
			if errA != nil || errB != nil {
				t.Fatalf("appends: %v, %v", errA, errB)
			}
			if n := flushes.Load() - before; n != 1 {
				t.Errorf("%d flushes for both records, want 1", n)
			}
			continue
		}
		if !errors.Is(errA, cause) || !errors.Is(errB, cause) {
			t.Fatalf("with the first write failing: %v, %v; want both to fail with its error", errA, errB)
		}
	}
	j.hookWrite = nil
	// The hole is passed by a checkpoint; a reopen finds what followed.
	if err := <-appendAsync("c-refused"); err == nil {
		t.Fatal("append after a failed write succeeded before a checkpoint")
	}
	if err := j.Checkpoint(func(uint64) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := <-appendAsync("d-after"); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = mustOpen(t, path)
	if p := j.Pending(); len(p) != 1 || p[0].Key != "d-after" {
		t.Fatalf("pending after reopen: %+v, want only d-after", p)
	}
}
