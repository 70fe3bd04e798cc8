package worklist

import (
	"strings"
	"unicode/utf8"

	"github.com/imaginghub/imaginghub/dicomjson"
)

// Matching of C-FIND keys against a candidate data set, PS3.4 §C.2.2.2:
// single value, list of UID, universal, wildcard, range and sequence
// matching. Patient Name is matched case-insensitively as IHE RAD TF-2
// §4.5.4.1.2.1 asks of the worklist provider.

// Matches reports whether the candidate data set cand satisfies every
// matching key of the identifier q.
func Matches(q, cand dicomjson.DataSet) bool {
	for t, a := range q {
		if t == tagSpecificCharacterSet || t.Element() == 0 {
			continue
		}
		if a.VR == "SQ" {
			if !matchSequence(a, cand[t]) {
				return false
			}
			continue
		}
		qv := value(a)
		if qv == "" || qv == "*" {
			continue // universal matching (C.2.2.2.3)
		}
		if !matchValue(a, qv, cand[t]) {
			return false
		}
	}
	return true
}

// matchSequence: a sequence key with an item that has matching keys
// matches when one item of the candidate's sequence matches them all
// (C.2.2.2.6); an empty sequence or item is universal.
func matchSequence(q, cand *dicomjson.Attribute) bool {
	if len(q.Items) == 0 || !hasMatchingKeys(q.Items[0]) {
		return true
	}
	if cand == nil {
		return false
	}
	for _, it := range cand.Items {
		if Matches(q.Items[0], it) {
			return true
		}
	}
	return false
}

func hasMatchingKeys(ds dicomjson.DataSet) bool {
	for t, a := range ds {
		if t == tagSpecificCharacterSet {
			continue
		}
		if a.VR == "SQ" {
			if len(a.Items) > 0 && hasMatchingKeys(a.Items[0]) {
				return true
			}
			continue
		}
		if v := value(a); v != "" && v != "*" {
			return true
		}
	}
	return false
}

// value is the first value of a non-sequence attribute as text (a PN as
// encoded, groups joined by '=').
func value(a *dicomjson.Attribute) string {
	if a == nil {
		return ""
	}
	if len(a.PersonNames) > 0 {
		return strings.TrimSpace(a.PersonNames[0].String())
	}
	if len(a.Strings) > 0 {
		return strings.TrimSpace(a.Strings[0])
	}
	return ""
}

func matchValue(q *dicomjson.Attribute, qv string, cand *dicomjson.Attribute) bool {
	cv := value(cand)
	switch q.VR {
	case "UI":
		// List of UID matching (C.2.2.2.2).
		for _, u := range q.Strings {
			if strings.TrimSpace(u) == cv {
				return true
			}
		}
		return false
	case "DA", "DT":
		return matchRange(qv, cv, pad)
	case "TM":
		return matchRange(qv, cv, padTime)
	case "PN":
		return wildcard(strings.ToLower(qv), strings.ToLower(cv))
	}
	if strings.ContainsAny(qv, "*?") {
		return wildcard(qv, cv)
	}
	return qv == cv
}

// matchRange: "a-b", "-b", "a-" or a single value (C.2.2.2.5); norm makes
// the bounds and the value comparable as strings.
func matchRange(qv, cv string, norm func(s string, upper bool) string) bool {
	if cv == "" {
		return false
	}
	lo, hi, isRange := strings.Cut(qv, "-")
	if !isRange {
		return norm(qv, false) <= norm(cv, false) && norm(cv, false) <= norm(qv, true)
	}
	c := norm(cv, false)
	if lo != "" && c < norm(lo, false) {
		return false
	}
	if hi != "" && c > norm(hi, true) {
		return false
	}
	return true
}

// pad compares dates as they are: DA values are fixed width.
func pad(s string, upper bool) string {
	if upper && len(s) < 14 && len(s) > 8 {
		return s + strings.Repeat("9", 14-len(s))
	}
	return s
}

// padTime normalises TM (HH, HHMM, HHMMSS, with or without a fraction, or
// the ACR-NEMA form with colons) to HHMMSS.ffffff; an upper bound given
// with less precision covers the whole hour or minute it names.
func padTime(s string, upper bool) string {
	s = strings.ReplaceAll(s, ":", "")
	whole, frac, _ := strings.Cut(s, ".")
	fill := "0"
	if upper {
		fill = "9"
	}
	if len(whole) < 6 {
		whole += strings.Repeat(fill, 6-len(whole))
		frac = ""
	}
	if len(frac) < 6 {
		frac += strings.Repeat(fill, 6-len(frac))
	}
	return whole + "." + frac
}

// wildcard matches v against a pattern where '*' is any sequence of
// characters and '?' any single character (C.2.2.2.4).
func wildcard(pattern, v string) bool {
	// Iterative matcher with backtracking to the last '*'.
	p, s := 0, 0
	starP, starS := -1, 0
	for s < len(v) {
		if p < len(pattern) {
			pr, pn := utf8.DecodeRuneInString(pattern[p:])
			sr, sn := utf8.DecodeRuneInString(v[s:])
			switch {
			case pr == '*':
				starP, starS = p, s
				p += pn
				continue
			case pr == '?' || pr == sr:
				p += pn
				s += sn
				continue
			}
		}
		if starP < 0 {
			return false
		}
		_, sn := utf8.DecodeRuneInString(v[starS:])
		starS += sn
		s = starS
		p = starP + 1
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Project builds the response identifier: every key of q with the
// candidate's value, zero length when it has none (PS3.4 §C.2.2.1.2,
// K.6.1.2.2). A sequence key with an empty item returns the candidate's
// items whole (universal matching of a sequence, C.2.2.2.6).
func Project(q, cand dicomjson.DataSet) dicomjson.DataSet {
	out := make(dicomjson.DataSet, len(q))
	for t, a := range q {
		if t == tagSpecificCharacterSet || t.Element() == 0 {
			continue
		}
		c := cand[t]
		if a.VR == "SQ" {
			if c == nil {
				out[t] = &dicomjson.Attribute{VR: "SQ"}
				continue
			}
			if len(a.Items) == 0 || len(a.Items[0]) == 0 {
				out[t] = c
				continue
			}
			items := make([]dicomjson.DataSet, len(c.Items))
			for i, it := range c.Items {
				items[i] = Project(a.Items[0], it)
			}
			out[t] = &dicomjson.Attribute{VR: "SQ", Items: items}
			continue
		}
		if c == nil {
			out[t] = &dicomjson.Attribute{VR: a.VR}
			continue
		}
		out[t] = c
	}
	return out
}

// needsUTF8 reports whether any text of ds is outside the default
// repertoire (PS3.5 §6.1.2.1: ASCII without control characters but ESC).
func needsUTF8(ds dicomjson.DataSet) bool {
	for _, a := range ds {
		for _, s := range a.Strings {
			if !isASCII(s) {
				return true
			}
		}
		for _, p := range a.PersonNames {
			if !isASCII(p.String()) {
				return true
			}
		}
		for _, it := range a.Items {
			if needsUTF8(it) {
				return true
			}
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
