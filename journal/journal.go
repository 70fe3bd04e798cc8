// Package journal is an intake journal: a preallocated file, used as a
// ring, into which whole records (a key and its data) are written around
// the page cache and made durable by a device flush shared by every
// record written meanwhile, so that a writer can acknowledge what it
// received long before the record's real home (a file of its own, rows in
// a database) has been made durable the slow way.
//
// A record is appended, the writer does its cheap, not yet durable work
// (write the file without fsync, commit rows without waiting for the
// disk), and Releases the record. Checkpoint then makes all released
// work durable in one go (the caller's sync function: fsync the files,
// one durable commit) and moves the ring's tail past it. After a crash,
// Open finds the records after the last checkpoint; the owner replays
// them (Pending) before appending anything new, and checkpoints.
//
// On disk: two checkpoint slots (one 4 KiB block each, written in turn,
// the valid one with the higher generation wins), then the ring. A record
// is one 4 KiB block holding its header and key, followed by its data
// padded to 4 KiB. Records carry a sequence number and CRC-32Cs of
// header and key and of the data (kept as the data arrives), so that the
// end of the log is the first record that is torn, stale (from an earlier
// lap) or absent.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imaginghub/imaginghub/internal/durable"
)

// Block is the alignment of everything in the file, and of buffers
// (durable.AlignedBuffer aligns them to durable.Align, which Block is a
// multiple of).
const Block = 4096

var _ = [1]struct{}{}[Block%durable.Align] // Block must be a multiple of durable.Align

const (
	slotSize    = Block
	ringStart   = 2 * slotSize
	slotMagic   = "IHJRNL01"
	recordMagic = 0x49485243 // "IHRC"
	// A record's header: magic, sequence number, key length, data length,
	// CRC-32C of the header (this field zero) and key, CRC-32C of the data.
	recordHdr = 4 + 8 + 2 + 8 + 4 + 4
	// MaxKey is the longest key a record takes.
	MaxKey = Block - recordHdr
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTooLarge is returned by Append for a record that could never fit.
var ErrTooLarge = errors.New("journal: record larger than the journal allows")

// ErrInUse is returned by Open when another process has the journal open.
var ErrInUse = errors.New("journal: in use by another process")

// ErrFull is returned by Append when the ring stayed full for
// Options.FullTimeout.
var ErrFull = errors.New("journal: full, and no checkpoint made room")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("journal: closed")

// Options configure Open.
type Options struct {
	// Size of the file, rounded up to Block; at least 1 MiB.
	Size int64
	// FullTimeout is how long an Append waits for room in a full ring
	// (checkpoints not keeping up, or failing) before it fails with
	// ErrFull; 0: 30 s.
	FullTimeout time.Duration
	Log         *slog.Logger
}

// Journal is an open intake journal. Its methods are safe for concurrent
// use.
type Journal struct {
	path string
	f    *os.File
	size int64
	// fd writes through the page cache; dfd, if not -1, around it
	// (O_DIRECT), used while direct is set. Neither makes a write durable:
	// a flush (fdatasync) does, for every write that returned before it.
	fd          int
	dfd         int
	direct      atomic.Bool
	log         *slog.Logger
	fullTimeout time.Duration

	mu       sync.Mutex
	space    *sync.Cond // signalled when the tail moves or the journal closes
	head     int64      // where the next record goes
	nextSeq  uint64
	tail     int64 // the oldest record a checkpoint has not covered
	tailSeq  uint64
	gen      uint64           // generation of the last checkpoint slot written
	inFlight map[uint64]int64 // appended, not yet released: seq → offset
	// broken is the error of a failed record write: the ring has a hole
	// that recovery would stop at, so no record may follow it until a
	// checkpoint has passed it.
	broken  error
	closed  bool
	pending []Record // found at Open, until the first checkpoint
	// skipOwed: Open found records, so it could not skip the sequence
	// numbers (see skipSeqs); the first checkpoint that empties the ring
	// does.
	skipOwed bool

	ckMu sync.Mutex // one checkpoint at a time

	// Appends write their records at the same time and share flushes
	// (group commit). A record is durable once a flush that began after
	// its write returned has returned; it is acknowledged only once every
	// record before it in the ring is durable too, since recovery stops
	// at the first record it does not find.
	writing  map[uint64]struct{} // records being written
	durable  uint64              // every record before this one is durable
	flushing bool
	flushed  *sync.Cond // signalled when a flush ends, and when the last append leaves
	// Once failed, failedFrom is the first record that can never become
	// durable (its write or a flush failed); it and every later record
	// fail.
	failed     bool
	failedFrom uint64
	appending  int // appends under way, which Close waits for

	// Tests hold writes and flushes here.
	hookWrite func(seq uint64) error
	hookFlush func()

	// Pressure, if set, is called (without locks held) when the ring is
	// more than half full, so the owner can checkpoint early.
	Pressure func()
}

// Record is a record found after the last checkpoint at Open.
type Record struct {
	Seq  uint64
	Key  string
	off  int64
	size int64
}

// Size is the length of the record's data.
func (r Record) Size() int64 { return r.size }

// Open opens the journal at path, creating and preallocating it if it does
// not exist, and finds the records written after its last checkpoint. A
// journal of another size that holds no records is made anew at the size
// asked for; one that holds records keeps its size until they are
// checkpointed and the journal is opened again.
func Open(path string, opts Options) (*Journal, error) {
	size := (max(opts.Size, 1<<20) + Block - 1) / Block * Block
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	j := &Journal{path: path, size: size, log: log, dfd: -1, inFlight: map[uint64]int64{}, writing: map[uint64]struct{}{}, fullTimeout: opts.FullTimeout}
	if j.fullTimeout <= 0 {
		j.fullTimeout = 30 * time.Second
	}
	j.space = sync.NewCond(&j.mu)
	j.flushed = sync.NewCond(&j.mu)
	for attempt := 0; ; attempt++ {
		f, fresh, err := openFile(path, size, func(f *os.File) error {
			// A new journal has its first checkpoint before it has its
			// name.
			j.f, j.fd = f, int(f.Fd())
			j.head, j.tail = ringStart, ringStart
			j.nextSeq, j.tailSeq = 1, 1
			return j.writeSlot()
		})
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		j.f, j.fd = f, int(f.Fd())
		if fresh {
			break
		}
		if err := j.recover(); err != nil {
			f.Close()
			return nil, err
		}
		if j.size != size && len(j.pending) == 0 && attempt == 0 {
			f.Close()
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("journal: resize: %w", err)
			}
			j.size = size
			continue
		}
		if j.size != size {
			log.Warn("intake journal keeps its size until its records are checkpointed", "size", j.size, "configured", size)
		}
		if len(j.pending) > 0 {
			j.skipOwed = true
		} else {
			j.skipSeqs()
			if err := j.writeSlot(); err != nil {
				f.Close()
				return nil, err
			}
		}
		break
	}
	j.dfd = openDirect(path)
	j.direct.Store(j.dfd >= 0)
	return j, nil
}

