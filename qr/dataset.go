package qr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/imaginghub/imaginghub/dicomnet"
)

// ErrMalformedIdentifier: the identifier of a C-FIND, C-MOVE or C-GET
// request is not a well-formed data set in the negotiated transfer syntax.
var ErrMalformedIdentifier = errors.New("qr: malformed identifier")

// MaxIdentifierLength bounds a request identifier. A query is a few
// hundred bytes of keys; 1 MiB is far above any real one.
const MaxIdentifierLength = 1 << 20

// maxDepth bounds the nesting of sequences in an identifier.
const maxDepth = 16

// tag is a data element tag as group<<16 | element.
type tag uint32

func (t tag) String() string { return fmt.Sprintf("(%04X,%04X)", uint16(t>>16), uint16(t)) }

const (
	tagItem              tag = 0xFFFEE000
	tagItemDelimitation  tag = 0xFFFEE00D
	tagSequenceDelimiter tag = 0xFFFEE0DD
	undefinedLength          = 0xFFFFFFFF

	tagSpecificCharacterSet  tag = 0x00080005
	tagQueryRetrieveLevel    tag = 0x00080052
	tagRetrieveAETitle       tag = 0x00080054
	tagInstanceAvailability  tag = 0x00080056
	tagFailedSOPInstanceUIDs tag = 0x00080058
)

// element is one top-level element of an identifier. Nested sequence
// content is skipped: Q/R keys are attributes of the entity, and sequence
// matching is not supported (they are echoed back empty).
type element struct {
	tag   tag
	vr    string // as sent in Explicit VR; from the dictionary for Implicit VR
	value []byte
}

// str returns the value as text without its padding (PS3.5 §6.2: trailing
// spaces, and the NUL that pads a UI).
func (e element) str() string {
	return strings.TrimRight(string(e.value), " \x00")
}

// explicitVR reports whether ts encodes VRs explicitly. Only the two
// uncompressed little endian syntaxes are negotiated for Q/R.
func explicitVR(ts string) bool { return ts != dicomnet.ImplicitVRLittleEndian }

