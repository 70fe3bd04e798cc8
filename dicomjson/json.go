package dicomjson

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// maxDepth bounds sequence nesting on input; real data sets nest a few
// levels, and the bound keeps hostile input from exhausting the stack.
const maxDepth = 32

// MarshalJSON implements json.Marshaler.
func (ds DataSet) MarshalJSON() ([]byte, error) { return ds.AppendJSON(nil), nil }

// AppendJSON appends the JSON object of ds (PS3.18 §F.2) to dst, keys in
// ascending tag order (§F.2.1.1 asks for them sorted).
func (ds DataSet) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, t := range ds.Tags() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = appendTag(dst, t)
		dst = append(dst, `":`...)
		dst = ds[t].appendJSON(dst)
	}
	return append(dst, '}')
}

// AppendArray appends a JSON array of data sets, the body of QIDO-RS and
// WADO-RS metadata responses (PS3.18 §F.2).
func AppendArray(dst []byte, sets []DataSet) []byte {
	dst = append(dst, '[')
	for i, ds := range sets {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = ds.AppendJSON(dst)
	}
	return append(dst, ']')
}

func (a *Attribute) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"vr":"`...)
	dst = append(dst, a.VR...)
	dst = append(dst, '"')
	switch {
	case a.BulkDataURI != "":
		dst = append(dst, `,"BulkDataURI":`...)
		return append(appendString(dst, a.BulkDataURI), '}')
	case a.InlineBinary != nil:
		dst = append(dst, `,"InlineBinary":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, a.InlineBinary)
		return append(dst, `"}`...)
	case len(a.Items) > 0:
		dst = append(dst, `,"Value":[`...)
		for i, it := range a.Items {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = it.AppendJSON(dst)
		}
		return append(dst, "]}"...)
	case len(a.PersonNames) > 0:
		dst = append(dst, `,"Value":[`...)
		for i, p := range a.PersonNames {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendPersonName(dst, p)
		}
		return append(dst, "]}"...)
	case len(a.Strings) > 0:
		dst = append(dst, `,"Value":[`...)
		k := kindOf(a.VR)
		for i, s := range a.Strings {
			if i > 0 {
				dst = append(dst, ',')
			}
			switch {
			case s == "":
				// An empty value in a multi-valued attribute is null
				// (PS3.18 §F.2.5).
				dst = append(dst, "null"...)
			case (k == kindNumber || k == kindDecimal) && isJSONNumber(s):
				dst = append(dst, s...)
			default:
				dst = appendString(dst, s)
			}
		}
		return append(dst, "]}"...)
	}
	return append(dst, '}')
}

// appendPersonName writes a PN value as an object of its non-empty
// component groups (PS3.18 §F.2.2); a value with none is null.
func appendPersonName(dst []byte, p PersonName) []byte {
	if p == (PersonName{}) {
		return append(dst, "null"...)
	}
	dst = append(dst, '{')
	sep := false
	for _, g := range [...]struct{ k, v string }{{"Alphabetic", p.Alphabetic}, {"Ideographic", p.Ideographic}, {"Phonetic", p.Phonetic}} {
		if g.v == "" {
			continue
		}
		if sep {
			dst = append(dst, ',')
		}
		sep = true
		dst = append(dst, '"')
		dst = append(dst, g.k...)
		dst = append(dst, `":`...)
		dst = appendString(dst, g.v)
	}
	return append(dst, '}')
}

// appendString writes s as a JSON string (RFC 8259 §7); invalid UTF-8 is
// replaced by U+FFFD so the output is always valid JSON.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// isJSONNumber reports whether s is a number in the grammar of RFC 8259 §6.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(s)
}

// Unmarshal reads one data set in the DICOM JSON Model.
func Unmarshal(data []byte) (DataSet, error) {
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a data set is a JSON object", ErrInvalid)
	}
	return dataSetFromJSON(obj, 0)
}

// UnmarshalArray reads a JSON array of data sets, the form of QIDO-RS and
// metadata responses and of STOW-RS JSON requests.
func UnmarshalArray(data []byte) ([]DataSet, error) {
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: expected a JSON array of data sets", ErrInvalid)
	}
	out := make([]DataSet, 0, len(arr))
	for i, e := range arr {
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: element %d of the array is not an object", ErrInvalid, i)
		}
		ds, err := dataSetFromJSON(obj, 0)
		if err != nil {
			return nil, fmt.Errorf("data set %d: %w", i, err)
		}
		out = append(out, ds)
	}
	return out, nil
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON value", ErrInvalid)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the JSON value", ErrInvalid)
	}
	return v, nil
}

func dataSetFromJSON(obj map[string]any, depth int) (DataSet, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: sequences nested deeper than %d", ErrInvalid, maxDepth)
	}
	ds := make(DataSet, len(obj))
	for key, v := range obj {
		t, err := ParseTag(key)
		if err != nil {
			return nil, err
		}
		if _, dup := ds[t]; dup {
			// "0010001a" and "0010001A" name the same attribute.
			return nil, fmt.Errorf("%w: attribute %s appears twice", ErrInvalid, key)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: attribute %s is not an object", ErrInvalid, key)
		}
		a, err := attributeFromJSON(m, depth)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", key, err)
		}
		ds[t] = a
	}
	return ds, nil
}