// Path is the journal's file.
func (j *Journal) Path() string { return j.path }

// Size is the journal's size in bytes.
func (j *Journal) Size() int64 { return j.size }

// Pending lists the records found after the last checkpoint at Open, in
// the order they were written, until the first Checkpoint.
func (j *Journal) Pending() []Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.pending
}

// Read returns the data of a pending record.
func (j *Journal) Read(r Record) ([]byte, error) {
	data := make([]byte, r.size)
	if _, err := j.f.ReadAt(data, r.off+Block); err != nil {
		return nil, fmt.Errorf("journal: read record %d: %w", r.Seq, err)
	}
	return data, nil
}

// slot is a checkpoint slot's content.
type slot struct {
	gen, size, tail, tailSeq uint64
}

func (s slot) encode(b []byte) {
	copy(b, slotMagic)
	binary.LittleEndian.PutUint64(b[8:], s.gen)
	binary.LittleEndian.PutUint64(b[16:], s.size)
	binary.LittleEndian.PutUint64(b[24:], s.tail)
	binary.LittleEndian.PutUint64(b[32:], s.tailSeq)
	binary.LittleEndian.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
}

func decodeSlot(b []byte) (slot, bool) {
	if len(b) < 44 || string(b[:8]) != slotMagic || binary.LittleEndian.Uint32(b[40:]) != crc32.Checksum(b[:40], castagnoli) {
		return slot{}, false
	}
	return slot{
		gen:     binary.LittleEndian.Uint64(b[8:]),
		size:    binary.LittleEndian.Uint64(b[16:]),
		tail:    binary.LittleEndian.Uint64(b[24:]),
		tailSeq: binary.LittleEndian.Uint64(b[32:]),
	}, true
}

// writeSlot writes the checkpoint (j.tail, j.tailSeq) durably into the
// slot after the last one written. Called with mu held or before use.
func (j *Journal) writeSlot() error {
	j.gen++
	b := durable.AlignedBuffer(slotSize)[:slotSize]
	slot{gen: j.gen, size: uint64(j.size), tail: uint64(j.tail), tailSeq: j.tailSeq}.encode(b)
	err := j.writeAt([][]byte{b}, int64(j.gen%2)*slotSize)
	if err == nil {
		err = j.flush()
	}
	if err != nil {
		return fmt.Errorf("journal: write checkpoint: %w", err)
	}
	return nil
}

