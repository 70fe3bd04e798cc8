package dicomfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of these, so
// callers can test with errors.Is.
var (
	// ErrNotPart10 means the input does not start with a 128-byte preamble
	// and "DICM" followed by a File Meta Information group (PS3.10 §7.1).
	ErrNotPart10 = errors.New("dicomfile: not a DICOM Part 10 file")
	// ErrMalformed means the encoding breaks PS3.5 (bad VR, impossible
	// length, truncated element, elements out of place).
	ErrMalformed = errors.New("dicomfile: malformed data set")
	// ErrTooLarge means a configured bound was reached.
	ErrTooLarge = errors.New("dicomfile: header exceeds limit")
	// ErrUnsupportedTransferSyntax means the data set encoding is not known.
	ErrUnsupportedTransferSyntax = errors.New("dicomfile: unsupported transfer syntax")
)

// File Meta Information layout (PS3.10 §7.1).
const (
	PreambleLength = 128
	// prefixEnd is the offset just after the "DICM" prefix.
	prefixEnd = PreambleLength + 4
	// groupLengthEnd is the offset just after (0002,0000), which is
	// always a 12-byte Explicit VR Little Endian UL element.
	groupLengthEnd = prefixEnd + 12
	// maxMetaGroupLength bounds what ReadFileMeta accepts; real groups are
	// a few hundred bytes, and the bound keeps hostile input from making
	// us allocate.
	maxMetaGroupLength = 64 << 10
)

// FileMeta is the File Meta Information of a Part 10 file (PS3.10 §7.1).
// UIDs and strings hold their values without padding.
type FileMeta struct {
	MediaStorageSOPClassUID         string // (0002,0002)
	MediaStorageSOPInstanceUID      string // (0002,0003)
	TransferSyntaxUID               string // (0002,0010)
	ImplementationClassUID          string // (0002,0012)
	ImplementationVersionName       string // (0002,0013), SH
	SourceApplicationEntityTitle    string // (0002,0016), AE
	SendingApplicationEntityTitle   string // (0002,0017), AE, optional
	ReceivingApplicationEntityTitle string // (0002,0018), AE, optional
	PrivateInformationCreatorUID    string // (0002,0100), optional

	// GroupLength is the length of the elements that follow (0002,0000),
	// that is its value, as read by ReadFileMeta (measured when a writer
	// left the element out). WriteFileMeta ignores it and computes it.
	GroupLength uint32

	// noGroupLength records that the file had no (0002,0000).
	noGroupLength bool
}

// DataSetOffset returns the offset in the file of the first byte of the
// data set that follows the File Meta Information read by ReadFileMeta.
func (m FileMeta) DataSetOffset() int64 {
	if m.noGroupLength {
		return prefixEnd + int64(m.GroupLength)
	}
	return groupLengthEnd + int64(m.GroupLength)
}

// Tags of the File Meta Information group (PS3.10 Table 7.1-1).
const (
	tagFileMetaInformationGroupLength  Tag = 0x00020000
	tagFileMetaInformationVersion      Tag = 0x00020001
	tagMediaStorageSOPClassUID         Tag = 0x00020002
	tagMediaStorageSOPInstanceUID      Tag = 0x00020003
	tagTransferSyntaxUID               Tag = 0x00020010
	tagImplementationClassUID          Tag = 0x00020012
	tagImplementationVersionName       Tag = 0x00020013
	tagSourceApplicationEntityTitle    Tag = 0x00020016
	tagSendingApplicationEntityTitle   Tag = 0x00020017
	tagReceivingApplicationEntityTitle Tag = 0x00020018
	tagPrivateInformationCreatorUID    Tag = 0x00020100
	tagPrivateInformation              Tag = 0x00020102
)

