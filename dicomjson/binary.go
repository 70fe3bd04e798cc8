package dicomjson

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/imaginghub/imaginghub/dicomfile"
)

// DefaultBulkDataThreshold is the largest value written inline when a
// BulkDataURI builder is given and DecodeOptions.BulkDataThreshold is 0.
const DefaultBulkDataThreshold = 1024

// DecodeOptions tunes FromElements.
type DecodeOptions struct {
	// TransferSyntaxUID is the encoding of the data set the elements were
	// read from.
	TransferSyntaxUID string
	// BulkDataURI, when set, returns the URI to give in place of a value:
	// every value of a binary VR (OB OD OF OL OV OW UN) and every other
	// value longer than BulkDataThreshold. path names the value: the tag
	// as 8 hex digits, and for a value inside a sequence the sequence's
	// tag, the item index and so on, joined by '/' ("00540016/0/00181072").
	// When BulkDataURI is nil such values are given as InlineBinary (or as
	// text for the other VRs).
	BulkDataURI func(path string) string
	// BulkDataThreshold: values longer than this many bytes go by
	// BulkDataURI; 0 means DefaultBulkDataThreshold.
	BulkDataThreshold int
	// ReaderAt reads values the header parser did not keep
	// (dicomfile.Element.Value is nil): offset 0 is the first byte of the
	// data set. Without it such values must go by BulkDataURI, or they
	// are left out.
	ReaderAt io.ReaderAt
}

// encoding is how a binary data set spells its elements.
type encoding struct {
	explicit bool
	bo       binary.ByteOrder
}

var implicitLE = encoding{explicit: false, bo: binary.LittleEndian}

type decoder struct {
	opts      DecodeOptions
	enc       encoding
	threshold int
	utf8      bool // ISO_IR 192; otherwise text bytes >= 0x80 are read as Latin-1
}

// FromElements decodes the top-level elements that dicomfile's header
// parser kept (ParseOptions.KeepElements) into a DataSet. Sequence values
// are decoded into items (PS3.5 §7.5); a UN of undefined length is decoded
// as the sequence it is (PS3.5 §6.2.2). Text is converted to UTF-8 for the
// default repertoire, ISO_IR 100 and ISO_IR 192; other character sets are
// read as Latin-1 so that the JSON stays valid.
func FromElements(elems []dicomfile.Element, opts DecodeOptions) (DataSet, error) {
	ts, ok := dicomfile.LookupTransferSyntax(opts.TransferSyntaxUID)
	if !ok {
		return nil, fmt.Errorf("%w: unknown transfer syntax %q", ErrMalformed, opts.TransferSyntaxUID)
	}
	d := &decoder{opts: opts, enc: encoding{explicit: ts.ExplicitVR, bo: ts.ByteOrder}, threshold: opts.BulkDataThreshold}
	if d.threshold <= 0 {
		d.threshold = DefaultBulkDataThreshold
	}
	ds := make(DataSet, len(elems))
	for i, e := range elems {
		if e.Tag == 0x00080005 && e.Value != nil {
			d.utf8 = strings.Contains(string(e.Value), "ISO_IR 192")
		}
		if e.Tag.Element() == 0 {
			continue // group lengths are not part of the JSON model (PS3.18 §F.2)
		}
		value := e.Value
		if value == nil && e.Length != 0 {
			// The header parser did not keep the value: it is longer than
			// its threshold.
			if e.VR != "SQ" && e.Length != dicomfile.UndefinedLength {
				if uri := d.bulkURI(FormatTag(e.Tag)); uri != "" {
					ds[e.Tag] = &Attribute{VR: jsonVR(e.VR), BulkDataURI: uri}
					continue
				}
			}
			if opts.ReaderAt == nil {
				continue
			}
			limit := int64(-1)
			if i+1 < len(elems) {
				limit = elems[i+1].Offset - e.Offset
			}
			b, err := readValue(opts.ReaderAt, e, limit)
			if err != nil {
				return nil, err
			}
			value = b
		}
		a, err := d.attribute(e.Tag, e.VR, e.Length, value, d.enc, FormatTag(e.Tag), 0)
		if err != nil {
			return nil, err
		}
		ds[e.Tag] = a
	}
	return ds, nil
}

// maxSequenceRead bounds how much of an undefined-length sequence that
// the header parser did not keep is read to find its end.
const maxSequenceRead = 64 << 20

