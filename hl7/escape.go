package hl7

import (
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Escape returns s with every character that has a meaning in a message
// written as an escape sequence (HL7 2.5.1 §2.7.1): the field, component,
// repetition, sub-component and escape characters become \F\ \S\ \R\ \T\
// \E\, and CR, LF and the MLLP block characters become \X0D\ \X0A\ \X0B\
// \X1C\ so that a value can never end a segment or a block. It is the
// inverse of Unescape. Delimiters missing from d are filled in as a
// Builder would.
func Escape(s string, d Delimiters) string {
	d = d.orDefault()
	if !needsEscape(s, d) {
		return s
	}
	e := string(d.Escape)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == d.Field:
			b.WriteString(e + "F" + e)
		case c == d.Component && c != 0:
			b.WriteString(e + "S" + e)
		case c == d.SubComponent && c != 0:
			b.WriteString(e + "T" + e)
		case c == d.Repetition && c != 0:
			b.WriteString(e + "R" + e)
		case c == d.Escape:
			b.WriteString(e + "E" + e)
		case c == '\r' || c == '\n' || c == 0x0B || c == 0x1C:
			b.WriteString(e + "X" + strings.ToUpper(hex.EncodeToString([]byte{c})) + e)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(s string, d Delimiters) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case d.Field, d.Escape, '\r', '\n', 0x0B, 0x1C:
			return true
		case d.Component, d.SubComponent, d.Repetition:
			if c != 0 {
				return true
			}
		}
	}
	return false
}

// Unescape decodes the escape sequences of HL7 2.5.1 §2.7 in s: \F\ \S\
// \T\ \R\ \E\ become the message's delimiters and \Xhh...\ the bytes it
// spells. Hex bytes are read in the message's character set, which is
// UTF-8 after Parse unless the message declared ISO 8859-1 or -15 (see
// decodeHex). Sequences that are formatting or character-set switches (\H\
// \N\ \.br\ \Cxxyy\ \Mxxyyzz\ \Zxx\) are kept as written, for a caller that
// renders formatted text (FT) to interpret; an escape character with no
// closing one is kept literally.
func Unescape(s string, d Delimiters) string {
	return unescape(s, d, false)
}

func unescape(s string, d Delimiters, latin1 bool) string {
	if d == (Delimiters{}) {
		d = DefaultDelimiters
	}
	if d.Escape == 0 || strings.IndexByte(s, d.Escape) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.IndexByte(s, d.Escape)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		j := strings.IndexByte(s, d.Escape)
		if j < 0 {
			b.WriteByte(d.Escape)
			b.WriteString(s)
			return b.String()
		}
		seq := s[:j]
		s = s[j+1:]
		switch {
		case seq == "F":
			b.WriteByte(d.Field)
		case seq == "S" && d.Component != 0:
			b.WriteByte(d.Component)
		case seq == "T" && d.SubComponent != 0:
			b.WriteByte(d.SubComponent)
		case seq == "R" && d.Repetition != 0:
			b.WriteByte(d.Repetition)
		case seq == "E":
			b.WriteByte(d.Escape)
		case len(seq) > 1 && (seq[0] == 'X' || seq[0] == 'x'):
			if txt, ok := decodeHex(seq[1:], latin1); ok {
				b.WriteString(txt)
				break
			}
			fallthrough
		default:
			b.WriteByte(d.Escape)
			b.WriteString(seq)
			b.WriteByte(d.Escape)
		}
	}
}

// decodeHex turns the hh... of \Xhh...\ into text. The bytes are in the
// message's own character set: for a Latin-1 message each byte is one
// character; otherwise they should be UTF-8, and bytes that are not valid
// UTF-8 are read as Latin-1 rather than dropped.
func decodeHex(h string, latin1 bool) (string, bool) {
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) == 0 {
		return "", false
	}
	if !latin1 && utf8.Valid(raw) {
		return string(raw), true
	}
	return decodeLatin1(raw), true
}
