package hl7

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Sentinel errors of Parse, wrapped in a *ParseError.
var (
	ErrNoMSH         = errors.New("hl7: message does not start with an MSH segment")
	ErrDelimiters    = errors.New("hl7: invalid delimiters in MSH-1/MSH-2")
	ErrSegment       = errors.New("hl7: malformed segment")
	ErrRequiredField = errors.New("hl7: required MSH field missing")
)

// ParseError describes why Parse rejected a message, with what could be
// read of its header so that a receiver can still address a reject (AR)
// to the sender (HL7 2.5.1 §2.9.2: the receiver answers even a message it
// cannot accept, when it can tell whom to answer).
type ParseError struct {
	// Header holds the MSH fields that were readable, or nil when not even
	// "MSH" and a field separator were found: then there is nobody to
	// address a reply to.
	Header   *Header
	Location Location  // where the problem is, for ERR-2
	Code     ErrorCode // HL7 table 0357 code for ERR-3
	Err      error     // one of the sentinel errors above, ErrCharset or ErrEncoding
	Detail   string
}

func (e *ParseError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

func (e *ParseError) Unwrap() error { return e.Err }

// Message is a parsed HL7 v2 message. Its text is UTF-8 whatever MSH-18
// declared, with segments ended by CR. A Message is read-only and safe for
// concurrent use.
type Message struct {
	raw      []byte
	d        Delimiters
	dec      decoder
	header   Header
	segments []*Segment
}

// Segment is one segment of a Message.
type Segment struct {
	name   string
	text   string
	fields []string // fields[i] is field i as sent (escaped); fields[0] is the name
	msg    *Message
}

// Parse parses one HL7 v2 message. Segments may end with CR (the standard,
// HL7 2.5.1 §2.5.1), LF or CRLF; leading and trailing blank lines are
// ignored. Text is decoded from the MSH-18 character set to UTF-8. MSH-9
// (message type), MSH-10, MSH-11 and MSH-12 must be present, as the
// acknowledgment rules of §2.9.2 need them; their absence is reported as
// 0357 code 101 with the partial header. Errors are *ParseError.
func Parse(raw []byte) (*Message, error) {
	data := bytes.TrimLeft(raw, "\r\n \t")
	if len(data) < 4 || string(data[:3]) != "MSH" {
		return nil, &ParseError{Err: ErrNoMSH, Code: SegmentSequenceError, Location: Location{Segment: "MSH"}}
	}
	fs := data[3]
	if !validDelimiter(fs) {
		return nil, &ParseError{Err: ErrDelimiters, Code: DataTypeError, Location: Location{Segment: "MSH", Field: 1},
			Detail: fmt.Sprintf("MSH-1 field separator %q is not usable", fs)}
	}
	lines := splitSegments(data)
	mshLine := lines[0]

	// MSH-2 runs up to the next field separator.
	enc, _, _ := bytes.Cut(mshLine[4:], []byte{fs})
	d, derr := parseDelimiters(fs, string(enc))
	m := &Message{raw: raw, d: d}
	if derr != nil {
		// Use the recommended encoding characters to read what we can of
		// MSH for the reject.
		m.d = Delimiters{Field: fs}.orDefault()
		m.dec, _ = newDecoder("")
		msh := m.newSegment(m.dec.decodeLenient(mshLine))
		h := msh.header()
		return nil, &ParseError{Header: &h, Err: ErrDelimiters, Code: DataTypeError, Location: Location{Segment: "MSH", Field: 2}, Detail: derr.Error()}
	}

	// MSH-18 is read from the raw bytes, which is safe: delimiters and the
	// MSH fields up to MSH-18 are ASCII in every supported character set.
	charset := rawField(mshLine, d, 18)
	dec, cerr := newDecoder(charset)
	if cerr != nil {
		m.dec, _ = newDecoder("")
		h := m.newSegment(m.dec.decodeLenient(mshLine)).header()
		return nil, &ParseError{Header: &h, Err: ErrCharset, Code: TableValueNotFound, Location: Location{Segment: "MSH", Field: 18}, Detail: fmt.Sprintf("MSH-18 %q", charset)}
	}
	m.dec = dec

	m.segments = make([]*Segment, 0, len(lines))
	// Most messages are valid UTF-8 throughout: one conversion then serves
	// every segment, which are substrings of it. Segment ends are ASCII,
	// so each line is valid UTF-8 too and decodes to the same text.
	var whole string
	if dec.identity && utf8.Valid(data) {
		whole = string(data)
	}
	for _, line := range lines {
		var txt string
		ok := true
		if whole != "" {
			start := cap(data) - cap(line) // line is a slice of data
			txt = whole[start : start+len(line)]
		} else {
			txt, ok = dec.decode(line)
		}
		if !ok {
			h := m.newSegment(dec.decodeLenient(mshLine)).header()
			return nil, &ParseError{Header: &h, Err: ErrEncoding, Code: DataTypeError, Location: Location{Segment: segmentName(line, fs)}, Detail: fmt.Sprintf("not valid %s", charset)}
		}
		seg := m.newSegment(txt)
		if len(seg.name) != 3 || !isSegmentID(seg.name) {
			h := m.segments[0].header()
			// The bad ID is not echoed into ERR-2: it may be any bytes.
			return nil, &ParseError{Header: &h, Err: ErrSegment, Code: SegmentSequenceError,
				Detail: fmt.Sprintf("segment %d has no valid segment ID", len(m.segments)+1)}
		}
		m.segments = append(m.segments, seg)
	}
	m.header = m.segments[0].header()
	if loc, ok := m.header.missingRequired(); ok {
		h := m.header
		return nil, &ParseError{Header: &h, Err: ErrRequiredField, Code: RequiredFieldMissing, Location: loc, Detail: loc.String()}
	}
	return m, nil
}

// decodeLenient decodes a segment for a best-effort partial header, never
// failing: bytes invalid in the declared set are read as Latin-1.
func (dec decoder) decodeLenient(b []byte) string {
	if s, ok := dec.decode(b); ok {
		return s
	}
	return decodeLatin1(b)
}

// splitSegments splits on CR, LF or CRLF, dropping empty lines.
func splitSegments(data []byte) [][]byte {
	var lines [][]byte
	for len(data) > 0 {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			lines = append(lines, data)
			break
		}
		if i > 0 {
			lines = append(lines, data[:i])
		}
		data = data[i+1:]
	}
	return lines
}

