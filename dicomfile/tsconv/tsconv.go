// Package tsconv re-encodes data sets between the two uncompressed Little
// Endian transfer syntaxes as they stream, for peers that accepted the
// other one: C-STORE to a destination, C-GET/C-MOVE sub-operations,
// WADO-RS in its default syntax.
package tsconv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrCannotConvert means a data set could not be re-encoded between
// Explicit and Implicit VR Little Endian (malformed, or a construct the
// uncompressed syntaxes do not allow).
var ErrCannotConvert = errors.New("tsconv: cannot re-encode data set")

const (
	undefinedLength = 0xFFFFFFFF
	tagItem         = 0xFFFEE000
	tagItemDelim    = 0xFFFEE00D
	tagSeqDelim     = 0xFFFEE0DD
	// maxBuffered bounds a defined-length sequence or item held in memory
	// while its length is recomputed; such sequences carry attributes, not
	// bulk data, so this is far above anything real.
	maxBuffered = 64 << 20
	maxDepth    = 32
)

// VRs with a 2-byte reserved field and a 4-byte length in Explicit VR
// (PS3.5 §7.1.2, Table 7.1-1).
var longVRs = []string{"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}

// ConvertLE re-encodes a data set between the two uncompressed Little
// Endian transfer syntaxes, streaming: element values are copied as they
// are (the byte order does not change), only element headers are rewritten
// (PS3.5 §7.1.2 Explicit, §7.1.3 Implicit). Defined-length sequences and
// items are held in memory to recompute their lengths, since an Explicit
// header of a long VR is 4 bytes longer than the Implicit one.
//
// toExplicit takes each VR from the data dictionary (PS3.6); private and
// unknown elements become UN, as PS3.5 §6.2.2 allows.
func ConvertLE(w io.Writer, r io.Reader, toExplicit bool) error {
	c := converter{toExplicit: toExplicit}
	end, err := c.elements(w, r, 0, true)
	if err != nil {
		return err
	}
	if end != 0 {
		return fmt.Errorf("%w: delimiter %08X outside a sequence", ErrCannotConvert, end)
	}
	return nil
}

type converter struct {
	toExplicit bool
	hdr        [12]byte
}

// readTag reads a tag; eof is set when r ended cleanly before it.
func readTag(r io.Reader) (t uint32, eof bool, err error) {
	var b [4]byte
	n, err := io.ReadFull(r, b[:])
	if n == 0 && err == io.EOF {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrCannotConvert, io.ErrUnexpectedEOF)
	}
	return uint32(binary.LittleEndian.Uint16(b[0:]))<<16 | uint32(binary.LittleEndian.Uint16(b[2:])), false, nil
}

func readU32(r io.Reader) (uint32, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrCannotConvert, io.ErrUnexpectedEOF)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

func putTag(b []byte, t uint32) {
	binary.LittleEndian.PutUint16(b[0:], uint16(t>>16))
	binary.LittleEndian.PutUint16(b[2:], uint16(t))
}

func writeDelim(w io.Writer, t uint32, length uint32) error {
	var b [8]byte
	putTag(b[:], t)
	binary.LittleEndian.PutUint32(b[4:], length)
	_, err := w.Write(b[:])
	return err
}

// elements converts data elements until r ends (top level, or the content
// of a defined-length item) or an item or sequence delimiter is read, which
// it returns unwritten.
func (c *converter) elements(w io.Writer, r io.Reader, depth int, top bool) (uint32, error) {
	for {
		t, eof, err := readTag(r)
		if err != nil {
			return 0, err
		}
		if eof {
			return 0, nil
		}
		if t>>16 == 0xFFFE {
			l, err := readU32(r)
			if err != nil {
				return 0, err
			}
			if (t == tagItemDelim || t == tagSeqDelim) && l == 0 && !top {
				return t, nil
			}
			return 0, fmt.Errorf("%w: unexpected %08X", ErrCannotConvert, t)
		}
		vr, length, err := c.readHeader(r, t)
		if err != nil {
			return 0, err
		}
		if vr == "SQ" {
			if err := c.sequence(w, r, t, length, depth+1); err != nil {
				return 0, err
			}
			continue
		}
		if length == undefinedLength {
			// Only sequences and encapsulated pixel data (compressed
			// syntaxes only) may have an undefined length, PS3.5 §7.5.
			return 0, fmt.Errorf("%w: undefined length on (%04X,%04X) %s", ErrCannotConvert, t>>16, t&0xFFFF, vr)
		}
		if err := c.writeHeader(w, t, vr, length); err != nil {
			return 0, err
		}
		if _, err := io.CopyN(w, r, int64(length)); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: %w", ErrCannotConvert, io.ErrUnexpectedEOF)
			}
			return 0, err
		}
	}
}

