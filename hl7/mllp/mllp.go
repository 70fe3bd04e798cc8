// Package mllp implements the Minimal Lower Layer Protocol (HL7 v2
// Transport Specification: MLLP, release 1), the framing HL7 v2 messages
// travel in over TCP:
//
//	<SB> message <EB><CR>      SB = 0x0B, EB = 0x1C, CR = 0x0D
//
// The package knows nothing about HL7 content: a Reader yields the bytes
// between SB and EB, a Writer wraps bytes in a block.
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Block framing characters (MLLP release 1, §2.1 "Block format").
const (
	StartBlock     byte = 0x0B // <SB>, vertical tab
	EndBlock       byte = 0x1C // <EB>, file separator
	CarriageReturn byte = 0x0D // <CR> that follows <EB>
)

// DefaultMaxMessageSize is the limit a zero Reader.MaxMessageSize means.
const DefaultMaxMessageSize = 1 << 20

var (
	// ErrMessageTooLarge is returned when a block's content, or the junk
	// preceding a block, exceeds the reader's limit. The stream position is
	// then inside an unbounded block, so the connection should be closed.
	ErrMessageTooLarge = errors.New("mllp: message exceeds maximum size")
	// ErrInvalidMessage is returned by Writer when the content contains a
	// framing character, which would end or restart the block early on the
	// receiving side.
	ErrInvalidMessage = errors.New("mllp: message contains a block character")
)

// Reader reads MLLP blocks from an underlying stream.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader returns a Reader that accepts messages of at most max bytes
// (max <= 0 means DefaultMaxMessageSize). If r is already a *bufio.Reader
// it is used as is, so a caller may Peek on it to learn that a block began.
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &Reader{r: br, max: max}
}

// ReadMessage returns the content of the next block, in a new slice the
// caller owns.
//
// Bytes before <SB> are discarded: MLLP release 1 lets a receiver ignore
// anything outside a block, which absorbs a lost <CR> after <EB>, keep-alive
// bytes some interface engines send, and line noise. The block ends at <EB>;
// the <CR> that should follow is consumed as such junk by the next call, so
// a sender that omits it is not left waiting for a reply. An <SB> inside a
// block means the sender abandoned the previous block: its partial content
// is dropped and the new block is read (the sender never got a reply for it
// and will resend).
//
// It returns io.EOF when the stream ends between blocks,
// io.ErrUnexpectedEOF when it ends inside one, and ErrMessageTooLarge when
// the content (or the junk before <SB>) grows past the limit.
func (r *Reader) ReadMessage() ([]byte, error) {
	if err := r.skipToStart(true); err != nil {
		return nil, err
	}
	var msg []byte
	for {
		chunk, err := r.r.ReadSlice(EndBlock)
		if i := bytes.LastIndexByte(chunk, StartBlock); i >= 0 {
			msg = msg[:0]
			chunk = chunk[i+1:]
		}
		switch {
		case err == nil:
			chunk = chunk[:len(chunk)-1] // drop <EB>
			if len(msg)+len(chunk) > r.max {
				return nil, ErrMessageTooLarge
			}
			if msg == nil {
				return bytes.Clone(chunk), nil
			}
			return append(msg, chunk...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(msg)+len(chunk) > r.max {
				return nil, ErrMessageTooLarge
			}
			msg = append(msg, chunk...)
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, fmt.Errorf("mllp: read: %w", err)
		}
	}
}

// WaitForBlock blocks until the next <SB> arrives, discarding the bytes
// before it but leaving <SB> unread. A server waits with it under its idle
// timeout before reading the block under a read timeout: the <CR> left
// after the previous block does not count as the start of a message.
func (r *Reader) WaitForBlock() error { return r.skipToStart(false) }

// skipToStart discards input up to the next <SB>, and <SB> itself if
// consume is set.
func (r *Reader) skipToStart(consume bool) error {
	skipped := 0
	for {
		buf, err := r.r.Peek(1)
		if err != nil {
			return err // io.EOF between blocks stays io.EOF
		}
		n := r.r.Buffered()
		buf, _ = r.r.Peek(n)
		if i := bytes.IndexByte(buf, StartBlock); i >= 0 {
			if consume {
				i++
			}
			_, _ = r.r.Discard(i)
			if skipped+i > r.max {
				return ErrMessageTooLarge
			}
			return nil
		}
		skipped += n
		_, _ = r.r.Discard(n)
		if skipped > r.max {
			return ErrMessageTooLarge
		}
	}
}

// Writer writes MLLP blocks.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// WriteMessage writes msg as one block, in a single Write so that the whole
// block leaves in as few TCP segments as possible.
func (w *Writer) WriteMessage(msg []byte) error {
	if bytes.IndexByte(msg, StartBlock) >= 0 || bytes.IndexByte(msg, EndBlock) >= 0 {
		return ErrInvalidMessage
	}
	w.buf = append(w.buf[:0], StartBlock)
	w.buf = append(w.buf, msg...)
	w.buf = append(w.buf, EndBlock, CarriageReturn)
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("mllp: write: %w", err)
	}
	return nil
}

// Frame returns msg wrapped in an MLLP block.
func Frame(msg []byte) []byte {
	b := make([]byte, 0, len(msg)+3)
	b = append(b, StartBlock)
	b = append(b, msg...)
	return append(b, EndBlock, CarriageReturn)
}
