package journal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/imaginghub/imaginghub/journal"
)

// The on-disk layout, as the package comment describes it: two checkpoint
// slots of one block each, then the ring; a record is a header block
// followed by its data padded to a block.
const (
	block     = journal.Block
	ringStart = 2 * block
	mib       = 1 << 20
	// timeout bounds every wait for something that must happen; it is only
	// reached when the journal is broken.
	timeout = 10 * time.Second
)

// recLen is the room a record with n bytes of data takes in the ring.
func recLen(n int) int64 { return int64(block + (n+block-1)/block*block) }

// content returns n bytes that depend on n and seed, so that no two
// records of a test hold the same data.
func content(n, seed int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + uint32(n)*40503 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// rec is a record a test expects to find pending.
type rec struct {
	seq  uint64
	key  string
	data []byte
}

func openJournal(t testing.TB, path string, opts journal.Options) *journal.Journal {
	t.Helper()
	j, err := journal.Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// newJournal opens a new journal of size bytes in a temporary directory.
func newJournal(t testing.TB, size int64) *journal.Journal {
	t.Helper()
	return openJournal(t, filepath.Join(t.TempDir(), "intake.journal"), journal.Options{Size: size})
}

// reopen closes j and opens its file again with opts.
func reopen(t testing.TB, j *journal.Journal, opts journal.Options) *journal.Journal {
	t.Helper()
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openJournal(t, j.Path(), opts)
}

// fill returns a Buffer holding data, limited to its length.
func fill(t testing.TB, data []byte) *journal.Buffer {
	t.Helper()
	b := journal.GetBuffer(int64(len(data)))
	if _, err := b.Write(data); err != nil {
		t.Fatalf("Buffer.Write(%d bytes): %v", len(data), err)
	}
	return b
}

// add appends a record and returns what Pending should later report.
func add(t testing.TB, j *journal.Journal, key string, data []byte) rec {
	t.Helper()
	b := fill(t, data)
	defer b.Put()
	seq, err := j.Append(key, b)
	if err != nil {
		t.Fatalf("Append(%q, %d bytes): %v", key, len(data), err)
	}
	return rec{seq: seq, key: key, data: data}
}

func noSync(uint64) error { return nil }

func checkpoint(t testing.TB, j *journal.Journal) {
	t.Helper()
	if err := j.Checkpoint(noSync); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
}

func releaseAll(j *journal.Journal, recs []rec) {
	for _, r := range recs {
		j.Release(r.seq)
	}
}

// checkPending asserts that j's pending records are exactly want, in
// order, with their keys, sequence numbers and data.
func checkPending(t testing.TB, j *journal.Journal, want []rec) {
	t.Helper()
	got := j.Pending()
	if len(got) != len(want) {
		t.Fatalf("Pending: %d records %v, want %d %v", len(got), pendingSeqs(got), len(want), wantSeqs(want))
	}
	for i, r := range got {
		w := want[i]
		if r.Seq != w.seq || r.Key != w.key || r.Size() != int64(len(w.data)) {
			t.Fatalf("Pending[%d] = seq %d key %q size %d, want seq %d key %q size %d", i, r.Seq, r.Key, r.Size(), w.seq, w.key, len(w.data))
		}
		data, err := j.Read(r)
		if err != nil {
			t.Fatalf("Read(record %d): %v", r.Seq, err)
		}
		if !bytes.Equal(data, w.data) {
			t.Fatalf("Read(record %d %q): data differs from what was appended (%d bytes read, %d appended)", r.Seq, r.Key, len(data), len(w.data))
		}
	}
}

func pendingSeqs(rs []journal.Record) []uint64 {
	var s []uint64
	for _, r := range rs {
		s = append(s, r.Seq)
	}
	return s
}

func wantSeqs(rs []rec) []uint64 {
	var s []uint64
	for _, r := range rs {
		s = append(s, r.seq)
	}
	return s
}

// wait returns what ch delivers, failing the test after timeout.
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("%s did not happen within %v", what, timeout)
		panic("unreachable")
	}
}

// patchFile overwrites the file at path with b at off.
func patchFile(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// flipByte inverts the byte at off in the file at path.
func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// slotFields is a checkpoint slot's content: "IHJRNL01", generation, file
// size, tail offset and tail sequence number (little-endian uint64s), and
// a CRC-32C of those 40 bytes.
type slotFields struct {
	gen, size, tail, tailSeq uint64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func decodeSlot(b []byte) (slotFields, bool) {
	if string(b[:8]) != "IHJRNL01" || binary.LittleEndian.Uint32(b[40:]) != crc32.Checksum(b[:40], castagnoli) {
		return slotFields{}, false
	}
	le := binary.LittleEndian
	return slotFields{gen: le.Uint64(b[8:]), size: le.Uint64(b[16:]), tail: le.Uint64(b[24:]), tailSeq: le.Uint64(b[32:])}, true
}

func (s slotFields) encode(b []byte) {
	copy(b, "IHJRNL01")
	le := binary.LittleEndian
	le.PutUint64(b[8:], s.gen)
	le.PutUint64(b[16:], s.size)
	le.PutUint64(b[24:], s.tail)
	le.PutUint64(b[32:], s.tailSeq)
	le.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
}

// newestSlot returns the index (0 or 1) of the valid slot with the higher
// generation in the journal file's bytes.
func newestSlot(t testing.TB, file []byte) int {
	t.Helper()
	s0, ok0 := decodeSlot(file[:block])
	s1, ok1 := decodeSlot(file[block:])
	switch {
	case ok0 && (!ok1 || s0.gen > s1.gen):
		return 0
	case ok1:
		return 1
	}
	t.Fatal("no valid checkpoint slot")
	return -1
}

// recordSizes are data lengths around the block size and beyond a
// Buffer's initial capacity.
var recordSizes = []int{0, 1, 4095, 4096, 4097, 100 << 10}

// appendSizes appends one record of each of recordSizes.
func appendSizes(t testing.TB, j *journal.Journal, seed int) []rec {
	t.Helper()
	var recs []rec
	for i, n := range recordSizes {
		recs = append(recs, add(t, j, fmt.Sprintf("1.2.840.%d.%d", seed, i), content(n, seed*100+i)))
	}
	return recs
}

// TestRecordsSurviveReopen: records appended and never checkpointed are
// all pending after a reopen, in order, with their keys and data.
func TestRecordsSurviveReopen(t *testing.T) {
	j := newJournal(t, mib)
	if p := j.Pending(); len(p) != 0 {
		t.Fatalf("a new journal has %d pending records", len(p))
	}
	recs := appendSizes(t, j, 1)
	for i := 1; i < len(recs); i++ {
		if recs[i].seq != recs[i-1].seq+1 {
			t.Fatalf("sequence numbers %v are not consecutive", wantSeqs(recs))
		}
	}
	var used int64
	for _, n := range recordSizes {
		used += recLen(n)
	}
	if got := j.Used(); got != used {
		t.Errorf("Used() = %d after appending, want %d", got, used)
	}

	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, recs)
	if got := j.Used(); got != used {
		t.Errorf("Used() = %d after reopening, want %d", got, used)
	}

	// Records appended after recovery, before any checkpoint, follow the
	// recovered ones.
	more := add(t, j, "after-recovery", content(5000, 2))
	if more.seq != recs[len(recs)-1].seq+1 {
		t.Errorf("first record after recovery has seq %d, want %d", more.seq, recs[len(recs)-1].seq+1)
	}
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, append(recs, more))
}

