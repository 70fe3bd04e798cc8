package dicomjson

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/imaginghub/imaginghub/dicomfile"
)

// Tag is a data element tag (group in the high 16 bits).
type Tag = dicomfile.Tag

// Sentinel errors; errors of this package wrap one of them.
var (
	// ErrInvalid means the input breaks PS3.18 Annex F or PS3.5: a bad
	// tag key, an unknown VR, a value of the wrong JSON type for its VR.
	ErrInvalid = errors.New("dicomjson: invalid DICOM JSON")
	// ErrMalformed means a binary data set breaks PS3.5.
	ErrMalformed = errors.New("dicomjson: malformed binary data set")
	// ErrBulkData means a value is only a BulkDataURI and cannot be
	// encoded without fetching it.
	ErrBulkData = errors.New("dicomjson: value is a BulkDataURI")
)

// DataSet is a data set in the DICOM JSON Model (PS3.18 §F.2): attributes by
// tag. Tags are unique by construction; JSON output orders them ascending.
type DataSet map[Tag]*Attribute

// Attribute is one attribute of a DataSet (PS3.18 §F.2.2). At most one of
// the value fields is set, as the VR dictates:
//
//   - Strings: AE AS CS DA DS DT IS LO LT SH ST TM UC UI UR UT; AT as
//     "GGGGEEEE"; FL FD SL SS SV UL US UV as their decimal text, which keeps
//     the precision of 64-bit integers. An empty string is a null value
//     (an empty value of a multi-valued attribute, §F.2.5).
//   - PersonNames: PN.
//   - Items: SQ.
//   - InlineBinary or BulkDataURI: OB OD OF OL OV OW UN (§F.2.7); any VR may
//     instead carry a BulkDataURI (§F.2.6).
//
// An attribute with no value (zero length) has none of them set.
type Attribute struct {
	VR           string
	Strings      []string
	PersonNames  []PersonName
	Items        []DataSet
	InlineBinary []byte
	BulkDataURI  string
}

// PersonName is one value of a PN attribute (PS3.18 §F.2.2, PS3.5 §6.2.1):
// the three component groups, each "Family^Given^Middle^Prefix^Suffix".
type PersonName struct {
	Alphabetic  string
	Ideographic string
	Phonetic    string
}

// String joins the component groups with '=' as PS3.5 §6.2.1.2 encodes
// them, dropping trailing empty groups.
func (p PersonName) String() string {
	switch {
	case p.Phonetic != "":
		return p.Alphabetic + "=" + p.Ideographic + "=" + p.Phonetic
	case p.Ideographic != "":
		return p.Alphabetic + "=" + p.Ideographic
	}
	return p.Alphabetic
}

// ParsePersonName splits an encoded PN value into its component groups.
func ParsePersonName(s string) PersonName {
	var p PersonName
	groups := [3]*string{&p.Alphabetic, &p.Ideographic, &p.Phonetic}
	for i := 0; i < 3; i++ {
		j := indexByte(s, '=')
		if j < 0 || i == 2 {
			*groups[i] = s
			break
		}
		*groups[i] = s[:j]
		s = s[j+1:]
	}
	return p
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// Tags returns the tags of ds in ascending order.
func (ds DataSet) Tags() []Tag {
	tags := make([]Tag, 0, len(ds))
	for t := range ds {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags
}

// String returns the first value of a string-valued attribute (the PN
// encoding for PN), or "".
func (ds DataSet) String(t Tag) string {
	a := ds[t]
	if a == nil {
		return ""
	}
	if len(a.Strings) > 0 {
		return a.Strings[0]
	}
	if len(a.PersonNames) > 0 {
		return a.PersonNames[0].String()
	}
	return ""
}

// Int returns the first value of a numeric attribute as an int.
func (ds DataSet) Int(t Tag) (int, bool) {
	s := ds.String(t)
	if s == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return int(f), true
}

// Float returns the first value of a numeric attribute.
func (ds DataSet) Float(t Tag) (float64, bool) { return ds.FloatAt(t, 0) }

// FloatAt returns value i of a numeric attribute.
func (ds DataSet) FloatAt(t Tag, i int) (float64, bool) {
	a := ds[t]
	if a == nil || i >= len(a.Strings) {
		return 0, false
	}
	f, err := strconv.ParseFloat(a.Strings[i], 64)
	return f, err == nil
}

// SetStrings sets a string-valued (or numeric-as-text) attribute.
func (ds DataSet) SetStrings(t Tag, vr string, values ...string) {
	ds[t] = &Attribute{VR: vr, Strings: values}
}

// vrKind groups the VRs by how Annex F represents their values.
type vrKind uint8

const (
	kindUnknown vrKind = iota
	kindString         // JSON strings
	kindNumber         // JSON numbers
	kindDecimal        // IS, DS: JSON numbers (strings accepted on input)
	kindAT             // JSON strings "GGGGEEEE"
	kindPN             // PN objects
	kindSQ             // data sets
	kindBinary         // InlineBinary or BulkDataURI only
)

func kindOf(vr string) vrKind {
	switch vr {
	case "AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT":
		return kindString
	case "FL", "FD", "SL", "SS", "SV", "UL", "US", "UV":
		return kindNumber
	case "IS", "DS":
		return kindDecimal
	case "AT":
		return kindAT
	case "PN":
		return kindPN
	case "SQ":
		return kindSQ
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
		return kindBinary
	}
	return kindUnknown
}

// KnownVR reports whether vr is one of the VRs of PS3.5 Table 6.2-1.
func KnownVR(vr string) bool { return kindOf(vr) != kindUnknown }

// ParseTag reads a tag written as 8 hexadecimal digits, "GGGGEEEE", as
// DICOM JSON keys (PS3.18 §F.2.1.1) and QIDO-RS query keys spell it.
func ParseTag(s string) (Tag, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("%w: tag %q is not 8 hexadecimal digits", ErrInvalid, s)
	}
	var v uint32
	for i := 0; i < 8; i++ {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, fmt.Errorf("%w: tag %q is not 8 hexadecimal digits", ErrInvalid, s)
		}
		v = v<<4 | uint32(d)
	}
	return Tag(v), nil
}

// FormatTag writes t as DICOM JSON keys spell it: 8 upper-case hex digits.
func FormatTag(t Tag) string {
	var b [8]byte
	return string(appendTag(b[:0], t))
}

func appendTag(dst []byte, t Tag) []byte {
	const hex = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hex[(uint32(t)>>shift)&0xF])
	}
	return dst
}
