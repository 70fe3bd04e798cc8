package hl7

import (
	"fmt"
	"strings"
)

// Delimiters are a message's separators and escape character, declared by
// the message itself in MSH-1 and MSH-2 (HL7 2.5.1 §2.5.4 "Message
// delimiters"). A zero byte means the character is not in use (a sender
// may send fewer than four encoding characters when it never needs the
// later ones).
type Delimiters struct {
	Field        byte // MSH-1, recommended '|'
	Component    byte // MSH-2 position 1, recommended '^'
	Repetition   byte // MSH-2 position 2, recommended '~'
	Escape       byte // MSH-2 position 3, recommended '\'
	SubComponent byte // MSH-2 position 4, recommended '&'
}

// DefaultDelimiters are the recommended delimiters |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', SubComponent: '&'}

// EncodingCharacters returns the MSH-2 text for d.
func (d Delimiters) EncodingCharacters() string {
	b := make([]byte, 0, 4)
	for _, c := range []byte{d.Component, d.Repetition, d.Escape, d.SubComponent} {
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// orDefault returns d with every unused delimiter filled in: the
// recommended character where it is free, else another free one. Writing
// needs all five, since any value may contain any character and must be
// escapable; a reader accepts the full set however few the peer declared.
func (d Delimiters) orDefault() Delimiters {
	if d.Field != 0 && d.Component != 0 && d.Repetition != 0 && d.Escape != 0 && d.SubComponent != 0 {
		return d
	}
	used := map[byte]bool{}
	for _, c := range []byte{d.Field, d.Component, d.Repetition, d.Escape, d.SubComponent} {
		used[c] = true
	}
	fill := func(p *byte, want byte) {
		if *p != 0 {
			return
		}
		for _, c := range append([]byte{want}, "|^~\\&#!$%*+"...) {
			if !used[c] {
				*p, used[c] = c, true
				return
			}
		}
	}
	fill(&d.Field, '|')
	fill(&d.Component, '^')
	fill(&d.Repetition, '~')
	fill(&d.Escape, '\\')
	fill(&d.SubComponent, '&')
	return d
}

// validDelimiter reports whether c may serve as a delimiter: HL7 2.5.1
// §2.5.4 leaves the choice to the sender, but a letter, digit, space or
// segment terminator would make the message impossible to split.
func validDelimiter(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return false
	case c == '\r', c == '\n', c == ' ', c == 0:
		return false
	case c >= 0x80:
		return false // must be one byte in every supported character set
	}
	return true
}

// parseDelimiters reads MSH-1 and MSH-2 from the start of an MSH segment.
// enc is MSH-2 as sent. Up to five encoding characters are accepted: v2.7
// adds a fifth, the truncation character, which this package treats as
// ordinary data since v2.5.1 and earlier do not define it.
func parseDelimiters(field byte, enc string) (Delimiters, error) {
	d := Delimiters{Field: field}
	if !validDelimiter(field) {
		return d, fmt.Errorf("MSH-1 field separator %q is not usable", field)
	}
	if len(enc) == 0 || len(enc) > 5 {
		return d, fmt.Errorf("MSH-2 encoding characters %q: want 1 to 4 characters", enc)
	}
	ptrs := [4]*byte{&d.Component, &d.Repetition, &d.Escape, &d.SubComponent}
	for i := 0; i < len(enc) && i < len(ptrs); i++ {
		c := enc[i]
		if !validDelimiter(c) || c == field || strings.IndexByte(enc[:i], c) >= 0 {
			return d, fmt.Errorf("MSH-2 encoding characters %q: %q is not usable or repeated", enc, c)
		}
		*ptrs[i] = c
	}
	return d, nil
}
