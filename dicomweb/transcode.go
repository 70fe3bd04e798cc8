package dicomweb

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/workflow/coerce"
)

// writeInstance writes a stored Part 10 file to w in transfer syntax ts:
// as stored, or, for an Implicit VR Little Endian file asked for in
// Explicit VR Little Endian (the WADO-RS default, PS3.18 §8.7.3.5.2),
// re-encoded element by element as it streams. Non-zero v are the
// reconciled values of the study, put in place of the stored ones as the
// data set streams (package workflow/coerce); the file is not changed.
func writeInstance(w io.Writer, b blob.Reader, ts string, v coerce.Values) error {
	br := bufio.NewReaderSize(io.NewSectionReader(b, 0, b.Size()), 64<<10)
	meta, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		return err
	}
	if !v.Zero() && coerce.Supported(meta.TransferSyntaxUID) {
		br = bufio.NewReaderSize(coerce.NewReader(br, meta.TransferSyntaxUID, v), 64<<10)
		if meta.TransferSyntaxUID == ts {
			if _, err := io.Copy(w, io.NewSectionReader(b, 0, meta.DataSetOffset())); err != nil {
				return err
			}
			_, err := io.Copy(w, br)
			return err
		}
	}
	if meta.TransferSyntaxUID == ts {
		if _, err := b.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(w, b)
		return err
	}
	if meta.TransferSyntaxUID != dicomfile.ImplicitVRLittleEndian || ts != dicomfile.ExplicitVRLittleEndian {
		return fmt.Errorf("dicomweb: cannot transcode %s to %s", meta.TransferSyntaxUID, ts)
	}
	meta.TransferSyntaxUID = ts
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := dicomfile.WriteFileMeta(bw, meta); err != nil {
		return err
	}
	t := &transcoder{r: br, w: bw}
	if err := t.elements(-1, 0); err != nil {
		return err
	}
	return bw.Flush()
}

// canTranscode reports whether writeInstance can turn from into to.
func canTranscode(from, to string) bool {
	return from == to || from == dicomfile.ImplicitVRLittleEndian && to == dicomfile.ExplicitVRLittleEndian
}

// transcoder re-encodes an Implicit VR Little Endian data set as Explicit
// VR Little Endian (PS3.5 §7.1.2, §7.1.3). VRs come from the data
// dictionary; a value too long for a 16-bit length VR is written as UN.
// Sequences and items are written with undefined length, since their
// lengths change; group lengths, which would be wrong, are dropped.
type transcoder struct {
	r   *bufio.Reader
	w   *bufio.Writer
	off int64
	hdr [12]byte
}

func (t *transcoder) read(n int) ([]byte, error) {
	if _, err := io.ReadFull(t.r, t.hdr[:n]); err != nil {
		return nil, err
	}
	t.off += int64(n)
	return t.hdr[:n], nil
}

// elements copies elements until end (an offset; -1: to the end of input
// or an Item Delimitation Item).
func (t *transcoder) elements(end int64, depth int) error {
	if depth > 32 {
		return fmt.Errorf("%w: sequences nested too deep", dicomfile.ErrMalformed)
	}
	le := binary.LittleEndian
	for end < 0 || t.off < end {
		h, err := t.read(8)
		if err == io.EOF && end < 0 && depth == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: truncated element: %v", dicomfile.ErrMalformed, err)
		}
		tag := dicomfile.NewTag(le.Uint16(h), le.Uint16(h[2:]))
		length := le.Uint32(h[4:])
		if tag == dicomfile.TagItemDelimitationItem {
			return nil
		}
		if tag.Group() == 0xFFFE {
			return fmt.Errorf("%w: %v outside an item", dicomfile.ErrMalformed, tag)
		}
		vr := dicomjson.DictionaryVR(tag)
		switch tag {
		case dicomfile.TagPixelData:
			vr = "OW" // PS3.5 §A.1
		case dicomfile.TagFloatPixelData:
			vr = "OF"
		case dicomfile.TagDoubleFloatPixelData:
			vr = "OD"
		}
		if vr == "SQ" || length == dicomfile.UndefinedLength {
			if err := t.sequence(tag, length, depth); err != nil {
				return err
			}
			continue
		}
		if tag.Element() == 0 {
			if _, err := t.r.Discard(int(length)); err != nil {
				return fmt.Errorf("%w: truncated group length", dicomfile.ErrMalformed)
			}
			t.off += int64(length)
			continue
		}
		if !longVR(vr) && length > 0xFFFF {
			vr = "UN"
		}
		t.header(tag, vr, length)
		if _, err := io.CopyN(t.w, t.r, int64(length)); err != nil {
			return fmt.Errorf("%w: truncated value of %v", dicomfile.ErrMalformed, tag)
		}
		t.off += int64(length)
	}
	return nil
}

func (t *transcoder) header(tag dicomfile.Tag, vr string, length uint32) {
	le := binary.LittleEndian
	var b [12]byte
	le.PutUint16(b[:], tag.Group())
	le.PutUint16(b[2:], tag.Element())
	copy(b[4:], vr)
	if longVR(vr) {
		le.PutUint32(b[8:], length)
		t.w.Write(b[:12])
		return
	}
	le.PutUint16(b[6:], uint16(length))
	t.w.Write(b[:8])
}

// delimiter writes the tag of an item or delimiter; the caller writes
// its length.
func (t *transcoder) delimiter(tag dicomfile.Tag) {
	var b [4]byte
	binary.LittleEndian.PutUint16(b[:], tag.Group())
	binary.LittleEndian.PutUint16(b[2:], tag.Element())
	t.w.Write(b[:])
}

// sequence copies a sequence's items (PS3.5 §7.5).
func (t *transcoder) sequence(tag dicomfile.Tag, length uint32, depth int) error {
	le := binary.LittleEndian
	t.header(tag, "SQ", dicomfile.UndefinedLength)
	end := int64(-1)
	if length != dicomfile.UndefinedLength {
		end = t.off + int64(length)
	}
	for end < 0 || t.off < end {
		h, err := t.read(8)
		if err != nil {
			return fmt.Errorf("%w: truncated sequence %v", dicomfile.ErrMalformed, tag)
		}
		it := dicomfile.NewTag(le.Uint16(h), le.Uint16(h[2:]))
		l := le.Uint32(h[4:])
		if it == dicomfile.TagSequenceDelimitationItem {
			break
		}
		if it != dicomfile.TagItem {
			return fmt.Errorf("%w: %v in sequence %v", dicomfile.ErrMalformed, it, tag)
		}
		t.delimiter(dicomfile.TagItem)
		t.w.Write([]byte{0xFF, 0xFF, 0xFF, 0xFF})
		itemEnd := int64(-1)
		if l != dicomfile.UndefinedLength {
			itemEnd = t.off + int64(l)
		}
		if err := t.elements(itemEnd, depth+1); err != nil {
			return err
		}
		t.delimiter(dicomfile.TagItemDelimitationItem)
		t.w.Write([]byte{0, 0, 0, 0})
	}
	t.delimiter(dicomfile.TagSequenceDelimitationItem)
	t.w.Write([]byte{0, 0, 0, 0})
	return nil
}

func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}