// segmentName returns the segment ID of a raw segment, or "" when it is
// not a valid one (it is echoed into ERR-2).
func segmentName(line []byte, fs byte) string {
	name, _, _ := bytes.Cut(line, []byte{fs})
	if len(name) != 3 || !isSegmentID(string(name)) {
		return ""
	}
	return string(name)
}

// rawField returns MSH-n's first repetition, first component, unescaped,
// from the undecoded MSH line.
func rawField(msh []byte, d Delimiters, n int) string {
	// "MSH" is part 0 and MSH-2 part 1: MSH-n is part n-1.
	if n < 2 {
		return ""
	}
	v := msh
	for range n - 1 {
		i := bytes.IndexByte(v, d.Field)
		if i < 0 {
			return ""
		}
		v = v[i+1:]
	}
	v, _, _ = bytes.Cut(v, []byte{d.Field})
	if d.Repetition != 0 {
		v, _, _ = bytes.Cut(v, []byte{d.Repetition})
	}
	if d.Component != 0 {
		v, _, _ = bytes.Cut(v, []byte{d.Component})
	}
	return unescape(string(v), d, false)
}

func (m *Message) newSegment(text string) *Segment {
	s := &Segment{text: text, msg: m}
	fs := m.d.Field
	n := strings.Count(text, string(fs)) + 1
	isMSH := strings.HasPrefix(text, "MSH") && (len(text) == 3 || text[3] == fs)
	if isMSH {
		// MSH-1 is the field separator itself and MSH-2 the encoding
		// characters (HL7 2.5.1 §2.15.9.1-2), so positions shift by one.
		n++
	}
	s.fields = make([]string, 0, n)
	rest := text
	for {
		f, after, found := strings.Cut(rest, string(fs))
		s.fields = append(s.fields, f)
		if isMSH && len(s.fields) == 1 {
			s.fields = append(s.fields, fieldSeparators[fs])
		}
		if !found {
			break
		}
		rest = after
	}
	s.name = s.fields[0]
	return s
}

// fieldSeparators holds MSH-1 as a string for every byte, so that no
// segment allocates one.
var fieldSeparators = func() (t [256]string) {
	for i := range t {
		t[i] = string([]byte{byte(i)})
	}
	return t
}()

// Header returns the message's MSH fields.
func (m *Message) Header() Header { return m.header }

// Delimiters returns the delimiters the message declared.
func (m *Message) Delimiters() Delimiters { return m.d }

// Bytes returns the message as UTF-8 text with CR segment terminators.
func (m *Message) Bytes() []byte {
	var b bytes.Buffer
	for _, s := range m.segments {
		b.WriteString(s.text)
		b.WriteByte('\r')
	}
	return b.Bytes()
}

// Raw returns the bytes Parse was given.
func (m *Message) Raw() []byte { return m.raw }

// All returns every segment in message order.
func (m *Message) All() []*Segment { return m.segments }