// WriteFileMeta writes the 128-byte preamble (zeros), "DICM" and the File
// Meta Information group in Explicit VR Little Endian with its group length
// (PS3.10 §7.1), and returns the number of bytes written. The data set in
// m.TransferSyntaxUID is expected to follow. Empty optional elements are left
// out; the Type 1 elements must be set.
func WriteFileMeta(w io.Writer, m FileMeta) (int64, error) {
	switch {
	case m.MediaStorageSOPClassUID == "", m.MediaStorageSOPInstanceUID == "",
		m.TransferSyntaxUID == "", m.ImplementationClassUID == "":
		return 0, errors.New("dicomfile: file meta needs SOP class, SOP instance, transfer syntax and implementation class UIDs")
	}
	if len(m.SourceApplicationEntityTitle) > 16 || len(m.SendingApplicationEntityTitle) > 16 ||
		len(m.ReceivingApplicationEntityTitle) > 16 || len(m.ImplementationVersionName) > 16 {
		return 0, errors.New("dicomfile: AE title or implementation version name longer than 16 characters")
	}
	// One buffer, one Write: the group is a few hundred bytes and this
	// runs once per stored instance.
	var arr [512]byte
	b := append(arr[:0:len(arr)], make([]byte, PreambleLength)...)
	b = append(b, "DICM"...)
	b = appendExplicitLE(b, tagFileMetaInformationGroupLength, "UL", []byte{0, 0, 0, 0})
	start := len(b)
	b = appendExplicitLE(b, tagFileMetaInformationVersion, "OB", []byte{0x00, 0x01})
	b = appendString(b, tagMediaStorageSOPClassUID, "UI", m.MediaStorageSOPClassUID)
	b = appendString(b, tagMediaStorageSOPInstanceUID, "UI", m.MediaStorageSOPInstanceUID)
	b = appendString(b, tagTransferSyntaxUID, "UI", m.TransferSyntaxUID)
	b = appendString(b, tagImplementationClassUID, "UI", m.ImplementationClassUID)
	b = appendString(b, tagImplementationVersionName, "SH", m.ImplementationVersionName)
	b = appendString(b, tagSourceApplicationEntityTitle, "AE", m.SourceApplicationEntityTitle)
	b = appendString(b, tagSendingApplicationEntityTitle, "AE", m.SendingApplicationEntityTitle)
	b = appendString(b, tagReceivingApplicationEntityTitle, "AE", m.ReceivingApplicationEntityTitle)
	b = appendString(b, tagPrivateInformationCreatorUID, "UI", m.PrivateInformationCreatorUID)
	binary.LittleEndian.PutUint32(b[start-4:], uint32(len(b)-start))
	n, err := w.Write(b)
	if err != nil {
		return int64(n), fmt.Errorf("dicomfile: write file meta: %w", err)
	}
	return int64(n), nil
}

// appendString appends a string element, leaving it out when empty (all
// optional file meta elements are Type 3). UI values are padded to even
// length with NUL, other string VRs with a space (PS3.5 §6.2).
func appendString(b []byte, t Tag, vr, s string) []byte {
	if s == "" {
		return b
	}
	b = appendHeaderExplicitLE(b, t, vr, uint32(len(s)+len(s)&1))
	b = append(b, s...)
	if len(s)&1 == 1 {
		if vr == "UI" {
			b = append(b, 0)
		} else {
			b = append(b, ' ')
		}
	}
	return b
}

func appendExplicitLE(b []byte, t Tag, vr string, v []byte) []byte {
	b = appendHeaderExplicitLE(b, t, vr, uint32(len(v)))
	return append(b, v...)
}

// appendHeaderExplicitLE appends tag, VR and length in Explicit VR Little
// Endian, with the 4-byte length form for the VRs of PS3.5 Table 7.1-1.
func appendHeaderExplicitLE(b []byte, t Tag, vr string, length uint32) []byte {
	b = binary.LittleEndian.AppendUint16(b, t.Group())
	b = binary.LittleEndian.AppendUint16(b, t.Element())
	b = append(b, vr...)
	if longLengthVR(vr[0], vr[1]) {
		b = append(b, 0, 0)
		return binary.LittleEndian.AppendUint32(b, length)
	}
	return binary.LittleEndian.AppendUint16(b, uint16(length))
}

