package dicomfile

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Header holds the attributes an archive indexes (PS3.4 §C.6 unique and
// required keys and the QIDO-RS return keys of PS3.18 §10.6) read from a
// data set up to its pixel data. Strings are trimmed of padding; text in
// person names and LO/SH/ST/LT/UC/UT values is converted to UTF-8 as
// described on ParseHeader. Absent attributes are empty or zero.
type Header struct {
	TransferSyntaxUID    string
	SpecificCharacterSet string // (0008,0005), values joined by '\'

	// Patient
	PatientID         string // (0010,0020)
	IssuerOfPatientID string // (0010,0021)
	PatientName       string // (0010,0010), PN as encoded: "Family^Given^Middle^Prefix^Suffix", groups separated by '='
	PatientBirthDate  string // (0010,0030)
	PatientSex        string // (0010,0040)

	// Study
	StudyInstanceUID string // (0020,000D)
	StudyDate        string // (0008,0020)
	StudyTime        string // (0008,0030)
	AccessionNumber  string // (0008,0050)
	// IssuerOfAccessionNumber is the Local Namespace Entity ID (0040,0031)
	// of the first item of Issuer of Accession Number Sequence (0008,0051).
	IssuerOfAccessionNumber string
	ReferringPhysicianName  string // (0008,0090)
	StudyDescription        string // (0008,1030)
	StudyID                 string // (0020,0010)

	// Series
	SeriesInstanceUID               string // (0020,000E)
	Modality                        string // (0008,0060)
	SeriesNumber                    string // (0020,0011), IS
	SeriesDescription               string // (0008,103E)
	BodyPartExamined                string // (0018,0015)
	Laterality                      string // (0020,0060)
	SeriesDate                      string // (0008,0021)
	SeriesTime                      string // (0008,0031)
	PerformedProcedureStepStartDate string // (0040,0244)
	PerformedProcedureStepStartTime string // (0040,0245)
	StationName                     string // (0008,1010)
	InstitutionName                 string // (0008,0080)
	Manufacturer                    string // (0008,0070)

	// Instance
	SOPClassUID    string // (0008,0016)
	SOPInstanceUID string // (0008,0018)
	InstanceNumber string // (0020,0013), IS
	NumberOfFrames int    // (0028,0008); 0 when absent
	Rows           uint16 // (0028,0010)
	Columns        uint16 // (0028,0011)
	BitsAllocated  uint16 // (0028,0100)
	ContentDate    string // (0008,0023)
	ContentTime    string // (0008,0033)

	// PixelData describes the pixel data element at which parsing stopped:
	// its tag (Pixel Data, Float Pixel Data or Double Float Pixel Data),
	// VR, length (UndefinedLength when encapsulated) and the offset of its
	// value from the start of the data set. Its Value is always nil. The
	// Tag is zero when the data set has no pixel data.
	PixelData Element

	// Elements lists every top-level element before the pixel data, in
	// stream order, when ParseOptions.KeepElements is set; nil otherwise.
	Elements []Element
}

// Element is one top-level data element as encoded, kept so that a later
// stage can render DICOM JSON (PS3.18 §F.2) without parsing the file again.
type Element struct {
	Tag Tag
	// VR is the VR from the stream in Explicit VR syntaxes and from the
	// data dictionary in Implicit VR Little Endian ("UN" when unknown).
	VR string
	// Length is the value length as encoded, UndefinedLength for a
	// sequence ended by a delimiter.
	Length uint32
	// Offset is where the value starts, counted from the first byte of the
	// data set (after inflation for the deflated syntax).
	Offset int64
	// Value holds the raw value bytes in the data set's byte order; for a
	// sequence, the encoded items including delimiters. It is nil when the
	// value is longer than ParseOptions.BulkDataThreshold: read it from
	// the file at Offset if needed (a BulkDataURI in DICOM JSON terms).
	Value []byte
}

// ParseOptions tunes ParseHeaderWithOptions. The zero value parses only
// the indexed attributes.
type ParseOptions struct {
	// KeepElements fills Header.Elements.
	KeepElements bool
	// BulkDataThreshold is the largest value kept in an Element;
	// 0 means DefaultBulkDataThreshold.
	BulkDataThreshold int
	// MaxKeptBytes bounds the sum of kept values; a header needing more
	// fails with ErrTooLarge. 0 means DefaultMaxKeptBytes.
	MaxKeptBytes int
}

// Defaults of ParseOptions.
const (
	DefaultBulkDataThreshold = 64 << 10
	DefaultMaxKeptBytes      = 16 << 20
)

// maxDepth bounds sequence nesting; real data sets nest a handful of levels
// and the bound keeps hostile input from exhausting the stack.
const maxDepth = 32

// maxIndexedValue bounds the value of an indexed attribute; the longest
// legitimate one (LocalNamespaceEntityID, UT) is far smaller.
const maxIndexedValue = 64 << 10

// ParseHeader reads a data set (not the file meta) encoded in
// transferSyntaxUID and returns its indexed attributes. It stops at the
// first top-level Pixel Data (7FE0,0010), Float Pixel Data (7FE0,0008) or
// Double Float Pixel Data (7FE0,0009) after reading only the element's tag,
// VR and length, so neither memory nor the bytes read grow with the size of
// the pixel data; it may read up to one buffer (4 KiB) beyond that point
// unless r is a *bufio.Reader, which it then uses directly. A data set
// without pixel data is read to its end.
//
// Text is converted to UTF-8 for the default repertoire, ISO_IR 100
// (Latin-1) and ISO_IR 192 (UTF-8) (PS3.5 §6.1). Bytes that are not valid
// in the default repertoire are read as Latin-1, which many writers send
// without declaring it. Values in any other character set, including ISO
// 2022 code extensions, are kept as their raw bytes: check
// Header.SpecificCharacterSet before treating them as UTF-8.
func ParseHeader(r io.Reader, transferSyntaxUID string) (*Header, error) {
	return ParseHeaderWithOptions(r, transferSyntaxUID, ParseOptions{})
}

// ParseHeaderWithOptions is ParseHeader with options.
func ParseHeaderWithOptions(r io.Reader, transferSyntaxUID string, opts ParseOptions) (*Header, error) {
	ts, ok := LookupTransferSyntax(transferSyntaxUID)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedTransferSyntax, transferSyntaxUID)
	}
	if opts.BulkDataThreshold <= 0 {
		opts.BulkDataThreshold = DefaultBulkDataThreshold
	}
	if opts.MaxKeptBytes <= 0 {
		opts.MaxKeptBytes = DefaultMaxKeptBytes
	}
	if ts.Deflated {
		// The whole data set is a raw deflate stream (PS3.5 §A.5).
		fr := flate.NewReader(r)
		defer fr.Close()
		r = fr
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	p := parser{
		in:   input{r: br},
		opts: opts,
		h:    &Header{TransferSyntaxUID: ts.UID},
	}
	enc := encoding{explicit: ts.ExplicitVR, bo: ts.ByteOrder}
	if err := p.parse(enc); err != nil {
		return nil, err
	}
	return p.h, nil
}