// readValue reads an element's value from the data set. An undefined
// length sequence is read up to the next element (limit, when known) or a
// bound; items decodes it to its delimiter.
func readValue(ra io.ReaderAt, e dicomfile.Element, limit int64) ([]byte, error) {
	n := int64(e.Length)
	if e.Length == dicomfile.UndefinedLength {
		n = maxSequenceRead
		if limit >= 0 && limit < n {
			n = limit
		}
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("%w: value of %v too long to read", ErrMalformed, e.Tag)
	}
	b, err := io.ReadAll(io.NewSectionReader(ra, e.Offset, n))
	if err != nil {
		return nil, fmt.Errorf("%w: read value of %v: %v", ErrMalformed, e.Tag, err)
	}
	if e.Length != dicomfile.UndefinedLength && int64(len(b)) != n {
		return nil, fmt.Errorf("%w: value of %v truncated", ErrMalformed, e.Tag)
	}
	return b, nil
}

func (d *decoder) bulkURI(path string) string {
	if d.opts.BulkDataURI == nil {
		return ""
	}
	return d.opts.BulkDataURI(path)
}

// jsonVR maps VRs that Annex F does not list to one it does.
func jsonVR(vr string) string {
	if KnownVR(vr) {
		return vr
	}
	return "UN"
}

// attribute decodes one element value.
func (d *decoder) attribute(t Tag, vr string, length uint32, v []byte, enc encoding, path string, depth int) (*Attribute, error) {
	if vr == "UN" && length == dicomfile.UndefinedLength {
		vr = "SQ"
		enc = implicitLE
	}
	a := &Attribute{VR: jsonVR(vr)}
	k := kindOf(a.VR)
	if k == kindSQ {
		items, err := d.items(v, enc, path, depth+1)
		if err != nil {
			return nil, fmt.Errorf("in sequence %v: %w", t, err)
		}
		a.Items = items
		return a, nil
	}
	if len(v) == 0 {
		return a, nil
	}
	if k == kindBinary || len(v) > d.threshold {
		if uri := d.bulkURI(path); uri != "" {
			a.BulkDataURI = uri
			return a, nil
		}
	}
	switch k {
	case kindBinary:
		a.InlineBinary = littleEndian(vr, v, enc.bo)
	case kindString, kindDecimal:
		a.Strings = d.text(vr, v)
	case kindPN:
		for _, s := range d.text(vr, v) {
			a.PersonNames = append(a.PersonNames, ParsePersonName(s))
		}
	case kindAT:
		for i := 0; i+4 <= len(v); i += 4 {
			a.Strings = append(a.Strings, FormatTag(dicomfile.NewTag(enc.bo.Uint16(v[i:]), enc.bo.Uint16(v[i+2:]))))
		}
	case kindNumber:
		a.Strings = numbers(vr, v, enc.bo)
	}
	return a, nil
}

