package hl7

import (
	"fmt"
	"strings"
	"time"
)

// Header is the message header segment, MSH (HL7 2.5.1 §2.15.9). Text
// fields are unescaped; the HD fields (MSH-3 to MSH-6) are the full text
// with their components joined by the message's component separator,
// e.g. "RIS^1.2.840.99999.1^ISO".
type Header struct {
	FieldSeparator       byte   // MSH-1
	EncodingCharacters   string // MSH-2
	SendingApplication   string // MSH-3
	SendingFacility      string // MSH-4
	ReceivingApplication string // MSH-5
	ReceivingFacility    string // MSH-6
	DateTimeOfMessage    string // MSH-7, as sent (TS/DTM); see ParseTime
	MessageType          string // MSH-9.1, e.g. "ADT"
	TriggerEvent         string // MSH-9.2, e.g. "A01"
	MessageStructure     string // MSH-9.3, e.g. "ADT_A01"
	MessageControlID     string // MSH-10
	ProcessingID         string // MSH-11.1: P production, T training, D debugging
	ProcessingMode       string // MSH-11.2
	VersionID            string // MSH-12.1, e.g. "2.5.1"
	CharacterSet         string // MSH-18, first repetition
}

// Delimiters returns the delimiters MSH-1 and MSH-2 declare. When MSH-2
// is unusable the recommended encoding characters stand in, around the
// declared field separator if that one is usable.
func (h Header) Delimiters() Delimiters {
	d, err := parseDelimiters(h.FieldSeparator, h.EncodingCharacters)
	if err == nil {
		return d
	}
	if validDelimiter(h.FieldSeparator) {
		return Delimiters{Field: h.FieldSeparator}.orDefault()
	}
	return DefaultDelimiters
}

func (s *Segment) header() Header {
	return Header{
		FieldSeparator:       s.msg.d.Field,
		EncodingCharacters:   s.Raw(2),
		SendingApplication:   s.Field(3),
		SendingFacility:      s.Field(4),
		ReceivingApplication: s.Field(5),
		ReceivingFacility:    s.Field(6),
		DateTimeOfMessage:    s.Component(7, 1),
		MessageType:          s.Component(9, 1),
		TriggerEvent:         s.Component(9, 2),
		MessageStructure:     s.Component(9, 3),
		MessageControlID:     s.Field(10),
		ProcessingID:         s.Component(11, 1),
		ProcessingMode:       s.Component(11, 2),
		VersionID:            s.Component(12, 1),
		CharacterSet:         s.Field(18),
	}
}

// missingRequired reports the first required MSH field a receiver needs
// to acknowledge the message that is empty (HL7 2.5.1 §2.9.2 checks
// MSH-9, MSH-11 and MSH-12; MSA-2 echoes MSH-10).
func (h Header) missingRequired() (Location, bool) {
	switch {
	case h.MessageType == "":
		return Location{Segment: "MSH", Field: 9, Component: 1}, true
	case h.MessageControlID == "":
		return Location{Segment: "MSH", Field: 10}, true
	case h.ProcessingID == "":
		return Location{Segment: "MSH", Field: 11, Component: 1}, true
	case h.VersionID == "":
		return Location{Segment: "MSH", Field: 12, Component: 1}, true
	}
	return Location{}, false
}

// versionBefore25 reports whether v is a version earlier than 2.5, whose
// ERR segment has only ERR-1 (HL7 2.4 §2.16.5).
func versionBefore25(v string) bool { return versionBefore(v, 2, 5, 0) }

// ParseTime parses an HL7 timestamp (TS/DTM, HL7 2.5.1 §2.A.22):
// YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. Without an offset the time
// is in loc (time.Local if nil). A trailing "^precision" component of the
// old TS type is ignored.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.Local
	}
	s, _, _ = strings.Cut(s, "^")
	orig := s
	zone := ""
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		s, zone = s[:i], s[i:]
	}
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i+1:]
		if len(s) != 14 || frac == "" || len(frac) > 4 {
			return time.Time{}, fmt.Errorf("hl7: bad timestamp %q", orig)
		}
	}
	var layout string
	switch len(s) {
	case 4, 6, 8, 10, 12, 14:
		layout = "20060102150405"[:len(s)]
	default:
		return time.Time{}, fmt.Errorf("hl7: bad timestamp %q", orig)
	}
	if frac != "" {
		layout += "." + strings.Repeat("0", len(frac))
		s += "." + frac
	}
	if zone != "" {
		if len(zone) != 5 {
			return time.Time{}, fmt.Errorf("hl7: bad timestamp offset %q", orig)
		}
		t, err := time.Parse(layout+"-0700", s+zone)
		if err != nil {
			return time.Time{}, fmt.Errorf("hl7: bad timestamp %q: %w", orig, err)
		}
		return t, nil
	}
	t, err := time.ParseInLocation(layout, s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("hl7: bad timestamp %q: %w", orig, err)
	}
	return t, nil
}

// FormatTime formats t as an HL7 DTM with seconds and UTC offset.
func FormatTime(t time.Time) string { return t.Format("20060102150405-0700") }