// recover reads the checkpoint slots and scans the ring from the tail.
func (j *Journal) recover() error {
	b := make([]byte, 2*slotSize)
	if _, err := j.f.ReadAt(b, 0); err != nil {
		return fmt.Errorf("journal: read checkpoint: %w", err)
	}
	s0, ok0 := decodeSlot(b)
	s1, ok1 := decodeSlot(b[slotSize:])
	var s slot
	switch {
	case ok0 && (!ok1 || s0.gen > s1.gen):
		s = s0
	case ok1:
		s = s1
	default:
		return fmt.Errorf("journal: %s has no valid checkpoint (not a journal, or damaged)", j.path)
	}
	fi, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	// The tail is at the file's end when a checkpoint passed a record
	// that ended there.
	if int64(s.size) != fi.Size() || s.tail < ringStart || int64(s.tail) > fi.Size() || s.tailSeq == 0 {
		return fmt.Errorf("journal: %s: checkpoint does not match the file (size %d, file %d, tail %d)", j.path, s.size, fi.Size(), s.tail)
	}
	j.size, j.gen = int64(s.size), s.gen
	j.tail, j.tailSeq = int64(s.tail), s.tailSeq
	j.head, j.nextSeq = j.tail, j.tailSeq
	hdr := make([]byte, Block)
	wrapped := false
	for {
		r, ok := j.readRecord(hdr, j.head, j.nextSeq)
		if !ok && !wrapped && j.head != ringStart {
			// The writer starts over at the ring's start when a record
			// does not fit before the end.
			if r, ok = j.readRecord(hdr, ringStart, j.nextSeq); ok {
				wrapped = true
			}
		}
		if !ok {
			break
		}
		j.pending = append(j.pending, r)
		j.head = r.off + recordLen(r.size)
		j.nextSeq++
		if r.off == ringStart && j.tail != ringStart {
			wrapped = true
		}
	}
	if len(j.pending) > 0 {
		j.log.Info("intake journal holds records after its last checkpoint", "records", len(j.pending))
	}
	return nil
}

// readRecord reads and verifies the record at off, which must carry seq.
func (j *Journal) readRecord(hdr []byte, off int64, seq uint64) (Record, bool) {
	if off+Block > j.size {
		return Record{}, false
	}
	if _, err := j.f.ReadAt(hdr, off); err != nil {
		return Record{}, false
	}
	if binary.LittleEndian.Uint32(hdr) != recordMagic || binary.LittleEndian.Uint64(hdr[4:]) != seq {
		return Record{}, false
	}
	keyLen := int(binary.LittleEndian.Uint16(hdr[12:]))
	size := int64(binary.LittleEndian.Uint64(hdr[14:]))
	if keyLen > MaxKey || size < 0 || size > j.size || off+recordLen(size) > j.size {
		return Record{}, false
	}
	if headerCRC(hdr, keyLen) != binary.LittleEndian.Uint32(hdr[22:]) {
		return Record{}, false
	}
	sum := binary.LittleEndian.Uint32(hdr[26:])
	var crc uint32
	data := make([]byte, min(size, 1<<20))
	for done := int64(0); done < size; {
		n := min(int64(len(data)), size-done)
		if _, err := j.f.ReadAt(data[:n], off+Block+done); err != nil {
			return Record{}, false
		}
		crc = crc32.Update(crc, castagnoli, data[:n])
		done += n
	}
	if crc != sum {
		return Record{}, false
	}
	return Record{Seq: seq, Key: string(hdr[recordHdr : recordHdr+keyLen]), off: off, size: size}, true
}

// headerCRC is the CRC-32C of a record's header block up to its key's
// end, with the header's own CRC field taken as zero.
func headerCRC(hdr []byte, keyLen int) uint32 {
	var zero [4]byte
	crc := crc32.Update(0, castagnoli, hdr[:22])
	crc = crc32.Update(crc, castagnoli, zero[:])
	return crc32.Update(crc, castagnoli, hdr[26:recordHdr+keyLen])
}

// recordLen is the room a record with size bytes of data takes.
func recordLen(size int64) int64 { return Block + (size+Block-1)/Block*Block }

// MaxRecord is the most data one record can hold: an eighth of the ring
// (in whole blocks), so that a record never waits for the whole journal to
// drain.
func (j *Journal) MaxRecord() int64 { return (j.size - ringStart) / 8 / Block * Block }

