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

	buf []byte
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
	buf := append(b.buf, 'M', 'S', 'H', d.Field)
	for _, c := range [4]byte{d.Component, d.Repetition, d.Escape, d.SubComponent} {
		buf = append(buf, c)
	}
	end := len(buf)
	for n := 3; n <= 18; n++ {
		buf = append(buf, d.Field)
		start := len(buf)
		switch n {
		case 3:
			buf = appendHD(buf, h.SendingApplication, d)
		case 4:
			buf = appendHD(buf, h.SendingFacility, d)
		case 5:
			buf = appendHD(buf, h.ReceivingApplication, d)
		case 6:
			buf = appendHD(buf, h.ReceivingFacility, d)
		case 7:
			buf = appendEscaped(buf, h.DateTimeOfMessage, d)
		case 9:
			buf = appendParts(buf, d.Component, d, h.MessageType, h.TriggerEvent, h.MessageStructure)
		case 10:
			buf = appendEscaped(buf, h.MessageControlID, d)
		case 11:
			buf = appendParts(buf, d.Component, d, h.ProcessingID, h.ProcessingMode)
		case 12:
			buf = appendEscaped(buf, h.VersionID, d)
		case 18:
			buf = appendEscaped(buf, h.CharacterSet, d)
		}
		if len(buf) > start {
			end = len(buf)
		}
	}
	b.buf = append(buf[:end], '\r')
	return b
}

// appendHD appends HD full text split into components and sub-components,
// each part escaped, trailing empty parts left out.
func appendHD(buf []byte, s string, d Delimiters) []byte {
	end := len(buf)
	for i := 0; ; i++ {
		c, rest, more := strings.Cut(s, string(d.Component))
		if i > 0 {
			buf = append(buf, d.Component)
		}
		start := len(buf)
		cend := start
		for j := 0; ; j++ {
			sc, rest, more := strings.Cut(c, string(d.SubComponent))
			if j > 0 {
				buf = append(buf, d.SubComponent)
			}
			sstart := len(buf)
			buf = appendEscaped(buf, sc, d)
			if len(buf) > sstart {
				cend = len(buf)
			}
			if !more {
				break
			}
			c = rest
		}
		buf = buf[:cend]
		if len(buf) > start {
			end = len(buf)
		}
		if !more {
			break
		}
		s = rest
	}
	return buf[:end]
}

// appendParts appends the escaped parts joined by sep, trailing empty
// parts left out.
func appendParts(buf []byte, sep byte, d Delimiters, parts ...string) []byte {
	end := len(buf)
	for i, p := range parts {
		if i > 0 {
			buf = append(buf, sep)
		}
		start := len(buf)
		buf = appendEscaped(buf, p, d)
		if len(buf) > start {
			end = len(buf)
		}
	}
	return buf[:end]
}

// appendEscaped appends Escape(s, d); d is complete (orDefault).
func appendEscaped(buf []byte, s string, d Delimiters) []byte {
	if !needsEscape(s, d) {
		return append(buf, s...)
	}
	return append(buf, Escape(s, d)...)
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
	b.buf = append(b.buf, name...)
	b.writeFields(fields, d)
	return b
}

// Texts writes a segment whose fields are plain text values.
func (b *Builder) Texts(name string, values ...string) *Builder {
	if len(name) != 3 || !isSegmentID(name) || name == "MSH" {
		if b.err == nil {
			b.err = fmt.Errorf("hl7: builder: bad segment ID %q", name)
		}
		return b
	}
	d := b.Delimiters.orDefault()
	buf := append(b.buf, name...)
	end := len(buf)
	for _, v := range values {
		buf = append(buf, d.Field)
		start := len(buf)
		buf = appendEscaped(buf, v, d)
		if len(buf) > start {
			end = len(buf)
		}
	}
	b.buf = append(buf[:end], '\r')
	return b
}

// writeFields writes "|f1|f2..." and the segment terminator, leaving out
// trailing empty fields (HL7 2.5.1 §2.5.3: trailing delimiters may be
// omitted).
func (b *Builder) writeFields(fields []Field, d Delimiters) {
	buf := b.buf
	end := len(buf)
	for _, f := range fields {
		buf = append(buf, d.Field)
		start := len(buf)
		buf = f.appendTo(buf, d)
		if len(buf) > start {
			end = len(buf)
		}
	}
	b.buf = append(buf[:end], '\r')
}

// appendTo appends the field encoded with d, leaving out trailing empty
// repetitions, components and sub-components at every level.
func (f Field) appendTo(buf []byte, d Delimiters) []byte {
	if f.raw != nil {
		return append(buf, *f.raw...)
	}
	end := len(buf)
	for i, r := range f.reps {
		if i > 0 {
			buf = append(buf, d.Repetition)
		}
		rstart := len(buf)
		rend := rstart
		for j, c := range r {
			if j > 0 {
				buf = append(buf, d.Component)
			}
			cstart := len(buf)
			cend := cstart
			for k, sc := range c {
				if k > 0 {
					buf = append(buf, d.SubComponent)
				}
				sstart := len(buf)
				buf = appendEscaped(buf, sc, d)
				if len(buf) > sstart {
					cend = len(buf)
				}
			}
			buf = buf[:cend]
			if len(buf) > cstart {
				rend = len(buf)
			}
		}
		buf = buf[:rend]
		if len(buf) > rstart {
			end = len(buf)
		}
	}
	return buf[:end]
}

// Bytes returns the message built so far, segments ended by CR, or the
// first error met.
func (b *Builder) Bytes() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	return b.buf[:len(b.buf):len(b.buf)], nil
}

// NewControlID returns a new MSH-10 value: 20 characters (the v2.5 length
// of MSH-10) from a 100-bit random number, so IDs from several hub
// processes do not collide.
func NewControlID() string {
	var b [13]byte
	_, _ = rand.Read(b[:])
	return base32.StdEncoding.EncodeToString(b[:])[:20]
}
