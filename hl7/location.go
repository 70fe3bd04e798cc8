package hl7

import (
	"fmt"
	"strconv"
	"strings"
)

// Location addresses a value in a message the way HL7 error locations
// (ERR-2, data type ERL) and common usage do: "PID-3", "PID-3.1",
// "PID-3(2).4", "OBX(2)-5.1.2". Positions are 1-based; a zero
// SegmentRepetition or FieldRepetition means the first one, a zero
// Component or SubComponent means the whole field or component.
type Location struct {
	Segment           string // segment ID, "PID"
	SegmentRepetition int    // which occurrence of the segment, 1-based
	Field             int    // field position, MSH-1 being the field separator
	FieldRepetition   int    // 1-based
	Component         int
	SubComponent      int
}

// ParseLocation parses SEG[(n)][-field[(rep)][.comp[.sub]]].
func ParseLocation(s string) (Location, error) {
	var l Location
	bad := func() (Location, error) { return Location{}, fmt.Errorf("hl7: bad location %q", s) }
	seg, rest, hasField := strings.Cut(s, "-")
	seg, l.SegmentRepetition = cutRepetition(seg)
	if l.SegmentRepetition < 0 || len(seg) != 3 || !isSegmentID(seg) {
		return bad()
	}
	l.Segment = seg
	if !hasField {
		return l, nil
	}
	parts := strings.Split(rest, ".")
	if len(parts) > 3 {
		return bad()
	}
	var f string
	f, l.FieldRepetition = cutRepetition(parts[0])
	if l.FieldRepetition < 0 {
		return bad()
	}
	nums := []*int{&l.Field, &l.Component, &l.SubComponent}
	parts[0] = f
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return bad()
		}
		*nums[i] = n
	}
	return l, nil
}

// cutRepetition splits "PID(2)" into "PID", 2; rep is -1 if malformed.
func cutRepetition(s string) (string, int) {
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return s, 0
	}
	if !strings.HasSuffix(s, ")") {
		return s, -1
	}
	n, err := strconv.Atoi(s[open+1 : len(s)-1])
	if err != nil || n < 1 {
		return s, -1
	}
	return s[:open], n
}

// String formats l in the syntax ParseLocation reads.
func (l Location) String() string {
	var b strings.Builder
	b.WriteString(l.Segment)
	if l.SegmentRepetition > 1 {
		fmt.Fprintf(&b, "(%d)", l.SegmentRepetition)
	}
	if l.Field == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "-%d", l.Field)
	if l.FieldRepetition > 1 {
		fmt.Fprintf(&b, "(%d)", l.FieldRepetition)
	}
	if l.Component > 0 {
		fmt.Fprintf(&b, ".%d", l.Component)
		if l.SubComponent > 0 {
			fmt.Fprintf(&b, ".%d", l.SubComponent)
		}
	}
	return b.String()
}

func isSegmentID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
