package dicomfile

import (
	"strings"
	"unicode/utf8"
)

// charset is the Specific Character Set of a data set as far as this
// package converts it (PS3.3 §C.12.1.1.2, PS3.5 §6.1).
type charset uint8

const (
	charsetDefault charset = iota // ISO-IR 6, the default repertoire
	charsetLatin1                 // ISO_IR 100
	charsetUTF8                   // ISO_IR 192
	charsetOther                  // anything else: values kept as raw bytes
)

// parseCharset maps the value of (0008,0005) to a charset. Only a single
// value is understood; multi-valued sets use ISO 2022 code extensions,
// which are left to the consumer.
func parseCharset(s string) charset {
	switch strings.TrimSpace(s) {
	case "", "ISO_IR 6":
		return charsetDefault
	case "ISO_IR 100":
		return charsetLatin1
	case "ISO_IR 192":
		return charsetUTF8
	}
	return charsetOther
}

// decode converts s to UTF-8 where the character set allows it.
func (c charset) decode(s string) string {
	switch c {
	case charsetOther:
		return s
	case charsetUTF8:
		return strings.ToValidUTF8(s, "\uFFFD")
	case charsetDefault:
		if utf8.ValidString(s) {
			return s
		}
	}
	return latin1(s)
}

// latin1 converts ISO 8859-1 bytes to UTF-8: each byte is the code point.
func latin1(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}