// ReadFileMeta reads the preamble, the "DICM" prefix and the File Meta
// Information group from r, and leaves r positioned at the first byte of the
// data set: it reads exactly m.DataSetOffset() bytes. It returns an error
// wrapping ErrNotPart10 when r does not hold a Part 10 file.
//
// A group without (0002,0000), which PS3.10 requires but some writers omit,
// is accepted only when r is a *bufio.Reader, since finding its end needs a
// look at the next tag.
func ReadFileMeta(r io.Reader) (FileMeta, error) {
	var m FileMeta
	var head [groupLengthEnd]byte
	if _, err := io.ReadFull(r, head[:prefixEnd]); err != nil {
		return m, fmt.Errorf("%w: reading preamble: %w", ErrNotPart10, err)
	}
	if string(head[PreambleLength:prefixEnd]) != "DICM" {
		return m, fmt.Errorf("%w: no DICM prefix", ErrNotPart10)
	}
	br, peekable := r.(*bufio.Reader)
	if peekable {
		p, err := br.Peek(4)
		if err != nil {
			return m, fmt.Errorf("%w: reading file meta: %w", ErrNotPart10, err)
		}
		if Tag(uint32(binary.LittleEndian.Uint16(p))<<16|uint32(binary.LittleEndian.Uint16(p[2:]))) != tagFileMetaInformationGroupLength {
			return readFileMetaNoGroupLength(br)
		}
	}
	if _, err := io.ReadFull(r, head[prefixEnd:]); err != nil {
		return m, fmt.Errorf("%w: reading file meta group length: %w", ErrNotPart10, err)
	}
	gl := head[prefixEnd:]
	if string(gl[:8]) != "\x02\x00\x00\x00UL\x04\x00" {
		return m, fmt.Errorf("%w: file meta does not start with (0002,0000) UL", ErrNotPart10)
	}
	m.GroupLength = binary.LittleEndian.Uint32(gl[8:])
	if m.GroupLength > maxMetaGroupLength {
		return m, fmt.Errorf("%w: file meta group length %d", ErrTooLarge, m.GroupLength)
	}
	group := make([]byte, m.GroupLength)
	if _, err := io.ReadFull(r, group); err != nil {
		return m, fmt.Errorf("%w: reading file meta: %w", ErrNotPart10, noEOF(err))
	}
	for len(group) > 0 {
		t, vr, v, rest, err := splitExplicitLE(group)
		if err != nil {
			return m, err
		}
		if t.Group() != 0x0002 {
			return m, fmt.Errorf("%w: element %v inside file meta group", ErrMalformed, t)
		}
		m.set(t, vr, v)
		group = rest
	}
	if err := m.check(); err != nil {
		return m, err
	}
	return m, nil
}

// readFileMetaNoGroupLength reads group 0002 element by element until the
// next tag is outside it.
func readFileMetaNoGroupLength(br *bufio.Reader) (FileMeta, error) {
	var m FileMeta
	var total int
	for {
		p, err := br.Peek(8)
		if err != nil {
			return m, fmt.Errorf("%w: reading file meta: %w", ErrNotPart10, noEOF(err))
		}
		if binary.LittleEndian.Uint16(p) != 0x0002 {
			break
		}
		n := 8
		length := int(binary.LittleEndian.Uint16(p[6:]))
		if longLengthVR(p[4], p[5]) {
			p, err = br.Peek(12)
			if err != nil {
				return m, fmt.Errorf("%w: reading file meta: %w", ErrNotPart10, noEOF(err))
			}
			n = 12
			length = int(binary.LittleEndian.Uint32(p[8:]))
		}
		total += n + length
		if total > maxMetaGroupLength || length < 0 {
			return m, fmt.Errorf("%w: file meta group longer than %d bytes", ErrTooLarge, maxMetaGroupLength)
		}
		buf := make([]byte, n+length)
		if _, err := io.ReadFull(br, buf); err != nil {
			return m, fmt.Errorf("%w: reading file meta: %w", ErrNotPart10, noEOF(err))
		}
		t, vr, v, _, err := splitExplicitLE(buf)
		if err != nil {
			return m, err
		}
		m.set(t, vr, v)
	}
	m.GroupLength = uint32(total)
	m.noGroupLength = true
	if err := m.check(); err != nil {
		return m, err
	}
	return m, nil
}

