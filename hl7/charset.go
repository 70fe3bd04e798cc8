package hl7

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Character sets of MSH-18 (HL7 table 0211, "Alternate character sets")
// that Parse decodes. Everything is handed to callers as UTF-8.
const (
	CharsetASCII   = "ASCII"         // 7-bit ASCII, the default when MSH-18 is empty
	CharsetLatin1  = "8859/1"        // ISO 8859-1
	CharsetLatin9  = "8859/15"       // ISO 8859-15
	CharsetUTF8    = "UNICODE UTF-8" // UTF-8 (v2.5 spelling)
	charsetUTF8Alt = "UTF-8"         // not in table 0211, but sent by many systems
)

var (
	// ErrCharset means MSH-18 names a character set Parse cannot decode.
	// Table 0357 has no code for this; the reply carries 103 "Table value
	// not found", since MSH-18 is coded from table 0211 and the value is
	// not one this receiver holds.
	ErrCharset = errors.New("hl7: unsupported character set")
	// ErrEncoding means the message bytes are not valid in the character
	// set MSH-18 declares (0357 code 102 "Data type error").
	ErrEncoding = errors.New("hl7: bytes invalid in declared character set")
)

// decoder turns one segment's bytes into UTF-8 text.
type decoder struct {
	latin1 bool // \Xhh\ bytes are Latin-1 rather than UTF-8
	// identity reports that valid UTF-8 input decodes to itself, so a
	// message that is valid UTF-8 as a whole is decoded in one step.
	identity bool
	decode   func([]byte) (string, bool)
}

// newDecoder picks the decoder for MSH-18's first repetition.
//
// An empty MSH-18 means ASCII (HL7 2.5.1 §2.15.9.18), but many senders put
// UTF-8 or Latin-1 names in such messages anyway. Rejecting those would
// stop admissions over a configuration detail, so text that is valid UTF-8
// is taken as UTF-8 and anything else as Latin-1; "ASCII" declared
// explicitly is treated the same way.
func newDecoder(charset string) (decoder, error) {
	switch strings.ToUpper(strings.TrimSpace(charset)) {
	case "", CharsetASCII:
		return decoder{identity: true, decode: func(b []byte) (string, bool) {
			if utf8.Valid(b) {
				return string(b), true
			}
			return decodeLatin1(b), true
		}}, nil
	case CharsetLatin1:
		return decoder{latin1: true, decode: func(b []byte) (string, bool) { return decodeLatin1(b), true }}, nil
	case CharsetLatin9:
		return decoder{latin1: true, decode: func(b []byte) (string, bool) { return decodeLatin9(b), true }}, nil
	case CharsetUTF8, charsetUTF8Alt:
		return decoder{identity: true, decode: func(b []byte) (string, bool) { return string(b), utf8.Valid(b) }}, nil
	}
	return decoder{}, ErrCharset
}

// decodeLatin1 maps ISO 8859-1 bytes to UTF-8: each byte is the code point
// of the same value.
func decodeLatin1(b []byte) string {
	n := 0
	for _, c := range b {
		if c >= 0x80 {
			n++
		}
	}
	if n == 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b)+n)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return string(out)
}

// latin9 lists the eight code points where ISO 8859-15 differs from 8859-1.
var latin9 = map[byte]rune{
	0xA4: '€', 0xA6: 'Š', 0xA8: 'š', 0xB4: 'Ž', 0xB8: 'ž', 0xBC: 'Œ', 0xBD: 'œ', 0xBE: 'Ÿ',
}

func decodeLatin9(b []byte) string {
	out := make([]byte, 0, len(b)+8)
	for _, c := range b {
		if r, ok := latin9[c]; ok {
			out = utf8.AppendRune(out, r)
			continue
		}
		out = utf8.AppendRune(out, rune(c))
	}
	return string(out)
}
