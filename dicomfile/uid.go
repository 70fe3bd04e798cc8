package dicomfile

import (
	"crypto/rand"
	"math/big"
)

// maxUIDLength is the maximum length of a UID (PS3.5 §9.1).
const maxUIDLength = 64

// NewUID returns a new globally unique UID under the "2.25" root, whose
// single further component is the decimal value of a random (version 4)
// UUID as an unsigned 128-bit integer (PS3.5 §B.2, ITU-T X.667 §6.3).
func NewUID() string {
	var u [16]byte
	// crypto/rand.Read never returns an error (Go 1.24+): it panics instead.
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4 (RFC 9562 §5.4)
	u[8] = u[8]&0x3f | 0x80 // variant 10xx
	var n big.Int
	n.SetBytes(u[:])
	b := make([]byte, 0, 5+39)
	b = append(b, "2.25."...)
	return string(n.Append(b, 10))
}

// ValidUID reports whether s is a syntactically valid UID (PS3.5 §9.1): at
// most 64 characters, components of digits separated by '.', and no
// component with a leading zero unless it is the single digit "0". A UID
// with trailing NUL padding is not valid; strip it first.
func ValidUID(s string) bool {
	if len(s) == 0 || len(s) > maxUIDLength {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			n := i - start
			if n == 0 || (n > 1 && s[start] == '0') {
				return false
			}
			start = i + 1
			continue
		}
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