// TestCheckpointClearsPending: once every record is released and a
// checkpoint has run, a reopened journal has nothing pending.
func TestCheckpointClearsPending(t *testing.T) {
	j := newJournal(t, mib)
	recs := appendSizes(t, j, 1)
	releaseAll(j, recs)
	syncs := 0
	if err := j.Checkpoint(func(uint64) error { syncs++; return nil }); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if syncs != 1 {
		t.Errorf("Checkpoint called sync %d times, want 1", syncs)
	}
	if got := j.Used(); got != 0 {
		t.Errorf("Used() = %d after checkpointing everything", got)
	}
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, nil)
	if got := j.Used(); got != 0 {
		t.Errorf("Used() = %d after reopening a checkpointed journal", got)
	}
}

// TestCheckpointAfterRecovery: the first checkpoint after Open moves past
// the recovered records (the owner has replayed them) and Pending is
// empty from then on.
func TestCheckpointAfterRecovery(t *testing.T) {
	j := newJournal(t, mib)
	appendSizes(t, j, 1)
	j = reopen(t, j, journal.Options{Size: mib})
	if len(j.Pending()) != len(recordSizes) {
		t.Fatalf("%d records pending, want %d", len(j.Pending()), len(recordSizes))
	}
	checkpoint(t, j)
	checkPending(t, j, nil)
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, nil)
}

// TestCheckpointSyncFailureMovesNothing: when sync fails, Checkpoint
// returns its error and the released records stay pending.
func TestCheckpointSyncFailureMovesNothing(t *testing.T) {
	j := newJournal(t, mib)
	recs := appendSizes(t, j, 1)
	releaseAll(j, recs)
	errSync := errors.New("disk on fire")
	if err := j.Checkpoint(func(uint64) error { return errSync }); !errors.Is(err, errSync) {
		t.Fatalf("Checkpoint with a failing sync returned %v, want %v", err, errSync)
	}
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, recs)
}

// TestInFlightRecordHoldsTheTail: a checkpoint does not pass a record
// that is still in flight, so it and everything appended after it are
// pending after a reopen, while the released records before it are not.
func TestInFlightRecordHoldsTheTail(t *testing.T) {
	j := newJournal(t, mib)
	a := add(t, j, "a", content(3000, 1))
	b := add(t, j, "b", content(4096, 2))
	c := add(t, j, "c", content(10, 3))
	d := add(t, j, "d", content(0, 4))
	j.Release(a.seq)
	j.Release(c.seq)
	j.Release(d.seq)
	checkpoint(t, j)
	if got, want := j.Used(), recLen(4096)+recLen(10)+recLen(0); got != want {
		t.Errorf("Used() = %d after the checkpoint, want %d (records b, c, d)", got, want)
	}
	e := add(t, j, "e", content(7000, 5))
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, []rec{b, c, d, e})
}

// TestRingWrapsAround: in a 1 MiB journal, hundreds of records appended,
// released and checkpointed as they go take the ring around several
// times; the few appended after the last checkpoint are exactly what a
// reopen finds.
func TestRingWrapsAround(t *testing.T) {
	j := newJournal(t, mib)
	ring := j.Size() - ringStart
	rng := rand.New(rand.NewPCG(4, 2))
	var written int64
	var batch []rec
	for i := range 600 {
		n := rng.IntN(20000)
		batch = append(batch, add(t, j, fmt.Sprintf("lap-%d", i), content(n, i)))
		written += recLen(n)
		if len(batch) == 4 {
			releaseAll(j, batch)
			checkpoint(t, j)
			batch = nil
		}
	}
	releaseAll(j, batch)
	checkpoint(t, j)
	if written < 4*ring {
		t.Fatalf("wrote %d bytes of records, less than four laps of the %d-byte ring", written, ring)
	}
	var last []rec
	for i := range 5 {
		last = append(last, add(t, j, fmt.Sprintf("last-%d", i), content(rng.IntN(30000), 1000+i)))
	}
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, last)
}

// TestRecoveryAllAroundTheRing reopens a 1 MiB journal after every few
// records, over several laps of the ring, so that recovery starts from
// tails all around the ring and finds records that straddle its end;
// each time, some of the records were released and checkpointed first.
func TestRecoveryAllAroundTheRing(t *testing.T) {
	j := newJournal(t, mib)
	ring := j.Size() - ringStart
	rng := rand.New(rand.NewPCG(7, 9))
	var written int64
	for round := 0; written < 3*ring; round++ {
		var recs []rec
		for i := range 1 + rng.IntN(5) {
			n := rng.IntN(3 * block)
			if rng.IntN(4) == 0 {
				n = rng.IntN(40 << 10)
			}
			recs = append(recs, add(t, j, fmt.Sprintf("round-%d-%d", round, i), content(n, round*10+i)))
			written += recLen(n)
		}
		// Release a prefix and checkpoint: those are passed over.
		k := rng.IntN(len(recs) + 1)
		releaseAll(j, recs[:k])
		checkpoint(t, j)
		j = reopen(t, j, journal.Options{Size: mib})
		checkPending(t, j, recs[k:])
		// The owner has replayed them.
		checkpoint(t, j)
	}
}