// readHeader reads the rest of an element header in the source encoding
// and returns the element's VR and value length.
func (c *converter) readHeader(r io.Reader, t uint32) (string, uint32, error) {
	if c.toExplicit { // source is Implicit: tag, 4-byte length
		l, err := readU32(r)
		if err != nil {
			return "", 0, err
		}
		vr := dictionaryVR(t, l)
		return vr, l, nil
	}
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrCannotConvert, io.ErrUnexpectedEOF)
	}
	vr := string(b[:2])
	if slices.Contains(longVRs, vr) {
		l, err := readU32(r)
		if err != nil {
			return "", 0, err
		}
		if vr == "UN" && l == undefinedLength {
			// A UN of undefined length is a sequence encoded Implicit VR
			// (PS3.5 §6.2.2 Note 4), which would need parsing in the
			// other encoding; not worth it for a fallback path.
			return "", 0, fmt.Errorf("%w: UN of undefined length", ErrCannotConvert)
		}
		return vr, l, nil
	}
	if vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
		return "", 0, fmt.Errorf("%w: bad VR at (%04X,%04X)", ErrCannotConvert, t>>16, t&0xFFFF)
	}
	return vr, uint32(binary.LittleEndian.Uint16(b[2:])), nil
}

// dictionaryVR picks the Explicit VR of an element read Implicit: the
// dictionary's (the first when it lists several, OW for pixel data per
// PS3.5 §A.1), UL for group lengths, LO for private creators, UN otherwise.
func dictionaryVR(t uint32, length uint32) string {
	group, elem := uint16(t>>16), uint16(t)
	switch {
	case elem == 0:
		return "UL"
	case group%2 == 1 && elem >= 0x10 && elem <= 0xFF:
		return "LO"
	case group%2 == 1:
		if length == undefinedLength {
			return "SQ"
		}
		return "UN"
	}
	info, err := tag.Find(tag.Tag{Group: group, Element: elem})
	if err != nil || len(info.VRs) == 0 {
		if length == undefinedLength {
			return "SQ"
		}
		return "UN"
	}
	if length == undefinedLength && !slices.Contains(info.VRs, "SQ") {
		return "SQ"
	}
	if slices.Contains(info.VRs, "OW") {
		return "OW"
	}
	vr := info.VRs[0]
	if len(vr) != 2 {
		return "UN"
	}
	return vr
}

// writeHeader writes an element header in the target encoding.
func (c *converter) writeHeader(w io.Writer, t uint32, vr string, length uint32) error {
	b := c.hdr[:]
	putTag(b, t)
	if !c.toExplicit {
		binary.LittleEndian.PutUint32(b[4:], length)
		_, err := w.Write(b[:8])
		return err
	}
	if !slices.Contains(longVRs, vr) && length > 0xFFFF {
		vr = "UN" // does not fit a 2-byte length
	}
	copy(b[4:], vr)
	if slices.Contains(longVRs, vr) {
		b[6], b[7] = 0, 0
		binary.LittleEndian.PutUint32(b[8:], length)
		_, err := w.Write(b[:12])
		return err
	}
	binary.LittleEndian.PutUint16(b[6:], uint16(length))
	_, err := w.Write(b[:8])
	return err
}

// sequence converts a sequence's items (PS3.5 §7.5).
func (c *converter) sequence(w io.Writer, r io.Reader, t uint32, length uint32, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: sequences nested deeper than %d", ErrCannotConvert, maxDepth)
	}
	if length == undefinedLength {
		if err := c.writeHeader(w, t, "SQ", undefinedLength); err != nil {
			return err
		}
		return c.items(w, r, depth, false)
	}
	if length > maxBuffered {
		return fmt.Errorf("%w: sequence of %d bytes", ErrCannotConvert, length)
	}
	var buf bytes.Buffer
	if err := c.items(&buf, io.LimitReader(r, int64(length)), depth, true); err != nil {
		return err
	}
	if err := c.writeHeader(w, t, "SQ", uint32(buf.Len())); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// items converts the items of a sequence: until r ends when the sequence
// has a defined length, else until the sequence delimitation item.
func (c *converter) items(w io.Writer, r io.Reader, depth int, defined bool) error {
	for {
		t, eof, err := readTag(r)
		if err != nil {
			return err
		}
		if eof {
			if defined {
				return nil
			}
			return fmt.Errorf("%w: %w", ErrCannotConvert, io.ErrUnexpectedEOF)
		}
		l, err := readU32(r)
		if err != nil {
			return err
		}
		switch {
		case t == tagSeqDelim && !defined:
			return writeDelim(w, tagSeqDelim, 0)
		case t != tagItem:
			return fmt.Errorf("%w: %08X where an item belongs", ErrCannotConvert, t)
		case l == undefinedLength:
			if err := writeDelim(w, tagItem, undefinedLength); err != nil {
				return err
			}
			end, err := c.elements(w, r, depth, false)
			if err != nil {
				return err
			}
			if end != tagItemDelim {
				return fmt.Errorf("%w: item not closed by an item delimiter", ErrCannotConvert)
			}
			if err := writeDelim(w, tagItemDelim, 0); err != nil {
				return err
			}
		default:
			if l > maxBuffered {
				return fmt.Errorf("%w: item of %d bytes", ErrCannotConvert, l)
			}
			var buf bytes.Buffer
			lr := &io.LimitedReader{R: r, N: int64(l)}
			end, err := c.elements(&buf, lr, depth, false)
			if err != nil {
				return err
			}
			if end != 0 || lr.N != 0 {
				return fmt.Errorf("%w: defined-length item with a delimiter", ErrCannotConvert)
			}
			if err := writeDelim(w, tagItem, uint32(buf.Len())); err != nil {
				return err
			}
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
		}
	}
}