func attributeFromJSON(m map[string]any, depth int) (*Attribute, error) {
	vr, ok := m["vr"].(string)
	if !ok {
		return nil, fmt.Errorf("%w: missing \"vr\"", ErrInvalid)
	}
	k := kindOf(vr)
	if k == kindUnknown {
		return nil, fmt.Errorf("%w: unknown VR %q", ErrInvalid, vr)
	}
	a := &Attribute{VR: vr}
	n := 0
	for key, v := range m {
		switch key {
		case "vr":
		case "BulkDataURI":
			n++
			s, ok := v.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("%w: BulkDataURI is not a URI string", ErrInvalid)
			}
			a.BulkDataURI = s
		case "InlineBinary":
			n++
			s, ok := v.(string)
			if !ok || k != kindBinary {
				return nil, fmt.Errorf("%w: InlineBinary is for OB, OD, OF, OL, OV, OW and UN only, as a base64 string", ErrInvalid)
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("%w: InlineBinary: %v", ErrInvalid, err)
			}
			a.InlineBinary = b
		case "Value":
			n++
			arr, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("%w: Value is not an array", ErrInvalid)
			}
			if err := a.setValues(k, arr, depth); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unknown member %q", ErrInvalid, key)
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("%w: more than one of Value, BulkDataURI, InlineBinary", ErrInvalid)
	}
	return a, nil
}

func (a *Attribute) setValues(k vrKind, arr []any, depth int) error {
	if len(arr) == 0 {
		return nil
	}
	switch k {
	case kindBinary:
		return fmt.Errorf("%w: VR %s has no Value, only InlineBinary or BulkDataURI", ErrInvalid, a.VR)
	case kindSQ:
		a.Items = make([]DataSet, 0, len(arr))
		for i, e := range arr {
			obj, ok := e.(map[string]any)
			if !ok {
				return fmt.Errorf("%w: item %d is not an object", ErrInvalid, i)
			}
			it, err := dataSetFromJSON(obj, depth+1)
			if err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
			a.Items = append(a.Items, it)
		}
		return nil
	case kindPN:
		a.PersonNames = make([]PersonName, 0, len(arr))
		for _, e := range arr {
			var p PersonName
			switch e := e.(type) {
			case nil:
			case map[string]any:
				for g, v := range e {
					s, ok := v.(string)
					if !ok {
						return fmt.Errorf("%w: PN component group %q is not a string", ErrInvalid, g)
					}
					switch g {
					case "Alphabetic":
						p.Alphabetic = s
					case "Ideographic":
						p.Ideographic = s
					case "Phonetic":
						p.Phonetic = s
					default:
						return fmt.Errorf("%w: PN has no component group %q", ErrInvalid, g)
					}
				}
			default:
				return fmt.Errorf("%w: a PN value is an object", ErrInvalid)
			}
			a.PersonNames = append(a.PersonNames, p)
		}
		return nil
	}
	a.Strings = make([]string, 0, len(arr))
	for _, e := range arr {
		s, err := scalar(a.VR, k, e)
		if err != nil {
			return err
		}
		a.Strings = append(a.Strings, s)
	}
	return nil
}

// scalar checks one value of a string, number or AT attribute.
func scalar(vr string, k vrKind, e any) (string, error) {
	if e == nil {
		return "", nil
	}
	switch k {
	case kindString:
		s, ok := e.(string)
		if !ok {
			return "", fmt.Errorf("%w: a %s value is a string", ErrInvalid, vr)
		}
		return s, nil
	case kindAT:
		s, ok := e.(string)
		if !ok {
			return "", fmt.Errorf("%w: an AT value is a string", ErrInvalid)
		}
		if _, err := ParseTag(s); err != nil {
			return "", err
		}
		return s, nil
	case kindDecimal:
		// IS and DS are JSON numbers; strings are accepted as several
		// writers send them so to keep the encoded digits.
		var s string
		switch e := e.(type) {
		case json.Number:
			s = e.String()
		case string:
			s = e
		default:
			return "", fmt.Errorf("%w: a %s value is a number", ErrInvalid, vr)
		}
		if vr == "IS" {
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				if f, ferr := strconv.ParseFloat(s, 64); ferr != nil || f != math.Trunc(f) {
					return "", fmt.Errorf("%w: IS value %q is not an integer", ErrInvalid, s)
				}
			}
		} else if f, err := strconv.ParseFloat(s, 64); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("%w: DS value %q is not a decimal number", ErrInvalid, s)
		}
		return s, nil
	case kindNumber:
		n, ok := e.(json.Number)
		if !ok {
			return "", fmt.Errorf("%w: a %s value is a number", ErrInvalid, vr)
		}
		if err := checkRange(vr, n.String()); err != nil {
			return "", err
		}
		return n.String(), nil
	}
	return "", fmt.Errorf("%w: VR %s", ErrInvalid, vr)
}

// checkRange checks that an integer VR's value fits its binary width
// (PS3.5 Table 6.2-1).
func checkRange(vr, s string) error {
	bits, signed := 0, false
	switch vr {
	case "FL":
		f, err := strconv.ParseFloat(s, 32)
		if err != nil && !math.IsInf(f, 0) {
			return fmt.Errorf("%w: FL value %s", ErrInvalid, s)
		}
		if math.IsInf(f, 0) {
			return fmt.Errorf("%w: FL value %s out of range", ErrInvalid, s)
		}
		return nil
	case "FD":
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return fmt.Errorf("%w: FD value %s out of range", ErrInvalid, s)
		}
		return nil
	case "US":
		bits = 16
	case "SS":
		bits, signed = 16, true
	case "UL":
		bits = 32
	case "SL":
		bits, signed = 32, true
	case "UV":
		bits = 64
	case "SV":
		bits, signed = 64, true
	}
	var err error
	if signed {
		_, err = strconv.ParseInt(s, 10, bits)
	} else {
		_, err = strconv.ParseUint(s, 10, bits)
	}
	if err != nil {
		return fmt.Errorf("%w: %s value %s is not an integer in range", ErrInvalid, vr, s)
	}
	return nil
}