// ParseFile reads the file meta and then the header of the Part 10 file at
// path. It stops at pixel data as ParseHeader does.
func ParseFile(path string) (FileMeta, *Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileMeta{}, nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	m, err := ReadFileMeta(br)
	if err != nil {
		return m, nil, fmt.Errorf("%s: %w", path, err)
	}
	h, err := ParseHeader(br, m.TransferSyntaxUID)
	if err != nil {
		return m, nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, h, nil
}

// encoding is how elements are encoded at some point of the stream.
type encoding struct {
	explicit bool
	bo       binary.ByteOrder
}

// implicitLE is the encoding of the content of a UN element of undefined
// length (PS3.5 §6.2.2).
var implicitLE = encoding{explicit: false, bo: binary.LittleEndian}

// input counts and optionally records the bytes read from the data set.
type input struct {
	r   *bufio.Reader
	off int64
	// rec, when non-nil, receives every byte read until it would exceed
	// recMax; then recOver is set and recording stops.
	rec     []byte
	recMax  int
	recOn   bool
	recOver bool
	scratch [12]byte
}

func (in *input) record(b []byte) {
	if !in.recOn || in.recOver {
		return
	}
	if len(in.rec)+len(b) > in.recMax {
		in.recOver = true
		in.rec = nil
		return
	}
	in.rec = append(in.rec, b...)
}

func (in *input) readFull(b []byte) error {
	n, err := io.ReadFull(in.r, b)
	in.off += int64(n)
	in.record(b[:n])
	return err
}

// discard skips n bytes, recording them if recording.
func (in *input) discard(n int64) error {
	for n > 0 {
		chunk := min(n, int64(in.r.Size()))
		if in.recOn && !in.recOver {
			p, err := in.r.Peek(int(chunk))
			in.record(p)
			m, _ := in.r.Discard(len(p))
			in.off += int64(m)
			n -= int64(m)
			if err != nil {
				return noEOF(err)
			}
			continue
		}
		m, err := in.r.Discard(int(chunk))
		in.off += int64(m)
		n -= int64(m)
		if err != nil {
			return noEOF(err)
		}
	}
	return nil
}

func (in *input) startRecording(max int) {
	in.rec, in.recMax, in.recOn, in.recOver = nil, max, true, false
}

// stopRecording returns what was recorded, or nil if it overflowed.
func (in *input) stopRecording() []byte {
	b := in.rec
	if in.recOver {
		b = nil
	}
	in.rec, in.recOn, in.recOver = nil, false, false
	return b
}

type parser struct {
	in      input
	opts    ParseOptions
	h       *Header
	kept    int
	charset charset
	scratch []byte
}

// elementHeader reads a tag, VR and value length (PS3.5 §7.1). Items and
// delimiters have no VR in any transfer syntax (PS3.5 §7.5). A clean end of
// input before the tag returns io.EOF.
func (p *parser) elementHeader(enc encoding) (t Tag, vr string, length uint32, err error) {
	b := p.in.scratch[:]
	if err := p.in.readFull(b[:4]); err != nil {
		if err == io.EOF {
			return 0, "", 0, io.EOF
		}
		return 0, "", 0, fmt.Errorf("%w: truncated tag: %w", ErrMalformed, err)
	}
	t = NewTag(enc.bo.Uint16(b), enc.bo.Uint16(b[2:]))
	if t.Group() == 0xFFFE || !enc.explicit {
		if err := p.in.readFull(b[:4]); err != nil {
			return 0, "", 0, fmt.Errorf("%w: truncated length of %v: %w", ErrMalformed, t, noEOF(err))
		}
		return t, "", enc.bo.Uint32(b), nil
	}
	if err := p.in.readFull(b[:4]); err != nil {
		return 0, "", 0, fmt.Errorf("%w: truncated VR of %v: %w", ErrMalformed, t, noEOF(err))
	}
	if !validVR(b[0], b[1]) {
		return 0, "", 0, fmt.Errorf("%w: element %v has invalid VR %q", ErrMalformed, t, b[:2])
	}
	vr = vrString(b[0], b[1])
	if !longLengthVR(b[0], b[1]) {
		return t, vr, uint32(enc.bo.Uint16(b[2:])), nil
	}
	if err := p.in.readFull(b[:4]); err != nil {
		return 0, "", 0, fmt.Errorf("%w: truncated length of %v: %w", ErrMalformed, t, noEOF(err))
	}
	return t, vr, enc.bo.Uint32(b), nil
}

// parse walks the top level of the data set.
func (p *parser) parse(enc encoding) error {
	for {
		t, vr, length, err := p.elementHeader(enc)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		valueOff := p.in.off
		if isPixelData(t) {
			if vr == "" {
				vr = "OW"
				if t == TagFloatPixelData {
					vr = "OF"
				} else if t == TagDoubleFloatPixelData {
					vr = "OD"
				}
			}
			p.h.PixelData = Element{Tag: t, VR: vr, Length: length, Offset: valueOff}
			return nil
		}
		if t.Group() == 0xFFFE {
			return fmt.Errorf("%w: %v at top level", ErrMalformed, t)
		}
		if vr == "" {
			vr = dictionaryVR(t)
		}
		a, indexed := indexed[t]
		var value []byte
		switch {
		case vr == "SQ" || length == UndefinedLength:
			// A sequence, or a UN of undefined length, which holds a
			// sequence in Implicit VR Little Endian (PS3.5 §6.2.2).
			inner := enc
			if vr != "SQ" {
				inner = implicitLE
			}
			limit := 0
			if p.opts.KeepElements {
				limit = p.opts.BulkDataThreshold
			}
			if indexed {
				limit = max(limit, maxIndexedValue)
			}
			if limit > 0 {
				p.in.startRecording(limit)
			}
			err := p.skipSequence(inner, length, 1)
			if limit > 0 {
				value = p.in.stopRecording()
			}
			if err != nil {
				return fmt.Errorf("in sequence %v: %w", t, err)
			}
			if indexed && value != nil {
				if err := p.setFromSequence(t, inner, value); err != nil {
					return err
				}
			}
		case (indexed && length <= maxIndexedValue) || (p.opts.KeepElements && int64(length) <= int64(p.opts.BulkDataThreshold)):
			if p.opts.KeepElements {
				value = make([]byte, length)
			} else {
				// Only strings copied out of it survive set, so one
				// buffer serves every value.
				if cap(p.scratch) < int(length) {
					p.scratch = make([]byte, length, max(length, 256))
				}
				value = p.scratch[:length]
			}
			if err := p.in.readFull(value); err != nil {
				return fmt.Errorf("%w: truncated value of %v: %w", ErrMalformed, t, noEOF(err))
			}
			if indexed {
				p.set(t, a, vr, enc, value)
			}
		default:
			if err := p.in.discard(int64(length)); err != nil {
				return fmt.Errorf("%w: truncated value of %v: %w", ErrMalformed, t, err)
			}
		}
		if p.opts.KeepElements {
			if int64(len(value)) > int64(p.opts.BulkDataThreshold) {
				value = nil
			}
			p.kept += len(value)
			if p.kept > p.opts.MaxKeptBytes {
				return fmt.Errorf("%w: kept values exceed %d bytes", ErrTooLarge, p.opts.MaxKeptBytes)
			}
			p.h.Elements = append(p.h.Elements, Element{Tag: t, VR: vr, Length: length, Offset: valueOff, Value: value})
		}
	}
}

// skipSequence reads past the items of a sequence value (PS3.5 §7.5).
// A defined length is skipped whole; an undefined one is walked item by
// item, and items of undefined length element by element.
func (p *parser) skipSequence(enc encoding, length uint32, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: sequences nested deeper than %d", ErrMalformed, maxDepth)
	}
	if length != UndefinedLength {
		if err := p.in.discard(int64(length)); err != nil {
			return fmt.Errorf("%w: truncated sequence: %w", ErrMalformed, err)
		}
		return nil
	}
	for {
		t, _, l, err := p.elementHeader(enc)
		if err != nil {
			return fmt.Errorf("%w: unterminated sequence: %w", ErrMalformed, noEOF(err))
		}
		switch t {
		case TagSequenceDelimitationItem:
			return nil
		case TagItem:
			if l != UndefinedLength {
				if err := p.in.discard(int64(l)); err != nil {
					return fmt.Errorf("%w: truncated item: %w", ErrMalformed, err)
				}
				continue
			}
			if err := p.skipItem(enc, depth); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: %v where an item was expected", ErrMalformed, t)
		}
	}
}