// TestCheckpointAtTheEndOfTheFile: when the last record ends exactly at
// the end of the file and a checkpoint passes it, the journal still
// opens, and the next record goes to the start of the ring.
func TestCheckpointAtTheEndOfTheFile(t *testing.T) {
	j := newJournal(t, mib)
	ring := j.Size() - ringStart
	var recs []rec
	if (ring/block)%2 == 1 {
		recs = append(recs, add(t, j, "one-block", nil))
	}
	for i := 0; int64(len(recs)) < ring/block/2+ring/block%2; i++ {
		recs = append(recs, add(t, j, fmt.Sprintf("two-blocks-%d", i), content(block, i)))
	}
	if got := j.Used(); got != ring {
		t.Fatalf("Used() = %d, want the whole ring (%d)", got, ring)
	}
	releaseAll(j, recs)
	checkpoint(t, j)
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, nil)
	next := add(t, j, "next", content(100, 1))
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, []rec{next})
}

// fullRing opens a 1 MiB journal (with fullTimeout, if not 0) and fills
// its ring with in-flight records of 15 blocks of data (size bytes), so
// that one more does not fit. Once arm is called, each Pressure call
// signals pressured.
func fullRing(t *testing.T, fullTimeout time.Duration) (j *journal.Journal, recs []rec, size int, arm func(), pressured <-chan struct{}) {
	j = openJournal(t, filepath.Join(t.TempDir(), "intake.journal"), journal.Options{Size: mib, FullTimeout: fullTimeout})
	var armed atomic.Bool
	ch := make(chan struct{}, 1)
	j.Pressure = func() {
		if armed.Load() {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	size = 15 * block
	ring := j.Size() - ringStart
	for i := 0; int64(i+1)*recLen(size) <= ring; i++ {
		recs = append(recs, add(t, j, fmt.Sprintf("full-%d", i), content(size, i)))
	}
	if free := ring - j.Used(); free >= recLen(size) {
		t.Fatalf("%d bytes of the ring are free, the setup expected less than %d", free, recLen(size))
	}
	return j, recs, size, func() { armed.Store(true) }, ch
}

type appendResult struct {
	seq uint64
	err error
}

func appendAsync(j *journal.Journal, key string, data []byte) <-chan appendResult {
	res := make(chan appendResult, 1)
	b := journal.GetBuffer(int64(len(data)))
	b.Write(data)
	go func() {
		seq, err := j.Append(key, b)
		b.Put()
		res <- appendResult{seq, err}
	}()
	return res
}

// TestAppendWaitsForRoom: with the ring full of records in flight, an
// Append waits (calling Pressure) until a record is released and a
// checkpoint moves the tail past it.
func TestAppendWaitsForRoom(t *testing.T) {
	j, recs, size, arm, pressured := fullRing(t, 0)
	arm()
	late := content(size, 99)
	res := appendAsync(j, "late", late)
	wait(t, pressured, "Pressure call from the Append waiting for room")
	select {
	case r := <-res:
		t.Fatalf("Append returned (seq %d, err %v) while the ring was full", r.seq, r.err)
	default:
	}

	// Nothing released: a checkpoint frees nothing.
	checkpoint(t, j)
	select {
	case r := <-res:
		t.Fatalf("Append returned (seq %d, err %v) after a checkpoint that freed nothing", r.seq, r.err)
	default:
	}

	j.Release(recs[0].seq)
	checkpoint(t, j)
	r := wait(t, res, "Append after a release and a checkpoint")
	if r.err != nil {
		t.Fatalf("Append: %v", r.err)
	}
	if want := recs[len(recs)-1].seq + 1; r.seq != want {
		t.Errorf("Append returned seq %d, want %d", r.seq, want)
	}
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, append(recs[1:], rec{seq: r.seq, key: "late", data: late}))
}

// TestAppendFailsWhenFullTooLong: an Append that finds no room for
// Options.FullTimeout (checkpoints failing) fails with ErrFull rather than
// waiting forever, and writes nothing.
func TestAppendFailsWhenFullTooLong(t *testing.T) {
	j, recs, size, _, _ := fullRing(t, 50*time.Millisecond)
	began := time.Now()
	r := wait(t, appendAsync(j, "late", content(size, 99)), "Append into a ring that stays full")
	if !errors.Is(r.err, journal.ErrFull) {
		t.Fatalf("Append returned (seq %d, err %v), want ErrFull", r.seq, r.err)
	}
	if d := time.Since(began); d < 50*time.Millisecond {
		t.Errorf("Append gave up after %v, before the 50ms timeout", d)
	}
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, recs)
}

// TestCloseWakesWaitingAppend: an Append waiting for room returns
// ErrClosed when the journal is closed.
func TestCloseWakesWaitingAppend(t *testing.T) {
	j, _, size, arm, pressured := fullRing(t, 0)
	arm()
	res := appendAsync(j, "late", content(size, 99))
	wait(t, pressured, "Pressure call from the Append waiting for room")
	closed := make(chan error, 1)
	go func() { closed <- j.Close() }()
	if err := wait(t, closed, "Close"); err != nil {
		t.Errorf("Close: %v", err)
	}
	if r := wait(t, res, "return of the waiting Append"); !errors.Is(r.err, journal.ErrClosed) {
		t.Errorf("waiting Append returned (seq %d, err %v), want ErrClosed", r.seq, r.err)
	}
}

// TestPressureWhenMoreThanHalfFull: Pressure is called by the appends
// that leave the ring more than half full, and by no other.
func TestPressureWhenMoreThanHalfFull(t *testing.T) {
	j := newJournal(t, mib)
	var calls atomic.Int64
	j.Pressure = func() { calls.Add(1) }
	half := (j.Size() - ringStart) / 2
	var recs []rec
	for i := 0; j.Used()+recLen(15*block) <= j.Size()-ringStart; i++ {
		before := calls.Load()
		recs = append(recs, add(t, j, fmt.Sprintf("p-%d", i), content(15*block, i)))
		called := calls.Load() > before
		if over := j.Used() > half; called != over {
			t.Errorf("after append %d: Used() = %d of %d (more than half: %v), Pressure called: %v", i, j.Used(), 2*half, over, called)
		}
	}
	if calls.Load() == 0 {
		t.Fatal("Pressure never called while filling the ring")
	}
	releaseAll(j, recs)
	checkpoint(t, j)
	before := calls.Load()
	add(t, j, "small", content(100, 1))
	if calls.Load() != before {
		t.Error("Pressure called by an append into an almost empty ring")
	}
}