// longVR lists the VRs with a 2-byte reserved field and a 4-byte length in
// Explicit VR (PS3.5 §7.1.2, Table 7.1-1).
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// parseIdentifier decodes the top-level elements of an identifier encoded
// in ts (Implicit or Explicit VR Little Endian, PS3.5 §7.1).
func parseIdentifier(b []byte, ts string) ([]element, error) {
	p := parser{b: b, explicit: explicitVR(ts)}
	var out []element
	for p.off < len(p.b) {
		e, err := p.element(0)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

type parser struct {
	b        []byte
	off      int
	explicit bool
}

func (p *parser) fail(format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d: %s", ErrMalformedIdentifier, p.off, fmt.Sprintf(format, args...))
}

func (p *parser) u16() (uint16, bool) {
	if len(p.b)-p.off < 2 {
		return 0, false
	}
	v := binary.LittleEndian.Uint16(p.b[p.off:])
	p.off += 2
	return v, true
}

func (p *parser) u32() (uint32, bool) {
	if len(p.b)-p.off < 4 {
		return 0, false
	}
	v := binary.LittleEndian.Uint32(p.b[p.off:])
	p.off += 4
	return v, true
}

func (p *parser) tag() (tag, bool) {
	g, ok1 := p.u16()
	e, ok2 := p.u16()
	return tag(uint32(g)<<16 | uint32(e)), ok1 && ok2
}

// element reads one data element; at depth > 0 it is inside an item.
func (p *parser) element(depth int) (element, error) {
	t, ok := p.tag()
	if !ok {
		return element{}, p.fail("truncated tag")
	}
	if t>>16 == 0xFFFE {
		return element{}, p.fail("unexpected delimiter %v", t)
	}
	e := element{tag: t}
	var length uint32
	if p.explicit {
		if len(p.b)-p.off < 2 {
			return element{}, p.fail("truncated VR")
		}
		e.vr = string(p.b[p.off : p.off+2])
		p.off += 2
		if e.vr[0] < 'A' || e.vr[0] > 'Z' || e.vr[1] < 'A' || e.vr[1] > 'Z' {
			return element{}, p.fail("invalid VR %q", e.vr)
		}
		if longVR(e.vr) {
			p.off += 2 // reserved
			if length, ok = p.u32(); !ok {
				return element{}, p.fail("truncated length")
			}
		} else {
			l, ok := p.u16()
			if !ok {
				return element{}, p.fail("truncated length")
			}
			length = uint32(l)
		}
	} else {
		if length, ok = p.u32(); !ok {
			return element{}, p.fail("truncated length")
		}
		e.vr = dictionary[t].vr
	}
	if length == undefinedLength {
		// Only a sequence (or UN holding one, PS3.5 §6.2.2) may have an
		// undefined length.
		if p.explicit && e.vr != "SQ" && e.vr != "UN" {
			return element{}, p.fail("undefined length on VR %s", e.vr)
		}
		if err := p.skipSequence(depth + 1); err != nil {
			return element{}, err
		}
		e.vr = "SQ"
		return e, nil
	}
	if uint64(length) > uint64(len(p.b)-p.off) {
		return element{}, p.fail("length %d of %v beyond the data set", length, t)
	}
	e.value = p.b[p.off : p.off+int(length)]
	p.off += int(length)
	if e.vr == "SQ" && len(e.value) > 0 {
		// Validate the nested items of a defined-length sequence too.
		sub := parser{b: e.value, explicit: p.explicit}
		if err := sub.skipItems(depth+1, false); err != nil {
			return element{}, err
		}
		e.value = nil
	}
	return e, nil
}

// skipSequence skips the items of an undefined-length sequence up to and
// including its Sequence Delimitation Item (PS3.5 §7.5).
func (p *parser) skipSequence(depth int) error {
	return p.skipItems(depth, true)
}

func (p *parser) skipItems(depth int, delimited bool) error {
	if depth > maxDepth {
		return p.fail("sequences nested too deeply")
	}
	for p.off < len(p.b) {
		t, ok := p.tag()
		if !ok {
			return p.fail("truncated item")
		}
		length, ok := p.u32()
		if !ok {
			return p.fail("truncated item length")
		}
		switch t {
		case tagSequenceDelimiter:
			if !delimited {
				return p.fail("sequence delimiter in a defined-length sequence")
			}
			return nil
		case tagItem:
		default:
			return p.fail("%v where an item was expected", t)
		}
		if length == undefinedLength {
			if err := p.skipItemElements(depth); err != nil {
				return err
			}
			continue
		}
		if uint64(length) > uint64(len(p.b)-p.off) {
			return p.fail("item length %d beyond the data set", length)
		}
		sub := parser{b: p.b[p.off : p.off+int(length)], explicit: p.explicit}
		for sub.off < len(sub.b) {
			if _, err := sub.element(depth); err != nil {
				return err
			}
		}
		p.off += int(length)
	}
	if delimited {
		return p.fail("sequence without delimiter")
	}
	return nil
}

// skipItemElements skips the elements of an undefined-length item up to
// its Item Delimitation Item.
func (p *parser) skipItemElements(depth int) error {
	for {
		if len(p.b)-p.off >= 8 && tag(uint32(binary.LittleEndian.Uint16(p.b[p.off:]))<<16|uint32(binary.LittleEndian.Uint16(p.b[p.off+2:]))) == tagItemDelimitation {
			p.off += 8
			return nil
		}
		if p.off >= len(p.b) {
			return p.fail("item without delimiter")
		}
		if _, err := p.element(depth); err != nil {
			return err
		}
	}
}

// encoder writes a flat data set (no sequence content) in Implicit or
// Explicit VR Little Endian.
type encoder struct {
	explicit bool
	elems    []element
}

func (e *encoder) add(t tag, vr string, value string) {
	e.elems = append(e.elems, element{tag: t, vr: vr, value: []byte(value)})
}

// bytes returns the elements in ascending tag order (PS3.5 §7.1), each
// value padded to even length: UI with NUL, other text with a space
// (PS3.5 §6.2).
func (e *encoder) bytes() []byte {
	slices.SortStableFunc(e.elems, func(a, b element) int { return int(int64(a.tag) - int64(b.tag)) })
	e.elems = slices.CompactFunc(e.elems, func(a, b element) bool { return a.tag == b.tag })
	var out []byte
	for _, el := range e.elems {
		v := el.value
		if len(v)%2 == 1 {
			pad := byte(' ')
			if el.vr == "UI" || el.vr == "OB" || el.vr == "UN" {
				pad = 0
			}
			v = append(slices.Clip(v), pad)
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(el.tag>>16))
		out = binary.LittleEndian.AppendUint16(out, uint16(el.tag))
		if e.explicit {
			vr := el.vr
			if vr == "" {
				vr = "UN"
			}
			out = append(out, vr...)
			if longVR(vr) {
				out = append(out, 0, 0)
				out = binary.LittleEndian.AppendUint32(out, uint32(len(v)))
			} else {
				out = binary.LittleEndian.AppendUint16(out, uint16(len(v)))
			}
		} else {
			out = binary.LittleEndian.AppendUint32(out, uint32(len(v)))
		}
		out = append(out, v...)
	}
	return out
}

// latin1ToUTF8 converts ISO 8859-1 text (ISO_IR 100) to UTF-8: each byte
// is the code point of the same value.
func latin1ToUTF8(s string) string {
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// decodeText turns a request's text value into UTF-8, as the catalog
// holds it, after the request's Specific Character Set (0008,0005). With
// ISO_IR 100 the bytes are Latin-1; without a character set, or with
// ISO_IR 192, they are taken as they are. Other character sets are
// matched on their bytes, which is exact for their ASCII subset.
func decodeText(s, charset string) string {
	first, _, _ := strings.Cut(charset, `\`)
	if strings.TrimSpace(first) == "ISO_IR 100" {
		return latin1ToUTF8(s)
	}
	return s
}
