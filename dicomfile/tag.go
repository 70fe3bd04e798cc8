package dicomfile

import (
	"fmt"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Tag is a data element tag, group in the high 16 bits and element number
// in the low 16 bits (PS3.5 §7.1).
type Tag uint32

// NewTag returns the tag (group,element).
func NewTag(group, element uint16) Tag { return Tag(uint32(group)<<16 | uint32(element)) }

// Group returns the group number.
func (t Tag) Group() uint16 { return uint16(t >> 16) }

// Element returns the element number.
func (t Tag) Element() uint16 { return uint16(t) }

// String formats t as "(gggg,eeee)" in upper-case hexadecimal, the way
// PS3.6 lists tags.
func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group(), t.Element()) }

// UndefinedLength is the value length 0xFFFFFFFF of a sequence, item or
// encapsulated Pixel Data ended by a delimitation item (PS3.5 §7.1.1).
const UndefinedLength = 0xFFFFFFFF

// Tags with a role in the encoding itself (PS3.5 §7.5, §A.4).
const (
	TagItem                     Tag = 0xFFFEE000
	TagItemDelimitationItem     Tag = 0xFFFEE00D
	TagSequenceDelimitationItem Tag = 0xFFFEE0DD
	TagFloatPixelData           Tag = 0x7FE00008
	TagDoubleFloatPixelData     Tag = 0x7FE00009
	TagPixelData                Tag = 0x7FE00010
)

// isPixelData reports whether t is one of the top-level pixel data elements
// at which header parsing stops (PS3.3 §C.7.6.3, §C.7.6.24).
func isPixelData(t Tag) bool {
	return t == TagPixelData || t == TagFloatPixelData || t == TagDoubleFloatPixelData
}

// validVR reports whether a and b spell a VR of PS3.5 Table 6.2-1.
func validVR(a, b byte) bool {
	switch string([]byte{a, b}) {
	case "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT",
		"OB", "OD", "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST",
		"SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV":
		return true
	}
	return false
}

// longLengthVR reports whether an Explicit VR element with this VR has two
// reserved bytes and a 32-bit length (PS3.5 §7.1.2, Table 7.1-1) rather than
// a 16-bit length.
func longLengthVR(a, b byte) bool {
	switch string([]byte{a, b}) {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// dictionaryVR returns the VR of t for Implicit VR data sets, where the
// stream does not carry it (PS3.5 §7.1.3): from the attributes this package
// indexes, then the PS3.6 data dictionary, else "UN".
func dictionaryVR(t Tag) string {
	if a, ok := indexed[t]; ok {
		return a.vr
	}
	if t.Element() == 0 {
		return "UL" // group length (PS3.5 §7.2)
	}
	if t.Group()&1 == 1 {
		return "UN" // private (PS3.5 §7.8)
	}
	if info, err := tag.Find(tag.Tag{Group: t.Group(), Element: t.Element()}); err == nil && len(info.VRs) > 0 {
		return info.VRs[0]
	}
	return "UN"
}