// recordOffsets returns where the records of recs begin when the first
// starts at the start of the ring.
func recordOffsets(recs []rec) []int64 {
	var offs []int64
	off := int64(ringStart)
	for _, r := range recs {
		offs = append(offs, off)
		off += recLen(len(r.data))
	}
	return offs
}

// TestDamagedRecordEndsTheLog: a record whose header or data no longer
// matches its checksum, and any record after it, are not pending; the
// records before it are, and the journal goes on from there.
func TestDamagedRecordEndsTheLog(t *testing.T) {
	sizes := []int{5000, 100, 3, 9000}
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, offs []int64)
		keep   int // how many records stay pending
	}{
		{"data of the last record", func(t *testing.T, path string, offs []int64) {
			flipByte(t, path, offs[3]+block+4321)
		}, 3},
		{"last byte of the last record's data", func(t *testing.T, path string, offs []int64) {
			flipByte(t, path, offs[3]+block+8999)
		}, 3},
		{"data of a middle record", func(t *testing.T, path string, offs []int64) {
			flipByte(t, path, offs[1]+block+50)
		}, 1},
		{"key of the last record", func(t *testing.T, path string, offs []int64) {
			flipByte(t, path, offs[3]+27)
		}, 3},
		{"header of the first record", func(t *testing.T, path string, offs []int64) {
			flipByte(t, path, offs[0]+14) // the data length
		}, 0},
		{"torn tail: last record's second data block never written", func(t *testing.T, path string, offs []int64) {
			patchFile(t, path, offs[3]+2*block, make([]byte, block))
		}, 3},
		{"torn tail: last record's header never written", func(t *testing.T, path string, offs []int64) {
			patchFile(t, path, offs[3], make([]byte, block))
		}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := newJournal(t, mib)
			var recs []rec
			for i, n := range sizes {
				recs = append(recs, add(t, j, fmt.Sprintf("key-%d", i), content(n, i)))
			}
			j.Close()
			c.damage(t, j.Path(), recordOffsets(recs))
			j = openJournal(t, j.Path(), journal.Options{Size: mib})
			checkPending(t, j, recs[:c.keep])

			// The log goes on after the last good record.
			checkpoint(t, j)
			next := add(t, j, "next", content(6000, 9))
			if next.seq <= recs[len(recs)-1].seq {
				t.Errorf("next record has seq %d, not above the %d of a record written before", next.seq, recs[len(recs)-1].seq)
			}
			j = reopen(t, j, journal.Options{Size: mib})
			checkPending(t, j, []rec{next})
		})
	}
}

// TestDamagedCheckpointSlot: when the newest checkpoint slot is damaged,
// Open uses the other one (and finds the records after that older
// checkpoint); when both are, Open fails.
func TestDamagedCheckpointSlot(t *testing.T) {
	j := newJournal(t, mib)
	a := add(t, j, "a", content(2000, 1))
	b := add(t, j, "b", content(3000, 2))
	releaseAll(j, []rec{a, b})
	checkpoint(t, j)
	c := add(t, j, "c", content(4000, 3))
	j.Close()
	orig, err := os.ReadFile(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	newest := newestSlot(t, orig)

	cases := []struct {
		name    string
		slots   []int
		pending []rec
	}{
		{"newest", []int{newest}, []rec{a, b, c}},
		{"older", []int{1 - newest}, []rec{c}},
		{"both", []int{0, 1}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "intake.journal")
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.slots {
				flipByte(t, path, int64(s)*block+20) // in the size field
			}
			if len(tc.slots) == 2 {
				j, err := journal.Open(path, journal.Options{Size: mib})
				if err == nil {
					j.Close()
					t.Fatal("Open succeeded with both checkpoint slots damaged")
				}
				return
			}
			j := openJournal(t, path, journal.Options{Size: mib})
			checkPending(t, j, tc.pending)
			// The next checkpoint overwrites the damaged slot or the
			// older one; either way the journal opens again.
			checkpoint(t, j)
			d := add(t, j, "d", content(100, 4))
			j = reopen(t, j, journal.Options{Size: mib})
			checkPending(t, j, []rec{d})
		})
	}
}

