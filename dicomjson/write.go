package dicomjson

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Write encodes ds as an Explicit VR Little Endian data set (PS3.5 §7.1.2,
// transfer syntax 1.2.840.10008.1.2.1), elements in ascending tag order,
// sequences and items of undefined length ended by delimitation items
// (PS3.5 §7.5.2). Values given only by BulkDataURI cannot be encoded:
// Write returns an error wrapping ErrBulkData.
func Write(w io.Writer, ds DataSet) error {
	b, err := AppendExplicitLE(nil, ds)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// AppendExplicitLE appends the Explicit VR Little Endian encoding of ds.
func AppendExplicitLE(dst []byte, ds DataSet) ([]byte, error) {
	return appendDataSet(dst, ds, 0)
}

func appendDataSet(dst []byte, ds DataSet, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: sequences nested deeper than %d", ErrInvalid, maxDepth)
	}
	var err error
	for _, t := range ds.Tags() {
		if t.Group() == 0xFFFE {
			return nil, fmt.Errorf("%w: %v is not an attribute", ErrInvalid, t)
		}
		dst, err = appendElement(dst, t, ds[t], depth)
		if err != nil {
			return nil, fmt.Errorf("%v: %w", t, err)
		}
	}
	return dst, nil
}

func appendElement(dst []byte, t Tag, a *Attribute, depth int) ([]byte, error) {
	k := kindOf(a.VR)
	if k == kindUnknown {
		return nil, fmt.Errorf("%w: unknown VR %q", ErrInvalid, a.VR)
	}
	if a.BulkDataURI != "" {
		return nil, fmt.Errorf("%w: %s", ErrBulkData, a.BulkDataURI)
	}
	if k == kindSQ {
		dst = appendHeader(dst, t, "SQ", 0xFFFFFFFF)
		for _, it := range a.Items {
			dst = binary.LittleEndian.AppendUint32(dst, 0xE000FFFE) // (FFFE,E000)
			dst = binary.LittleEndian.AppendUint32(dst, 0xFFFFFFFF)
			var err error
			if dst, err = appendDataSet(dst, it, depth+1); err != nil {
				return nil, err
			}
			dst = binary.LittleEndian.AppendUint32(dst, 0xE00DFFFE) // (FFFE,E00D)
			dst = binary.LittleEndian.AppendUint32(dst, 0)
		}
		dst = binary.LittleEndian.AppendUint32(dst, 0xE0DDFFFE) // (FFFE,E0DD)
		return binary.LittleEndian.AppendUint32(dst, 0), nil
	}
	v, err := encodeValue(a, k)
	if err != nil {
		return nil, err
	}
	if len(v)%2 == 1 {
		// Values have even length (PS3.5 §7.1.1): UI and binary values
		// pad with NUL, text with a space.
		pad := byte(' ')
		if a.VR == "UI" || k == kindBinary {
			pad = 0
		}
		v = append(v, pad)
	}
	if !longLength(a.VR) && len(v) > 0xFFFE {
		return nil, fmt.Errorf("%w: %s value of %d bytes exceeds the 16-bit length", ErrInvalid, a.VR, len(v))
	}
	if int64(len(v)) >= 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: value too long", ErrInvalid)
	}
	dst = appendHeader(dst, t, a.VR, uint32(len(v)))
	return append(dst, v...), nil
}

func appendHeader(dst []byte, t Tag, vr string, length uint32) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, t.Group())
	dst = binary.LittleEndian.AppendUint16(dst, t.Element())
	dst = append(dst, vr...)
	if longLength(vr) {
		dst = append(dst, 0, 0)
		return binary.LittleEndian.AppendUint32(dst, length)
	}
	return binary.LittleEndian.AppendUint16(dst, uint16(length))
}

func encodeValue(a *Attribute, k vrKind) ([]byte, error) {
	switch k {
	case kindBinary:
		return append([]byte(nil), a.InlineBinary...), nil
	case kindPN:
		names := make([]string, len(a.PersonNames))
		for i, p := range a.PersonNames {
			names[i] = p.String()
		}
		return []byte(strings.Join(names, `\`)), nil
	case kindString, kindDecimal:
		for _, s := range a.Strings {
			if strings.Contains(s, `\`) && a.VR != "LT" && a.VR != "ST" && a.VR != "UT" && a.VR != "UR" {
				return nil, fmt.Errorf("%w: %s value contains the delimiter '\\'", ErrInvalid, a.VR)
			}
		}
		return []byte(strings.Join(a.Strings, `\`)), nil
	case kindAT:
		var out []byte
		for _, s := range a.Strings {
			t, err := ParseTag(s)
			if err != nil {
				return nil, err
			}
			out = binary.LittleEndian.AppendUint16(out, t.Group())
			out = binary.LittleEndian.AppendUint16(out, t.Element())
		}
		return out, nil
	case kindNumber:
		var out []byte
		for _, s := range a.Strings {
			if s == "" {
				return nil, fmt.Errorf("%w: %s cannot encode a null value", ErrInvalid, a.VR)
			}
			var err error
			if out, err = appendNumber(out, a.VR, s); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: VR %s", ErrInvalid, a.VR)
}

func appendNumber(dst []byte, vr, s string) ([]byte, error) {
	le := binary.LittleEndian
	bad := func(err error) ([]byte, error) {
		return nil, fmt.Errorf("%w: %s value %q: %v", ErrInvalid, vr, s, err)
	}
	switch vr {
	case "FL", "FD":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad(err)
		}
		if vr == "FL" {
			return le.AppendUint32(dst, math.Float32bits(float32(f))), nil
		}
		return le.AppendUint64(dst, math.Float64bits(f)), nil
	case "US", "UL", "UV":
		bits := map[string]int{"US": 16, "UL": 32, "UV": 64}[vr]
		u, err := strconv.ParseUint(s, 10, bits)
		if err != nil {
			return bad(err)
		}
		switch bits {
		case 16:
			return le.AppendUint16(dst, uint16(u)), nil
		case 32:
			return le.AppendUint32(dst, uint32(u)), nil
		}
		return le.AppendUint64(dst, u), nil
	default: // SS, SL, SV
		bits := map[string]int{"SS": 16, "SL": 32, "SV": 64}[vr]
		n, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			return bad(err)
		}
		switch bits {
		case 16:
			return le.AppendUint16(dst, uint16(n)), nil
		case 32:
			return le.AppendUint32(dst, uint32(n)), nil
		}
		return le.AppendUint64(dst, uint64(n)), nil
	}
}