// skipItem reads past the elements of an item of undefined length up to
// its Item Delimitation Item (PS3.5 §7.5.2).
func (p *parser) skipItem(enc encoding, depth int) error {
	for {
		t, vr, l, err := p.elementHeader(enc)
		if err != nil {
			return fmt.Errorf("%w: unterminated item: %w", ErrMalformed, noEOF(err))
		}
		switch {
		case t == TagItemDelimitationItem:
			return nil
		case l == UndefinedLength:
			// A nested sequence, an encapsulated Pixel Data (in an
			// Icon Image Sequence, PS3.5 §A.4) or a UN sequence.
			inner := enc
			if vr == "UN" {
				inner = implicitLE
			}
			if err := p.skipSequence(inner, l, depth+1); err != nil {
				return err
			}
		case t.Group() == 0xFFFE:
			return fmt.Errorf("%w: %v inside an item", ErrMalformed, t)
		default:
			if err := p.in.discard(int64(l)); err != nil {
				return fmt.Errorf("%w: truncated value of %v: %w", ErrMalformed, t, err)
			}
		}
	}
}

// setFromSequence reads the indexed attributes of a sequence from its
// recorded items.
func (p *parser) setFromSequence(t Tag, enc encoding, value []byte) error {
	if t != tagIssuerOfAccessionNumberSequence {
		return nil
	}
	// Local Namespace Entity ID (0040,0031) of the first item (PS3.3
	// §10.17, HL7 v2 EI.2).
	sub := parser{in: input{r: bufio.NewReaderSize(bytes.NewReader(value), 64)}, opts: ParseOptions{}, h: &Header{}, charset: p.charset}
	it, _, l, err := sub.elementHeader(enc)
	if err != nil || it != TagItem {
		return nil // an empty sequence
	}
	end := int64(-1)
	if l != UndefinedLength {
		end = sub.in.off + int64(l)
	}
	for end < 0 || sub.in.off < end {
		et, vr, el, err := sub.elementHeader(enc)
		if err != nil {
			return fmt.Errorf("in sequence %v: %w", t, err)
		}
		if et == TagItemDelimitationItem {
			break
		}
		if vr == "" {
			vr = dictionaryVR(et)
		}
		if el == UndefinedLength || vr == "SQ" {
			if err := sub.skipSequence(enc, el, 2); err != nil {
				return fmt.Errorf("in sequence %v: %w", t, err)
			}
			continue
		}
		if et == tagLocalNamespaceEntityID && el <= maxIndexedValue {
			v := make([]byte, el)
			if err := sub.in.readFull(v); err != nil {
				return fmt.Errorf("%w: in sequence %v: %w", ErrMalformed, t, noEOF(err))
			}
			p.h.IssuerOfAccessionNumber = p.charset.decode(trimValue(vr, v))
			return nil
		}
		if err := sub.in.discard(int64(el)); err != nil {
			return fmt.Errorf("%w: in sequence %v: %w", ErrMalformed, t, err)
		}
	}
	return nil
}

// set stores the value of an indexed attribute.
func (p *parser) set(t Tag, a attr, vr string, enc encoding, v []byte) {
	if a.field == nil {
		switch t {
		case tagSpecificCharacterSet:
			s := trimValue("CS", v)
			p.h.SpecificCharacterSet = s
			p.charset = parseCharset(s)
		case tagNumberOfFrames:
			n, err := strconv.Atoi(trimValue("IS", v))
			if err == nil && n >= 0 {
				p.h.NumberOfFrames = n
			}
		case tagRows, tagColumns, tagBitsAllocated:
			if len(v) < 2 {
				return
			}
			u := enc.bo.Uint16(v)
			switch t {
			case tagRows:
				p.h.Rows = u
			case tagColumns:
				p.h.Columns = u
			default:
				p.h.BitsAllocated = u
			}
		}
		return
	}
	s := trimValue(vr, v)
	if a.text {
		s = p.charset.decode(s)
	}
	*a.field(p.h) = s
}

// vrString returns a VR without allocating.
func vrString(a, b byte) string {
	for _, vr := range vrs {
		if vr[0] == a && vr[1] == b {
			return vr
		}
	}
	return string([]byte{a, b})
}

var vrs = [...]string{"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT",
	"OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST",
	"SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"}
