package journal

import (
	"hash/crc32"
	"io"
	"sync"

	"github.com/imaginghub/imaginghub/internal/durable"
)

// Buffer collects a record's data in memory laid out for the journal's
// direct writes: aligned to Block, with room up to the next Block. Its
// capacity grows as data arrives, up to the limit given to GetBuffer.
type Buffer struct {
	b     []byte
	limit int
	crc   uint32 // CRC-32C of b, kept as it is written (off Append's path)
}

var buffers = sync.Pool{New: func() any { return &Buffer{} }}

// initialBuffer is a new Buffer's capacity; maxPooled the largest one
// kept for reuse.
const (
	initialBuffer = 64 << 10
	maxPooled     = 2 << 20
)

// GetBuffer returns an empty Buffer that takes up to limit bytes.
func GetBuffer(limit int64) *Buffer {
	b := buffers.Get().(*Buffer)
	b.b = b.b[:0]
	b.limit = int(limit)
	b.crc = 0
	return b
}

// Put returns b to the pool; b must not be used after.
func (b *Buffer) Put() {
	if cap(b.b) > maxPooled {
		b.b = nil // a large instance's buffer is not kept for the next
	}
	buffers.Put(b)
}

// Len is how many bytes b holds.
func (b *Buffer) Len() int { return len(b.b) }

// Bytes is b's content, valid until the next Write or Put.
func (b *Buffer) Bytes() []byte { return b.b }

// Room reports whether n more bytes fit under the limit.
func (b *Buffer) Room(n int) bool { return len(b.b)+n <= b.limit }

// Write appends p; it fails with ErrTooLarge, appending nothing, past the
// limit.
func (b *Buffer) Write(p []byte) (int, error) {
	if !b.Room(len(p)) {
		return 0, ErrTooLarge
	}
	if need := len(b.b) + len(p); need > cap(b.b) {
		b.grow(max(2*cap(b.b), initialBuffer, need))
	}
	b.b = append(b.b, p...)
	b.crc = crc32.Update(b.crc, castagnoli, p)
	return len(p), nil
}

// ReadFrom reads from r straight into b until r ends (io.EOF, not
// returned) or b reaches its limit: then it returns ErrTooLarge with what
// it read so far kept, and r positioned after it, so that the caller can
// move b's content elsewhere and go on reading from r there (a stream
// that ends exactly at the limit is reported so too: b cannot tell without
// reading past it). It reads into b's own memory, with no buffer between.
func (b *Buffer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if len(b.b) == b.limit {
			return total, ErrTooLarge
		}
		if len(b.b) == cap(b.b) {
			b.grow(min(max(2*cap(b.b), initialBuffer), b.limit))
		}
		spare := b.b[len(b.b):min(cap(b.b), b.limit)]
		n, err := r.Read(spare)
		if n > 0 {
			b.crc = crc32.Update(b.crc, castagnoli, spare[:n])
			b.b = b.b[:len(b.b)+n]
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// padded is b's content extended to the next Block (the padding is
// whatever the memory holds).
func (b *Buffer) padded() []byte {
	n := (len(b.b) + Block - 1) / Block * Block
	return b.b[:n]
}

// grow makes b's capacity at least c, rounded up to Block.
func (b *Buffer) grow(c int) {
	c = (c + Block - 1) / Block * Block
	if c <= cap(b.b) {
		return
	}
	nb := durable.AlignedBuffer(c)[:len(b.b)]
	copy(nb, b.b)
	b.b = nb
}
