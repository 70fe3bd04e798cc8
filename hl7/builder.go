package hl7

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"
	"time"
)

// Field is a field value for Builder: text, components, sub-components and
// repetitions, escaped when written. The zero Field is an empty field.
type Field struct {
	reps [][][]string // repetition → component → sub-component
	raw  *string
}

// Text is a field holding one value.
func Text(s string) Field { return Field{reps: [][][]string{{{s}}}} }

// Components is a field of components, e.g. Components("DOE", "JANE") for
// DOE^JANE.
func Components(c ...string) Field {
	comps := make([][]string, len(c))
	for i, s := range c {
		comps[i] = []string{s}
	}
	return Field{reps: [][][]string{comps}}
}

// SubComponents is a field whose components have sub-components:
// SubComponents([]string{"1"}, []string{"A", "B"}) is 1^A&B.
func SubComponents(c ...[]string) Field { return Field{reps: [][][]string{c}} }

// Repeat joins fields as repetitions of one field: A~B. A RawField among
// them is written as text (escaped).
func Repeat(f ...Field) Field {
	var out Field
	for _, x := range f {
		switch {
		case x.raw != nil:
			out.reps = append(out.reps, [][]string{{*x.raw}})
		case len(x.reps) == 0:
			out.reps = append(out.reps, nil)
		default:
			out.reps = append(out.reps, x.reps...)
		}
	}
	return out
}

// RawField is a field written exactly as given, already encoded with the
// builder's delimiters. The caller answers for its escaping.
func RawField(s string) Field { return Field{raw: &s} }

// Builder writes a message segment by segment. The zero Builder uses the
// default delimiters |^~\&.
type Builder struct {
	Delimiters Delimiters

	b   strings.Builder
	err error
}

// MSH writes the header segment from h (MSH-1 and MSH-2 come from the
// builder's delimiters). An empty MessageControlID gets NewControlID, an
// empty DateTimeOfMessage the current time, an empty ProcessingID "P".
// HD fields (MSH-3 to MSH-6) are split on the component and sub-component
// separators and each part escaped, so "RIS^1.2.3^ISO" keeps its structure.
func (b *Builder) MSH(h Header) *Builder {
	d := b.Delimiters.orDefault()
	if h.MessageControlID == "" {
		h.MessageControlID = NewControlID()
	}
	if h.DateTimeOfMessage == "" {
		h.DateTimeOfMessage = FormatTime(time.Now())
	}
	if h.ProcessingID == "" {
		h.ProcessingID = "P"
	}
	msgType := Components(h.MessageType, h.TriggerEvent, h.MessageStructure)
	fields := []Field{
		hd(h.SendingApplication, d), hd(h.SendingFacility, d),
		hd(h.ReceivingApplication, d), hd(h.ReceivingFacility, d),
		Text(h.DateTimeOfMessage), {}, msgType, Text(h.MessageControlID),
		Components(h.ProcessingID, h.ProcessingMode), Text(h.VersionID),
		{}, {}, {}, {}, {}, Text(h.CharacterSet),
	}
	b.b.WriteString("MSH")
	b.b.WriteByte(d.Field)
	b.b.WriteString(d.EncodingCharacters())
	b.writeFields(fields, d)
	return b
}

// hd splits HD full text into components and sub-components.
func hd(s string, d Delimiters) Field {
	if s == "" {
		return Field{}
	}
	var comps [][]string
	for _, c := range strings.Split(s, string(d.Component)) {
		if d.SubComponent != 0 {
			comps = append(comps, strings.Split(c, string(d.SubComponent)))
		} else {
			comps = append(comps, []string{c})
		}
	}
	return SubComponents(comps...)
}

// Segment writes a segment; fields start at position 1.
func (b *Builder) Segment(name string, fields ...Field) *Builder {
	if len(name) != 3 || !isSegmentID(name) || name == "MSH" {
		if b.err == nil {
			b.err = fmt.Errorf("hl7: builder: bad segment ID %q", name)
		}
		return b
	}
	d := b.Delimiters.orDefault()
	b.b.WriteString(name)
	b.writeFields(fields, d)
	return b
}

// Texts writes a segment whose fields are plain text values.
func (b *Builder) Texts(name string, values ...string) *Builder {
	f := make([]Field, len(values))
	for i, v := range values {
		f[i] = Text(v)
	}
	return b.Segment(name, f...)
}

// writeFields writes "|f1|f2..." and the segment terminator, leaving out
// trailing empty fields (HL7 2.5.1 §2.5.3: trailing delimiters may be
// omitted).
func (b *Builder) writeFields(fields []Field, d Delimiters) {
	enc := make([]string, len(fields))
	last := 0
	for i, f := range fields {
		enc[i] = f.encode(d)
		if enc[i] != "" {
			last = i + 1
		}
	}
	for _, s := range enc[:last] {
		b.b.WriteByte(d.Field)
		b.b.WriteString(s)
	}
	b.b.WriteByte('\r')
}

func (f Field) encode(d Delimiters) string {
	if f.raw != nil {
		return *f.raw
	}
	reps := make([]string, len(f.reps))
	for i, r := range f.reps {
		comps := make([]string, len(r))
		for j, c := range r {
			subs := make([]string, len(c))
			for k, s := range c {
				subs[k] = Escape(s, d)
			}
			comps[j] = joinTrimmed(subs, d.SubComponent)
		}
		reps[i] = joinTrimmed(comps, d.Component)
	}
	return joinTrimmed(reps, d.Repetition)
}

// joinTrimmed joins parts with sep, leaving out trailing empty parts.
func joinTrimmed(parts []string, sep byte) string {
	n := len(parts)
	for n > 0 && parts[n-1] == "" {
		n--
	}
	return strings.Join(parts[:n], string(sep))
}

// Bytes returns the message built so far, segments ended by CR, or the
// first error met.
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	return []byte(b.b.String()), nil
}

// NewControlID returns a new MSH-10 value: 20 characters (the v2.5 length
// of MSH-10) from a 100-bit random number, so IDs from several hub
// processes do not collide.
func NewControlID() string {
	var b [13]byte
	_, _ = rand.Read(b[:])
	return base32.StdEncoding.EncodeToString(b[:])[:20]
}