func (m *FileMeta) set(t Tag, vr string, v []byte) {
	s := func() string { return trimValue(vr, v) }
	switch t {
	case tagMediaStorageSOPClassUID:
		m.MediaStorageSOPClassUID = s()
	case tagMediaStorageSOPInstanceUID:
		m.MediaStorageSOPInstanceUID = s()
	case tagTransferSyntaxUID:
		m.TransferSyntaxUID = s()
	case tagImplementationClassUID:
		m.ImplementationClassUID = s()
	case tagImplementationVersionName:
		m.ImplementationVersionName = s()
	case tagSourceApplicationEntityTitle:
		m.SourceApplicationEntityTitle = s()
	case tagSendingApplicationEntityTitle:
		m.SendingApplicationEntityTitle = s()
	case tagReceivingApplicationEntityTitle:
		m.ReceivingApplicationEntityTitle = s()
	case tagPrivateInformationCreatorUID:
		m.PrivateInformationCreatorUID = s()
	}
}

// check enforces the one element without which the data set cannot be read.
func (m *FileMeta) check() error {
	if m.TransferSyntaxUID == "" {
		return fmt.Errorf("%w: file meta has no Transfer Syntax UID (0002,0010)", ErrNotPart10)
	}
	return nil
}

// splitExplicitLE splits one Explicit VR Little Endian element off b.
func splitExplicitLE(b []byte) (t Tag, vr string, value, rest []byte, err error) {
	if len(b) < 8 {
		return 0, "", nil, nil, fmt.Errorf("%w: truncated file meta element", ErrMalformed)
	}
	t = Tag(uint32(binary.LittleEndian.Uint16(b))<<16 | uint32(binary.LittleEndian.Uint16(b[2:])))
	if !validVR(b[4], b[5]) {
		return 0, "", nil, nil, fmt.Errorf("%w: element %v has invalid VR %q", ErrMalformed, t, b[4:6])
	}
	vr = string(b[4:6])
	var n, length int
	if longLengthVR(b[4], b[5]) {
		if len(b) < 12 {
			return 0, "", nil, nil, fmt.Errorf("%w: truncated file meta element %v", ErrMalformed, t)
		}
		n, length = 12, int(binary.LittleEndian.Uint32(b[8:]))
	} else {
		n, length = 8, int(binary.LittleEndian.Uint16(b[6:]))
	}
	if length < 0 || length > len(b)-n {
		return 0, "", nil, nil, fmt.Errorf("%w: file meta element %v length %d overruns the group", ErrMalformed, t, length)
	}
	return t, vr, b[n : n+length], b[n+length:], nil
}

// trimValue removes the padding of a string value: trailing NUL for UI,
// and leading and trailing spaces for the other text VRs, except that only
// trailing spaces are insignificant in ST, LT, UT and UR (PS3.5 §6.2).
func trimValue(vr string, v []byte) string {
	switch vr {
	case "UI":
		return trimUID(string(v))
	case "ST", "LT", "UT", "UR":
		return strings.TrimRight(string(v), " \x00")
	default:
		return strings.Trim(string(v), " \x00")
	}
}

// noEOF turns a clean EOF in the middle of a structure into
// io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