// text splits and trims a string value (PS3.5 §6.2): multi-valued VRs on
// '\'; UI padded with NUL; LT, ST, UT and UR are single-valued and keep
// leading spaces.
func (d *decoder) text(vr string, v []byte) []string {
	s := d.decodeText(vr, v)
	switch vr {
	case "LT", "ST", "UT", "UR":
		return []string{strings.TrimRight(s, " \x00")}
	}
	parts := strings.Split(s, `\`)
	for i, p := range parts {
		switch vr {
		case "UI":
			p = strings.TrimRight(p, "\x00 ")
		case "UC", "DA", "DT", "TM":
			p = strings.TrimRight(p, " \x00")
		default:
			p = strings.Trim(p, " \x00")
		}
		if vr == "DS" || vr == "IS" {
			p = normalizeNumber(p)
		}
		parts[i] = p
	}
	return parts
}

// decodeText converts the value of a text VR to UTF-8 (PS3.5 §6.1.2.3:
// only SH, LO, UC, ST, LT, UT and PN use the specific character set).
func (d *decoder) decodeText(vr string, v []byte) string {
	if d.utf8 || utf8.Valid(v) {
		return strings.ToValidUTF8(string(v), "\uFFFD")
	}
	switch vr {
	case "SH", "LO", "UC", "ST", "LT", "UT", "PN":
		var b strings.Builder
		b.Grow(len(v) * 2)
		for _, c := range v {
			b.WriteRune(rune(c))
		}
		return b.String()
	}
	return strings.ToValidUTF8(string(v), "\uFFFD")
}

// normalizeNumber rewrites a DS or IS value (PS3.5 Table 6.2-1 allows a
// leading '+', leading zeros and ".5") as a JSON number when it is one in
// meaning; other text is kept and written as a JSON string.
func normalizeNumber(s string) string {
	if s == "" || isJSONNumber(s) {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return s
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// numbers decodes the binary numeric VRs.
func numbers(vr string, v []byte, bo binary.ByteOrder) []string {
	size := map[string]int{"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "SV": 8, "UV": 8}[vr]
	out := make([]string, 0, len(v)/size)
	for i := 0; i+size <= len(v); i += size {
		b := v[i:]
		var s string
		switch vr {
		case "US":
			s = strconv.FormatUint(uint64(bo.Uint16(b)), 10)
		case "SS":
			s = strconv.FormatInt(int64(int16(bo.Uint16(b))), 10)
		case "UL":
			s = strconv.FormatUint(uint64(bo.Uint32(b)), 10)
		case "SL":
			s = strconv.FormatInt(int64(int32(bo.Uint32(b))), 10)
		case "UV":
			s = strconv.FormatUint(bo.Uint64(b), 10)
		case "SV":
			s = strconv.FormatInt(int64(bo.Uint64(b)), 10)
		case "FL":
			s = formatFloat(float64(math.Float32frombits(bo.Uint32(b))), 32)
		case "FD":
			s = formatFloat(math.Float64frombits(bo.Uint64(b)), 64)
		}
		out = append(out, s)
	}
	return out
}

// formatFloat writes a float as a JSON number; NaN and infinities, which
// JSON cannot spell, become null.
func formatFloat(f float64, bits int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return ""
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// littleEndian returns binary value bytes in little endian order, which
// InlineBinary carries (PS3.18 §F.2.7 encodes the Explicit VR Little
// Endian value); a big endian data set's OW, OL, OF, OD and OV words are
// swapped.
func littleEndian(vr string, v []byte, bo binary.ByteOrder) []byte {
	out := make([]byte, len(v))
	copy(out, v)
	if bo != binary.BigEndian {
		return out
	}
	w := map[string]int{"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}[vr]
	if w == 0 {
		return out
	}
	for i := 0; i+w <= len(out); i += w {
		for a, b := i, i+w-1; a < b; a, b = a+1, b-1 {
			out[a], out[b] = out[b], out[a]
		}
	}
	return out
}

// items decodes the items of a sequence value (PS3.5 §7.5): items of
// defined or undefined length, ended by the value's end or a Sequence
// Delimitation Item.
func (d *decoder) items(v []byte, enc encoding, path string, depth int) ([]DataSet, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: sequences nested deeper than %d", ErrMalformed, maxDepth)
	}
	r := &byteReader{b: v, enc: enc}
	var items []DataSet
	for r.off < len(r.b) {
		t, _, l, err := r.header()
		if err != nil {
			return nil, err
		}
		if t == dicomfile.TagSequenceDelimitationItem {
			break
		}
		if t != dicomfile.TagItem {
			return nil, fmt.Errorf("%w: %v where an item was expected", ErrMalformed, t)
		}
		end := len(r.b)
		if l != dicomfile.UndefinedLength {
			if int64(l) > int64(len(r.b)-r.off) {
				return nil, fmt.Errorf("%w: item longer than its sequence", ErrMalformed)
			}
			end = r.off + int(l)
		}
		ds := DataSet{}
		ipath := path + "/" + strconv.Itoa(len(items)) + "/"
		for r.off < end {
			et, vr, el, err := r.header()
			if err != nil {
				return nil, err
			}
			if et == dicomfile.TagItemDelimitationItem {
				break
			}
			if et.Group() == 0xFFFE {
				return nil, fmt.Errorf("%w: %v inside an item", ErrMalformed, et)
			}
			if vr == "" {
				vr = DictionaryVR(et)
			}
			var value []byte
			if el == dicomfile.UndefinedLength {
				if vr != "SQ" && vr != "UN" {
					return nil, fmt.Errorf("%w: %v of VR %s has undefined length", ErrMalformed, et, vr)
				}
				inner := enc
				if vr == "UN" {
					inner = implicitLE
				}
				n, err := sequenceLength(r.b[r.off:], inner, depth)
				if err != nil {
					return nil, err
				}
				value = r.b[r.off : r.off+n]
				r.off += n
			} else {
				if int64(el) > int64(end-r.off) {
					return nil, fmt.Errorf("%w: value of %v longer than its item", ErrMalformed, et)
				}
				value = r.b[r.off : r.off+int(el)]
				r.off += int(el)
			}
			if et.Element() == 0 {
				continue
			}
			a, err := d.attribute(et, vr, el, value, enc, ipath+FormatTag(et), depth)
			if err != nil {
				return nil, err
			}
			ds[et] = a
		}
		if l != dicomfile.UndefinedLength {
			r.off = end
		}
		items = append(items, ds)
	}
	return items, nil
}

// sequenceLength finds the length of an undefined-length sequence value
// including its Sequence Delimitation Item.
func sequenceLength(b []byte, enc encoding, depth int) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("%w: sequences nested deeper than %d", ErrMalformed, maxDepth)
	}
	r := &byteReader{b: b, enc: enc}
	for {
		t, _, l, err := r.header()
		if err != nil {
			return 0, err
		}
		switch t {
		case dicomfile.TagSequenceDelimitationItem:
			return r.off, nil
		case dicomfile.TagItem:
		default:
			return 0, fmt.Errorf("%w: %v where an item was expected", ErrMalformed, t)
		}
		if l != dicomfile.UndefinedLength {
			if int64(l) > int64(len(r.b)-r.off) {
				return 0, fmt.Errorf("%w: item longer than its sequence", ErrMalformed)
			}
			r.off += int(l)
			continue
		}
		for {
			et, vr, el, err := r.header()
			if err != nil {
				return 0, err
			}
			if et == dicomfile.TagItemDelimitationItem {
				break
			}
			if vr == "" {
				vr = DictionaryVR(et)
			}
			if el == dicomfile.UndefinedLength {
				inner := enc
				if vr == "UN" {
					inner = implicitLE
				}
				n, err := sequenceLength(r.b[r.off:], inner, depth+1)
				if err != nil {
					return 0, err
				}
				r.off += n
				continue
			}
			if int64(el) > int64(len(r.b)-r.off) {
				return 0, fmt.Errorf("%w: value of %v truncated", ErrMalformed, et)
			}
			r.off += int(el)
		}
	}
}

// byteReader reads element headers from an in-memory value.
type byteReader struct {
	b   []byte
	off int
	enc encoding
}

// header reads a tag, VR and length (PS3.5 §7.1); items and delimiters
// have no VR (PS3.5 §7.5).
func (r *byteReader) header() (Tag, string, uint32, error) {
	if len(r.b)-r.off < 8 {
		return 0, "", 0, fmt.Errorf("%w: truncated element header", ErrMalformed)
	}
	b := r.b[r.off:]
	t := dicomfile.NewTag(r.enc.bo.Uint16(b), r.enc.bo.Uint16(b[2:]))
	if t.Group() == 0xFFFE || !r.enc.explicit {
		r.off += 8
		return t, "", r.enc.bo.Uint32(b[4:]), nil
	}
	vr := string(b[4:6])
	if !KnownVR(vr) {
		return 0, "", 0, fmt.Errorf("%w: element %v has invalid VR %q", ErrMalformed, t, vr)
	}
	if !longLength(vr) {
		r.off += 8
		return t, vr, uint32(r.enc.bo.Uint16(b[6:])), nil
	}
	if len(b) < 12 {
		return 0, "", 0, fmt.Errorf("%w: truncated element header", ErrMalformed)
	}
	r.off += 12
	return t, vr, r.enc.bo.Uint32(b[8:]), nil
}

// longLength reports whether an Explicit VR element of this VR has a
// 32-bit length (PS3.5 Table 7.1-1).
func longLength(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

var vrCache sync.Map // Tag → string

// DictionaryVR returns the VR of a tag from the PS3.6 data dictionary, as
// Implicit VR data sets need (PS3.5 §7.1.3): "UN" for private and unknown
// tags, "UL" for group lengths, the first VR where the dictionary lists
// several.
func DictionaryVR(t Tag) string {
	if v, ok := vrCache.Load(t); ok {
		return v.(string)
	}
	vr := "UN"
	switch {
	case t.Element() == 0:
		vr = "UL"
	case t.Group()&1 == 1:
	default:
		if info, err := tag.Find(tag.Tag{Group: t.Group(), Element: t.Element()}); err == nil && len(info.VRs) > 0 && KnownVR(info.VRs[0]) {
			vr = info.VRs[0]
		}
	}
	vrCache.Store(t, vr)
	return vr
}

var keywordCache sync.Map // string → Tag

// LookupKeyword returns the tag of a PS3.6 keyword ("PatientName").
func LookupKeyword(keyword string) (Tag, bool) {
	if v, ok := keywordCache.Load(keyword); ok {
		return v.(Tag), true
	}
	if keyword == "" {
		return 0, false
	}
	info, err := tag.FindByKeyword(keyword)
	if err != nil || info.Keyword != keyword {
		return 0, false
	}
	t := dicomfile.NewTag(info.Tag.Group, info.Tag.Element)
	keywordCache.Store(keyword, t)
	return t, true
}

// Keyword returns the PS3.6 keyword of a tag, or "".
func Keyword(t Tag) string {
	info, err := tag.Find(tag.Tag{Group: t.Group(), Element: t.Element()})
	if err != nil {
		return ""
	}
	return info.Keyword
}