// Append writes a record durably and returns its sequence number. data
// must come from a Buffer (aligned, padded room after it). The record
// stays in flight, holding back checkpoints, until Release(seq): call it
// once the work the record protects is done or abandoned.
//
// Records appended at the same time are written side by side and made
// durable by the same device flush.
func (j *Journal) Append(key string, b *Buffer) (uint64, error) {
	if len(key) > MaxKey {
		return 0, fmt.Errorf("journal: key of %d bytes", len(key))
	}
	need := recordLen(int64(len(b.b)))
	if need > j.MaxRecord()+Block {
		return 0, ErrTooLarge
	}
	j.mu.Lock()
	off, err := j.reserve(need)
	if err != nil {
		j.mu.Unlock()
		return 0, err
	}
	seq := j.nextSeq
	j.nextSeq++
	j.inFlight[seq] = off
	j.writing[seq] = struct{}{}
	j.appending++
	pressure := j.usedLocked() > (j.size-ringStart)/2
	j.mu.Unlock()
	if pressure && j.Pressure != nil {
		j.Pressure()
	}

	hdr := durable.AlignedBuffer(Block)[:Block]
	encodeHeader(hdr, seq, key, int64(len(b.b)), b.crc)
	bufs := [][]byte{hdr}
	if n := need - Block; n > 0 {
		bufs = append(bufs, b.padded()[:n])
	}
	var werr error
	if j.hookWrite != nil {
		werr = j.hookWrite(seq)
	}
	if werr == nil {
		werr = j.writeAt(bufs, off)
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	defer func() {
		if j.appending--; j.appending == 0 {
			j.flushed.Broadcast() // for Close
		}
	}()
	delete(j.writing, seq)
	if werr != nil {
		j.fail(seq, fmt.Errorf("journal: write: %w", werr))
	}
	for {
		if j.failed && seq >= j.failedFrom {
			delete(j.inFlight, seq)
			return 0, j.broken
		}
		if seq < j.durable {
			return seq, nil
		}
		// A flush covers the records before the first one still being
		// written. If that is this one or an earlier one, the earlier
		// record's writer flushes once it is written.
		upTo := j.nextSeq
		for s := range j.writing {
			upTo = min(upTo, s)
		}
		if j.flushing || upTo <= seq {
			j.flushed.Wait()
			continue
		}
		j.flushing = true
		j.mu.Unlock()
		if j.hookFlush != nil {
			j.hookFlush()
		}
		ferr := j.flush()
		j.mu.Lock()
		j.flushing = false
		if ferr != nil {
			j.fail(j.durable, fmt.Errorf("journal: flush: %w", ferr))
		} else {
			j.durable = max(j.durable, upTo)
		}
		j.flushed.Broadcast()
	}
}

// fail records that the records from seq on cannot become durable: the
// ring has a hole there (or may have one anywhere after the last flush)
// that recovery would stop at, so no record may be appended until a
// checkpoint has passed it. Called with mu held.
func (j *Journal) fail(seq uint64, err error) {
	if !j.failed || seq < j.failedFrom {
		j.failed, j.failedFrom = true, seq
	}
	if j.broken == nil {
		j.broken = err
	}
	j.flushed.Broadcast() // the records waiting behind it fail
}

// encodeHeader fills a record's header block.
func encodeHeader(hdr []byte, seq uint64, key string, size int64, crc uint32) {
	binary.LittleEndian.PutUint32(hdr, recordMagic)
	binary.LittleEndian.PutUint64(hdr[4:], seq)
	binary.LittleEndian.PutUint16(hdr[12:], uint16(len(key)))
	binary.LittleEndian.PutUint64(hdr[14:], uint64(size))
	binary.LittleEndian.PutUint32(hdr[26:], crc)
	copy(hdr[recordHdr:], key)
	binary.LittleEndian.PutUint32(hdr[22:], headerCRC(hdr, len(key)))
}

// reserve finds room for need bytes at the head, wrapping to the ring's
// start when the record does not fit before the end, and waits while the
// ring is full. Called with mu held.
func (j *Journal) reserve(need int64) (int64, error) {
	var deadline time.Time
	for {
		if j.closed {
			return 0, ErrClosed
		}
		if j.broken != nil {
			return 0, fmt.Errorf("journal: unusable until the next checkpoint after %w", j.broken)
		}
		off := j.head
		if off+need > j.size {
			off = ringStart
		}
		if j.fits(off, need) {
			j.head = off + need
			return off, nil
		}
		j.mu.Unlock()
		if j.Pressure != nil {
			j.Pressure()
		}
		j.mu.Lock()
		if j.fits(j.headFor(need), need) || j.closed {
			continue
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(j.fullTimeout)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return 0, ErrFull
		}
		t := time.AfterFunc(wait, func() {
			j.mu.Lock()
			j.space.Broadcast()
			j.mu.Unlock()
		})
		j.space.Wait()
		t.Stop()
	}
}

func (j *Journal) headFor(need int64) int64 {
	if j.head+need > j.size {
		return ringStart
	}
	return j.head
}

// fits reports whether [off, off+need) is free: it lies between head and
// the end of the ring with the tail behind it, or after a wrap, before the
// tail. An empty ring (no record since the checkpoint) is free throughout.
func (j *Journal) fits(off, need int64) bool {
	if j.nextSeq == j.tailSeq {
		return true
	}
	if j.head > j.tail {
		// Live records lie in [tail, head): free is [head, size) and
		// [ringStart, tail).
		if off >= j.head {
			return off+need <= j.size
		}
		return off+need <= j.tail
	}
	// Wrapped: live records lie in [tail, size) and [ringStart, head).
	return off >= j.head && off+need <= j.tail
}

// usedLocked is how much of the ring live records (and the gap a wrap
// left) take.
func (j *Journal) usedLocked() int64 {
	if j.nextSeq == j.tailSeq {
		return 0
	}
	if j.head > j.tail {
		return j.head - j.tail
	}
	return j.size - j.tail + j.head - ringStart
}

// Release marks the record seq as done with: a checkpoint may now move
// past it.
func (j *Journal) Release(seq uint64) {
	j.mu.Lock()
	delete(j.inFlight, seq)
	j.mu.Unlock()
}

// Checkpoint makes room in the ring. It calls sync, which must make
// durable everything done so far on behalf of released records (and may
// cover more), with the sequence number of the last record the checkpoint
// covers (every one before it too), then moves the tail past every record released before the
// call, up to the oldest one still in flight. It returns sync's error and
// moves nothing if sync fails. Checkpoints do not run concurrently with
// each other; appends go on meanwhile.
func (j *Journal) Checkpoint(sync func(last uint64) error) error {
	j.ckMu.Lock()
	defer j.ckMu.Unlock()
	j.mu.Lock()
	tail, tailSeq := j.head, j.nextSeq
	for seq, off := range j.inFlight {
		if seq < tailSeq {
			tail, tailSeq = off, seq
		}
	}
	if tailSeq == j.tailSeq && len(j.pending) == 0 {
		j.mu.Unlock()
		return nil // nothing new
	}
	j.mu.Unlock()
	if err := sync(tailSeq - 1); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	oldTail, oldSeq, oldNext := j.tail, j.tailSeq, j.nextSeq
	j.tail, j.tailSeq = tail, tailSeq
	// Nothing in flight, nothing appended since: the ring is empty.
	skip := j.skipOwed && tailSeq == j.nextSeq
	if skip {
		j.skipSeqs()
	}
	if err := j.writeSlot(); err != nil {
		j.tail, j.tailSeq, j.nextSeq = oldTail, oldSeq, oldNext
		return err
	}
	if skip {
		j.skipOwed = false
	}
	if tailSeq == j.nextSeq {
		// The ring is empty: the hole is behind the tail.
		j.broken, j.failed = nil, false
	}
	j.pending = nil
	j.space.Broadcast()
	return nil
}

// skipSeqs moves the checkpoint of an empty ring to the head with the
// sequence numbers advanced past any the ring could hold. After a crash,
// the ring may hold records written after the end Open found (the rest of
// a torn write, never acknowledged) that carry the numbers the next
// records would get: a new record of the same length in the torn one's
// place would make them look like its successors. Called with mu held or
// before use; the caller writes the slot.
func (j *Journal) skipSeqs() {
	j.nextSeq += uint64((j.size - ringStart) / Block)
	j.tail, j.tailSeq = j.head, j.nextSeq
}

// Used is how many bytes of the ring records not yet checkpointed take.
func (j *Journal) Used() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.usedLocked()
}

// Close closes the file; appends waiting for room fail with ErrClosed.
// The caller checkpoints first if it can.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.space.Broadcast()
	j.mu.Unlock()
	j.ckMu.Lock() // wait for a checkpoint being written
	defer j.ckMu.Unlock()
	j.mu.Lock()
	for j.appending > 0 {
		j.flushed.Wait()
	}
	j.mu.Unlock()
	if j.dfd >= 0 {
		closeFD(j.dfd)
		j.dfd = -1
	}
	return j.f.Close()
}