// TestConcurrentAppends: 8 goroutines append at once (released now and
// then, with checkpoints running beside them); sequence numbers are
// unique, Pending lists them in increasing order, and every record not
// released is recovered with its data.
func TestConcurrentAppends(t *testing.T) {
	const writers, perWriter = 8, 30
	j := newJournal(t, 4*mib)
	var (
		mu       sync.Mutex
		all      = map[uint64]rec{}
		released = map[uint64]bool{}
		wg       sync.WaitGroup
		errs     = make(chan error, writers)
		stop     = make(chan struct{})
		ckDone   = make(chan error, 1)
	)
	go func() {
		for {
			select {
			case <-stop:
				ckDone <- nil
				return
			default:
			}
			if err := j.Checkpoint(noSync); err != nil {
				ckDone <- err
				return
			}
			runtime.Gosched()
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				key := fmt.Sprintf("w%d-%d", w, i)
				data := content((w*perWriter+i)*97%(2*block), w*1000+i)
				b := journal.GetBuffer(int64(len(data)))
				b.Write(data)
				seq, err := j.Append(key, b)
				b.Put()
				if err != nil {
					errs <- fmt.Errorf("Append(%s): %w", key, err)
					return
				}
				mu.Lock()
				if prev, dup := all[seq]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("seq %d returned for %s and %s", seq, prev.key, key)
					return
				}
				all[seq] = rec{seq: seq, key: key, data: data}
				if i%3 != 2 {
					released[seq] = true
				}
				mu.Unlock()
				if i%3 != 2 {
					j.Release(seq)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := wait(t, ckDone, "end of the checkpoint loop"); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if len(all) != writers*perWriter {
		t.Fatalf("%d records appended, want %d", len(all), writers*perWriter)
	}

	j = reopen(t, j, journal.Options{Size: 4 * mib})
	pending := j.Pending()
	seqs := pendingSeqs(pending)
	if !slices.IsSorted(seqs) {
		t.Fatalf("Pending not in sequence order: %v", seqs)
	}
	// The checkpoints pass released records up to the oldest in flight:
	// what is pending is a run of consecutive sequence numbers up to the
	// last one appended, holding every record never released.
	var maxSeq uint64
	for s := range all {
		maxSeq = max(maxSeq, s)
	}
	var want []rec
	if len(pending) > 0 {
		for s := pending[0].Seq; s <= maxSeq; s++ {
			want = append(want, all[s])
		}
	}
	for s := range all {
		if !released[s] && (len(pending) == 0 || s < pending[0].Seq) {
			t.Fatalf("record %d (%s) was never released but is not pending", s, all[s].key)
		}
	}
	checkPending(t, j, want)
}

// TestLimits: records over MaxRecord fail with ErrTooLarge and write
// nothing, a record of exactly MaxRecord is taken; keys up to MaxKey are
// taken, longer ones refused; Append after Close fails.
func TestLimits(t *testing.T) {
	j := newJournal(t, mib)
	maxRec := j.MaxRecord()
	if maxRec <= 0 || maxRec > (j.Size()-ringStart)/8 {
		t.Fatalf("MaxRecord() = %d for a ring of %d bytes", maxRec, j.Size()-ringStart)
	}

	big := journal.GetBuffer(1 << 30)
	if _, err := big.Write(content(int(maxRec)+1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append("too-large", big); !errors.Is(err, journal.ErrTooLarge) {
		t.Errorf("Append of MaxRecord()+1 bytes: err %v, want ErrTooLarge", err)
	}
	if j.Used() != 0 {
		t.Errorf("Used() = %d after a refused record", j.Used())
	}

	exact := add(t, j, "exactly-max", content(int(maxRec), 2))

	longest := add(t, j, strings.Repeat("k", journal.MaxKey), content(10, 3))
	if _, err := j.Append(strings.Repeat("k", journal.MaxKey+1), fill(t, content(10, 4))); err == nil {
		t.Error("Append took a key of MaxKey+1 bytes")
	}
	empty := add(t, j, "", content(1, 5))
	if want := exact.seq + 2; empty.seq != want {
		t.Errorf("seq after refused appends is %d, want %d (refusals take no sequence number)", empty.seq, want)
	}

	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, []rec{exact, longest, empty})

	j.Close()
	res := appendAsync(j, "after-close", content(10, 6))
	if r := wait(t, res, "return of Append after Close"); !errors.Is(r.err, journal.ErrClosed) {
		t.Errorf("Append after Close: (seq %d, err %v), want ErrClosed", r.seq, r.err)
	}
}

// TestOpenSize: Options.Size is rounded up to a block and to at least
// 1 MiB, and the file has that size.
func TestOpenSize(t *testing.T) {
	for _, c := range []struct{ opt, want int64 }{
		{0, mib},
		{100, mib},
		{mib + 1, mib + block},
		{3*mib + 2*block, 3*mib + 2*block},
	} {
		j := newJournal(t, c.opt)
		if j.Size() != c.want {
			t.Errorf("Options.Size %d: Size() = %d, want %d", c.opt, j.Size(), c.want)
		}
		fi, err := os.Stat(j.Path())
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != c.want {
			t.Errorf("Options.Size %d: file of %d bytes, want %d", c.opt, fi.Size(), c.want)
		}
		j.Close()
	}
}

// TestReopenWithAnotherSize: a journal without records is made anew at
// the size asked for; one holding records keeps its size and records
// until they are checkpointed.
func TestReopenWithAnotherSize(t *testing.T) {
	fileSize := func(t *testing.T, path string) int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	t.Run("empty", func(t *testing.T) {
		j := newJournal(t, mib)
		a := add(t, j, "a", content(100, 1))
		j.Release(a.seq)
		checkpoint(t, j)
		for _, size := range []int64{2 * mib, mib} {
			j = reopen(t, j, journal.Options{Size: size})
			if j.Size() != size || fileSize(t, j.Path()) != size {
				t.Fatalf("reopened at %d: Size() = %d, file of %d bytes", size, j.Size(), fileSize(t, j.Path()))
			}
			checkPending(t, j, nil)
		}
		b := add(t, j, "b", content(100, 2))
		j = reopen(t, j, journal.Options{Size: mib})
		checkPending(t, j, []rec{b})
	})
	t.Run("holding records", func(t *testing.T) {
		j := newJournal(t, mib)
		recs := appendSizes(t, j, 1)
		j = reopen(t, j, journal.Options{Size: 2 * mib})
		if j.Size() != mib || fileSize(t, j.Path()) != mib {
			t.Fatalf("reopened at 2 MiB with records: Size() = %d, file of %d bytes, want the old %d", j.Size(), fileSize(t, j.Path()), mib)
		}
		checkPending(t, j, recs)
		// Records appended now go into the old ring and are found.
		more := add(t, j, "more", content(5000, 2))
		j = reopen(t, j, journal.Options{Size: 2 * mib})
		if j.Size() != mib {
			t.Fatalf("Size() = %d, want the old %d", j.Size(), mib)
		}
		checkPending(t, j, append(recs, more))
		checkpoint(t, j)
		j = reopen(t, j, journal.Options{Size: 2 * mib})
		if j.Size() != 2*mib || fileSize(t, j.Path()) != 2*mib {
			t.Fatalf("reopened at 2 MiB after a checkpoint: Size() = %d, file of %d bytes", j.Size(), fileSize(t, j.Path()))
		}
		checkPending(t, j, nil)
	})
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// TestOpenInUse: a second Open of a journal that is open fails, saying
// it is in use, and leaves the first one working.
func TestOpenInUse(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the journal is locked on Linux only")
	}
	j := newJournal(t, mib)
	a := add(t, j, "a", content(100, 1))
	fds := openFDs(t)
	j2, err := journal.Open(j.Path(), journal.Options{Size: mib})
	if err == nil {
		j2.Close()
		t.Fatal("second Open of an open journal succeeded")
	}
	if !strings.Contains(err.Error(), "in use") || !errors.Is(err, journal.ErrInUse) {
		t.Errorf("second Open: %v, want ErrInUse (an error saying \"in use\")", err)
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d files open after the failed Open, %d before", n, fds)
	}
	b := add(t, j, "b", content(200, 2))
	j = reopen(t, j, journal.Options{Size: mib})
	checkPending(t, j, []rec{a, b})
}

// TestBuffer: Write beyond the limit fails with ErrTooLarge and appends
// nothing; Bytes holds everything written as the buffer grows past its
// initial capacity; a record appended from a grown buffer reads back
// whole.
func TestBuffer(t *testing.T) {
	t.Run("limit", func(t *testing.T) {
		b := journal.GetBuffer(100)
		defer b.Put()
		first := content(60, 1)
		if n, err := b.Write(first); n != 60 || err != nil {
			t.Fatalf("Write(60 bytes) = %d, %v", n, err)
		}
		if b.Room(41) || !b.Room(40) {
			t.Errorf("Room(41) = %v, Room(40) = %v with 40 bytes left", b.Room(41), b.Room(40))
		}
		if n, err := b.Write(content(41, 2)); n != 0 || !errors.Is(err, journal.ErrTooLarge) {
			t.Errorf("Write past the limit = %d, %v, want 0, ErrTooLarge", n, err)
		}
		if b.Len() != 60 || !bytes.Equal(b.Bytes(), first) {
			t.Fatalf("after a refused Write: Len() = %d, content changed: %v", b.Len(), !bytes.Equal(b.Bytes(), first))
		}
		rest := content(40, 3)
		if n, err := b.Write(rest); n != 40 || err != nil {
			t.Fatalf("Write up to the limit = %d, %v", n, err)
		}
		if !bytes.Equal(b.Bytes(), append(slices.Clone(first), rest...)) {
			t.Error("Bytes() differs from what was written")
		}
		if _, err := b.Write([]byte{0}); !errors.Is(err, journal.ErrTooLarge) {
			t.Errorf("Write of one byte into a full buffer: %v, want ErrTooLarge", err)
		}
	})
	t.Run("growth", func(t *testing.T) {
		b := journal.GetBuffer(1 << 20)
		var want []byte
		for i := 0; len(want) < 300<<10; i++ {
			p := content(7001+i*13, i)
			if _, err := b.Write(p); err != nil {
				t.Fatalf("Write %d: %v", i, err)
			}
			want = append(want, p...)
			if b.Len() != len(want) || !bytes.Equal(b.Bytes(), want) {
				t.Fatalf("after %d writes (%d bytes): Bytes() differs from what was written", i+1, len(want))
			}
		}
		b.Put()
		b = journal.GetBuffer(10)
		if b.Len() != 0 {
			t.Errorf("GetBuffer after Put returned a buffer holding %d bytes", b.Len())
		}
		b.Put()
	})
	t.Run("ReadFrom", func(t *testing.T) {
		j := newJournal(t, mib)
		data := content(100<<10+17, 9)
		// The whole stream fits: read to its end, in the reader's own
		// odd-sized pieces, after a Write.
		b := journal.GetBuffer(j.MaxRecord())
		b.Write(data[:100])
		n, err := b.ReadFrom(iotest.HalfReader(bytes.NewReader(data[100:])))
		if n != int64(len(data)-100) || err != nil {
			t.Fatalf("ReadFrom of %d bytes = %d, %v", len(data)-100, n, err)
		}
		if !bytes.Equal(b.Bytes(), data) {
			t.Fatal("Bytes() differs from what was read")
		}
		seq, err := j.Append("read", b) // its checksum was kept as it read
		b.Put()
		if err != nil {
			t.Fatal(err)
		}
		j = reopen(t, j, journal.Options{Size: mib})
		checkPending(t, j, []rec{{seq, "read", data}})

		// The stream is longer than the limit: ReadFrom stops there, and
		// the reader holds the rest.
		b = journal.GetBuffer(60 << 10)
		defer b.Put()
		r := bytes.NewReader(data)
		n, err = b.ReadFrom(r)
		if n != 60<<10 || !errors.Is(err, journal.ErrTooLarge) {
			t.Fatalf("ReadFrom past the limit = %d, %v, want %d, ErrTooLarge", n, err, 60<<10)
		}
		rest, _ := io.ReadAll(r)
		if !bytes.Equal(append(slices.Clone(b.Bytes()), rest...), data) {
			t.Error("what the buffer holds and what the reader kept are not the stream")
		}
		// A reader's error is returned with what was read before it.
		b2 := journal.GetBuffer(1 << 20)
		defer b2.Put()
		n, err = b2.ReadFrom(iotest.TimeoutReader(bytes.NewReader(data)))
		if !errors.Is(err, iotest.ErrTimeout) || n == 0 || !bytes.Equal(b2.Bytes(), data[:n]) {
			t.Errorf("ReadFrom of a failing reader = %d, %v; want the bytes before the error and ErrTimeout", n, err)
		}
	})
	t.Run("grown buffer as a record", func(t *testing.T) {
		j := newJournal(t, mib)
		b := journal.GetBuffer(j.MaxRecord())
		var want []byte
		for i := range 30 {
			p := content(3000+i, i)
			b.Write(p)
			want = append(want, p...)
		}
		seq, err := j.Append("grown", b)
		b.Put()
		if err != nil {
			t.Fatal(err)
		}
		j = reopen(t, j, journal.Options{Size: mib})
		checkPending(t, j, []rec{{seq, "grown", want}})
	})
}

// TestTornWriteLeavesNoStaleRecords: when a crash tears a record but the
// records written after it in the same write reached the disk, those
// records (never acknowledged) must not come back: not when a new record
// of the same length takes the torn one's place, not after a checkpoint
// passes that new record.
func TestTornWriteLeavesNoStaleRecords(t *testing.T) {
	const size = 3000 // two blocks: every record takes the same room
	for _, torn := range []int{0, 1} {
		t.Run(fmt.Sprintf("record %d of 4 torn", torn+1), func(t *testing.T) {
			j := newJournal(t, mib)
			var recs []rec
			for i := range 4 {
				recs = append(recs, add(t, j, fmt.Sprintf("old-%d", i), content(size, i)))
			}
			j.Close()
			patchFile(t, j.Path(), recordOffsets(recs)[torn], make([]byte, block))
			j = openJournal(t, j.Path(), journal.Options{Size: mib})
			checkPending(t, j, recs[:torn])
			checkpoint(t, j) // the owner has replayed what was pending

			fresh := add(t, j, "new", content(size, 10))
			if fresh.seq <= recs[3].seq {
				t.Errorf("new record has seq %d, not above the %d of a record written before the crash", fresh.seq, recs[3].seq)
			}
			j = reopen(t, j, journal.Options{Size: mib})
			checkPending(t, j, []rec{fresh})

			checkpoint(t, j)
			j = reopen(t, j, journal.Options{Size: mib})
			checkPending(t, j, nil)
		})
	}
}

// journalFile runs build on a new 1 MiB journal, closes it and returns
// the file's bytes.
func journalFile(tb testing.TB, build func(j *journal.Journal)) []byte {
	tb.Helper()
	j := newJournal(tb, mib)
	build(j)
	j.Close()
	b, err := os.ReadFile(j.Path())
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// shrink returns the first size bytes of a journal file whose records and
// tail lie there, with its checkpoint slots saying so.
func shrink(file []byte, size int) []byte {
	b := slices.Clone(file[:size])
	for i := range 2 {
		if s, ok := decodeSlot(b[i*block:]); ok {
			s.size = uint64(size)
			s.encode(b[i*block:])
		}
	}
	return b
}

// withSlot returns file with both checkpoint slots replaced by s.
func withSlot(file []byte, s slotFields) []byte {
	b := slices.Clone(file)
	clear(b[:ringStart])
	s.encode(b)
	s.encode(b[block:])
	return b
}

// wrappedJournal returns a small journal file whose pending records run
// from near the end of its ring on at its start. A 1 MiB journal is
// brought there (records released and checkpointed until the ring's end
// is near, then records left pending across it), and its pending records
// are moved into a smaller file: records do not depend on where they lie.
// The result holds the records written after the wrap from the ring's
// start, a free block, the tail with the records written before the wrap,
// and a last free block too small for the record that wrapped.
func wrappedJournal(tb testing.TB) []byte {
	var (
		head    = int64(ringStart)
		offs    []int64
		sizes   []int
		firstSq uint64
	)
	place := func(r rec) {
		need := recLen(len(r.data))
		if head+need > mib {
			head = ringStart
		}
		offs, sizes = append(offs, head), append(sizes, len(r.data))
		head += need
	}
	const pending = 4
	file := journalFile(tb, func(j *journal.Journal) {
		for i := range 42 {
			r := add(tb, j, "lap", content(20000, i))
			place(r)
			j.Release(r.seq)
			checkpoint(tb, j)
		}
		for i := range pending {
			r := add(tb, j, fmt.Sprintf("wrapped-%d", i), sparse(100+i, 100+i))
			place(r)
			if i == 0 {
				firstSq = r.seq
			}
		}
	})
	offs, sizes = offs[len(offs)-pending:], sizes[len(sizes)-pending:]
	var pre, post []byte
	for i, off := range offs {
		raw := file[off : off+recLen(sizes[i])]
		if i > 0 && off < offs[i-1] || len(post) > 0 {
			post = append(post, raw...)
		} else {
			pre = append(pre, raw...)
		}
	}
	if len(pre) == 0 || len(post) == 0 {
		tb.Fatalf("the pending records do not straddle the end of the ring (%d bytes before, %d after)", len(pre), len(post))
	}
	tail := ringStart + len(post) + block
	small := make([]byte, tail+len(pre)+block)
	copy(small[ringStart:], post)
	copy(small[tail:], pre)
	return withSlot(small, slotFields{gen: 9, size: uint64(len(small)), tail: uint64(tail), tailSeq: firstSq})
}

// pendingIn opens a copy of a journal file and returns how many records
// it holds after its last checkpoint.
func pendingIn(tb testing.TB, file []byte) int {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "intake.journal")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		tb.Fatal(err)
	}
	j := openJournal(tb, path, journal.Options{})
	defer j.Close()
	return len(j.Pending())
}

// fuzzChunk is how many bytes of each block of a journal file a compact
// fuzz input holds: enough for a checkpoint slot (44 bytes) and for a
// record's header (30 bytes) with a short key.
const fuzzChunk = 64

// expandInput turns a fuzz input into a journal file. An input that
// starts with 0 is the file itself after that byte. Any other is compact:
// the bytes of a journal that matter are at the start of its blocks, so
// each chunk of fuzzChunk bytes after the first byte becomes the start of
// a block whose rest is zero, and a last, shorter chunk is the file's last
// bytes. Compact inputs are a sixty-fourth of their file's size, which
// keeps the fuzzer fast at mutating them and at minimizing the new ones
// (one pass over each byte). ok is false for a file over 4 MiB.
func expandInput(in []byte) (file []byte, ok bool) {
	if len(in) == 0 {
		return nil, true
	}
	if in[0] == 0 {
		return in[1:], len(in) <= 4*mib
	}
	in = in[1:]
	blocks := len(in) / fuzzChunk
	if blocks > 4*mib/block {
		return nil, false
	}
	file = make([]byte, blocks*block+len(in)%fuzzChunk)
	for i := range blocks {
		copy(file[i*block:], in[i*fuzzChunk:(i+1)*fuzzChunk])
	}
	copy(file[blocks*block:], in[blocks*fuzzChunk:])
	return file, true
}

// compactInput is the compact fuzz input of a journal file whose blocks
// hold nothing that counts beyond their first fuzzChunk bytes (record data
// from sparse; what follows a record's data in its last block does not
// count), and whose length is whole blocks plus at most fuzzChunk bytes.
func compactInput(tb testing.TB, file []byte) []byte {
	tb.Helper()
	if rest := len(file) % block; rest > fuzzChunk {
		tb.Fatalf("a file of %d bytes has no compact form", len(file))
	}
	in := []byte{1}
	for off := 0; off < len(file); off += block {
		in = append(in, file[off:min(off+fuzzChunk, len(file))]...)
	}
	return in
}

// sparse returns n bytes of record data that a compact fuzz input holds
// whole: content in the first fuzzChunk bytes of each block, zeros after.
func sparse(n, seed int) []byte {
	b := content(n, seed)
	for i := range b {
		if i%block >= fuzzChunk {
			b[i] = 0
		}
	}
	return b
}

// FuzzOpen writes arbitrary bytes as a journal file (see expandInput).
// Open must fail cleanly or find records that read back with their stated
// size, with consecutive sequence numbers; a journal it opens must then
// take a checkpoint and a new record that the next Open finds.
//
// The seeds are journals written by the package, made small (records
// moved or the file cut short, with checkpoints rewritten to say so), and
// damaged variants of them.
func FuzzOpen(f *testing.F) {
	sizes := []int{0, 1, 4097, 100}
	appendSome := func(j *journal.Journal) {
		for i, n := range sizes {
			add(f, j, fmt.Sprintf("k%d", i), sparse(n, i))
		}
	}
	// Room for the records and one free block.
	room := ringStart + block
	for _, n := range sizes {
		room += int(recLen(n))
	}
	// seed adds the compact input of a journal file, checking first that
	// the file holds the number of pending records its construction meant.
	seed := func(file []byte, pending int) {
		in := compactInput(f, file)
		back, _ := expandInput(in)
		if n := pendingIn(f, back); n != pending {
			f.Fatalf("a seed journal holds %d pending records, want %d", n, pending)
		}
		f.Add(in)
	}
	small := shrink(journalFile(f, appendSome), room)
	seed(small, 4)
	seed(shrink(journalFile(f, func(*journal.Journal) {}), 3*block), 0)
	seed(shrink(journalFile(f, func(j *journal.Journal) {
		r := add(f, j, "released", sparse(3000, 1))
		j.Release(r.seq)
		checkpoint(f, j)
		appendSome(j)
	}), room+int(recLen(3000))), 4)
	seed(wrappedJournal(f), 4)

	damaged := slices.Clone(small)
	damaged[ringStart+4*block+10] ^= 1 // data of the third record
	seed(damaged, 2)
	s, _ := decodeSlot(small[newestSlot(f, small)*block:])
	for i := range 2 {
		// One checkpoint slot damaged: the other is used.
		damaged = withSlot(small, s)
		damaged[i*block+20] ^= 1
		seed(damaged, 4)
	}
	for _, bad := range [][]byte{
		slices.Clone(small[:ringStart]),   // both slots, no ring
		small[:len(small)-block],          // a file shorter than its checkpoint says
		append(slices.Clone(small), 0),    // and longer
		small[:ringStart-block+fuzzChunk], // not even the slots
	} {
		f.Add(compactInput(f, bad))
	}
	for _, slot := range []slotFields{
		{gen: 5, size: uint64(len(small)), tail: uint64(len(small)), tailSeq: s.tailSeq},
		{gen: 5, size: uint64(len(small)), tail: ringStart + 1, tailSeq: s.tailSeq},
		{gen: 5, size: uint64(len(small)), tail: ringStart, tailSeq: 0},
		{gen: 5, size: uint64(len(small)) + 1, tail: ringStart, tailSeq: s.tailSeq},
	} {
		f.Add(compactInput(f, withSlot(small, slot)))
	}
	f.Add(compactInput(f, withSlot(small[:ringStart+fuzzChunk], slotFields{gen: 5, size: ringStart + fuzzChunk, tail: ringStart, tailSeq: 1})))
	f.Add(compactInput(f, withSlot(small[:ringStart], slotFields{gen: 5, size: ringStart, tail: ringStart, tailSeq: 1})))
	f.Add([]byte{})
	f.Add(append([]byte{0}, "IHJRNL01 not a journal"...))
	f.Add(append([]byte{0}, small[:100]...))

	// The inputs' files go to a tmpfs where there is one: what is fuzzed
	// is recovery from the file's bytes, and the fsyncs of a disk would
	// slow down each input, and the minimization of each new one, a
	// hundredfold.
	dir, err := os.MkdirTemp("/dev/shm", "journal-fuzz-")
	if err != nil {
		dir = f.TempDir()
	} else {
		f.Cleanup(func() { os.RemoveAll(dir) })
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		file, ok := expandInput(in)
		if !ok {
			t.Skip("larger than the seeds need")
		}
		d, err := os.MkdirTemp(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(d)
		path := filepath.Join(d, "intake.journal")
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := journal.Open(path, journal.Options{})
		if err != nil {
			return
		}
		defer j.Close()
		recs := j.Pending()
		for i, r := range recs {
			if i > 0 && r.Seq != recs[i-1].Seq+1 {
				t.Fatalf("Pending sequence numbers not consecutive: %v", pendingSeqs(recs))
			}
			if len(r.Key) > journal.MaxKey || r.Size() < 0 || r.Size() > j.Size()-ringStart {
				t.Fatalf("record %d: key of %d bytes, size %d in a %d-byte journal", r.Seq, len(r.Key), r.Size(), j.Size())
			}
			data, err := j.Read(r)
			if err != nil {
				t.Fatalf("Read(record %d of %d bytes): %v", r.Seq, r.Size(), err)
			}
			if int64(len(data)) != r.Size() {
				t.Fatalf("Read(record %d) returned %d bytes, Size() = %d", r.Seq, len(data), r.Size())
			}
		}

		// The journal opened is usable: a checkpoint passes what was
		// found, and a new record is found by the next Open.
		if err := j.Checkpoint(noSync); err != nil {
			t.Fatalf("Checkpoint after Open: %v", err)
		}
		b := journal.GetBuffer(0)
		seq, err := j.Append("after", b)
		b.Put()
		if err != nil {
			t.Fatalf("Append after Open: %v", err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		j2, err := journal.Open(path, journal.Options{})
		if err != nil {
			t.Fatalf("Open after a checkpoint and an append: %v", err)
		}
		defer j2.Close()
		if p := j2.Pending(); len(p) != 1 || p[0].Seq != seq || p[0].Key != "after" || p[0].Size() != 0 {
			t.Fatalf("after a checkpoint and an append (seq %d): Pending %+v", seq, p)
		}
	})
}