// Segments returns the segments with the given ID, in message order.
func (m *Message) Segments(name string) []*Segment {
	var out []*Segment
	for _, s := range m.segments {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// Segment returns the first segment with the given ID, or nil.
func (m *Message) Segment(name string) *Segment {
	for _, s := range m.segments {
		if s.name == name {
			return s
		}
	}
	return nil
}

// Get returns the unescaped value at a location such as "PID-3.1",
// "PID-3(2).4" or "OBX(2)-5"; see Location. It returns "" when the
// location is malformed or absent from the message.
func (m *Message) Get(loc string) string {
	l, err := ParseLocation(loc)
	if err != nil {
		return ""
	}
	return m.At(l)
}

// At returns the unescaped value at l, or "".
func (m *Message) At(l Location) string {
	n := max(l.SegmentRepetition, 1)
	for _, s := range m.segments {
		if s.name != l.Segment {
			continue
		}
		if n--; n > 0 {
			continue
		}
		if l.Field == 0 {
			return s.text
		}
		reps := s.Repetitions(l.Field)
		r := max(l.FieldRepetition, 1)
		if r > len(reps) {
			return ""
		}
		v := reps[r-1]
		switch {
		case l.Component == 0:
			return v.String()
		case l.SubComponent == 0:
			return v.Component(l.Component)
		default:
			return v.SubComponent(l.Component, l.SubComponent)
		}
	}
	return ""
}

// AckCode returns MSA-1 of an acknowledgment, or "" if there is no MSA.
func (m *Message) AckCode() AckCode { return AckCode(m.Get("MSA-1")) }

// Name returns the segment ID, such as "PID".
func (s *Segment) Name() string { return s.name }

// String returns the segment as text, escapes intact.
func (s *Segment) String() string { return s.text }

// Len returns the position of the last field present.
func (s *Segment) Len() int { return len(s.fields) - 1 }

// Raw returns field n exactly as sent, repetitions and escapes intact.
func (s *Segment) Raw(n int) string {
	if n < 1 || n >= len(s.fields) {
		return ""
	}
	return s.fields[n]
}

// Repetitions returns the repetitions of field n; an empty field has none.
// MSH-1 and MSH-2 are never split.
func (s *Segment) Repetitions(n int) []Value {
	raw := s.Raw(n)
	if raw == "" {
		return nil
	}
	if s.name == "MSH" && n <= 2 || s.msg.d.Repetition == 0 {
		return []Value{{raw: raw, seg: s, literal: s.name == "MSH" && n <= 2}}
	}
	parts := strings.Split(raw, string(s.msg.d.Repetition))
	out := make([]Value, len(parts))
	for i, p := range parts {
		out[i] = Value{raw: p, seg: s}
	}
	return out
}

// first returns the first repetition of field n.
func (s *Segment) first(n int) Value {
	raw := s.Raw(n)
	if raw == "" {
		return Value{seg: s}
	}
	if s.name == "MSH" && n <= 2 {
		return Value{raw: raw, seg: s, literal: true}
	}
	if r := s.msg.d.Repetition; r != 0 {
		raw, _, _ = strings.Cut(raw, string(r))
	}
	return Value{raw: raw, seg: s}
}

// Field returns the first repetition of field n, unescaped. For a field
// with components the component separators remain; an escaped separator
// (\S\) then reads the same as a real one, so address components with
// Component when they matter.
func (s *Segment) Field(n int) string { return s.first(n).String() }

// Component returns component c of the first repetition of field n,
// unescaped. Component 1 of a field without components is the field.
func (s *Segment) Component(n, c int) string { return s.first(n).Component(c) }

// SubComponent returns sub-component sc of component c of the first
// repetition of field n, unescaped.
func (s *Segment) SubComponent(n, c, sc int) string { return s.first(n).SubComponent(c, sc) }

// Value is one repetition of a field.
type Value struct {
	raw     string
	seg     *Segment
	literal bool // MSH-1/MSH-2: delimiters themselves, never split or unescaped
}

func (v Value) unescape(s string) string {
	if v.literal || v.seg == nil {
		return s
	}
	return unescape(s, v.seg.msg.d, v.seg.msg.dec.latin1)
}

// Raw returns the repetition as sent.
func (v Value) Raw() string { return v.raw }

// String returns the whole repetition, unescaped.
func (v Value) String() string { return v.unescape(v.raw) }

// Components returns the unescaped components.
func (v Value) Components() []string {
	parts := v.split(v.raw, v.componentSep())
	for i := range parts {
		parts[i] = v.unescape(parts[i])
	}
	return parts
}

// Component returns component c (1-based), unescaped, or "".
func (v Value) Component(c int) string { return v.unescape(v.rawComponent(c)) }

// SubComponent returns sub-component sc of component c, unescaped, or "".
func (v Value) SubComponent(c, sc int) string {
	return v.unescape(nth(v.rawComponent(c), v.subComponentSep(), sc))
}

func (v Value) rawComponent(c int) string { return nth(v.raw, v.componentSep(), c) }

// nth returns part i (1-based) of s split on sep, or "" if there is no
// such part; with sep 0, s is its only part.
func nth(s string, sep byte, i int) string {
	if i < 1 {
		return ""
	}
	if sep == 0 {
		if i == 1 {
			return s
		}
		return ""
	}
	for ; i > 1; i-- {
		j := strings.IndexByte(s, sep)
		if j < 0 {
			return ""
		}
		s = s[j+1:]
	}
	if j := strings.IndexByte(s, sep); j >= 0 {
		s = s[:j]
	}
	return s
}

func (v Value) componentSep() byte {
	if v.literal || v.seg == nil {
		return 0
	}
	return v.seg.msg.d.Component
}

func (v Value) subComponentSep() byte {
	if v.literal || v.seg == nil {
		return 0
	}
	return v.seg.msg.d.SubComponent
}

func (v Value) split(s string, sep byte) []string {
	if sep == 0 {
		return []string{s}
	}
	return strings.Split(s, string(sep))
}
