package hl7

import (
	"strconv"
	"time"
)

// DefaultVersionID is the MSH-12 of replies to requests without one.
const DefaultVersionID = "2.5.1"

// AckCode is MSA-1, the acknowledgment code (HL7 table 0008).
type AckCode string

// Original-mode acknowledgment codes (HL7 2.5.1 §2.9.2) and their
// enhanced-mode counterparts.
const (
	AA AckCode = "AA" // application accept
	AE AckCode = "AE" // application error
	AR AckCode = "AR" // application reject
	CA AckCode = "CA" // commit accept
	CE AckCode = "CE" // commit error
	CR AckCode = "CR" // commit reject
)

// ErrorCode is a code of HL7 table 0357, "Message error condition codes",
// carried in ERR-3 (v2.5 and later) or ERR-1.4 (v2.3, v2.4).
type ErrorCode int

// HL7 table 0357.
const (
	MessageAccepted          ErrorCode = 0
	SegmentSequenceError     ErrorCode = 100
	RequiredFieldMissing     ErrorCode = 101
	DataTypeError            ErrorCode = 102
	TableValueNotFound       ErrorCode = 103
	UnsupportedMessageType   ErrorCode = 200
	UnsupportedEventCode     ErrorCode = 201
	UnsupportedProcessingID  ErrorCode = 202
	UnsupportedVersionID     ErrorCode = 203
	UnknownKeyIdentifier     ErrorCode = 204
	DuplicateKeyIdentifier   ErrorCode = 205
	ApplicationRecordLocked  ErrorCode = 206
	ApplicationInternalError ErrorCode = 207
)

var errorCodeText = map[ErrorCode]string{
	MessageAccepted:          "Message accepted",
	SegmentSequenceError:     "Segment sequence error",
	RequiredFieldMissing:     "Required field missing",
	DataTypeError:            "Data type error",
	TableValueNotFound:       "Table value not found",
	UnsupportedMessageType:   "Unsupported message type",
	UnsupportedEventCode:     "Unsupported event code",
	UnsupportedProcessingID:  "Unsupported processing id",
	UnsupportedVersionID:     "Unsupported version id",
	UnknownKeyIdentifier:     "Unknown key identifier",
	DuplicateKeyIdentifier:   "Duplicate key identifier",
	ApplicationRecordLocked:  "Application record locked",
	ApplicationInternalError: "Application internal error",
}

// String returns the table 0357 description.
func (c ErrorCode) String() string {
	if s, ok := errorCodeText[c]; ok {
		return s
	}
	return "Error " + strconv.Itoa(int(c))
}

// Severity is ERR-4 (HL7 table 0516).
type Severity string

// HL7 table 0516.
const (
	SeverityError       Severity = "E"
	SeverityWarning     Severity = "W"
	SeverityInformation Severity = "I"
)

// ErrorDetail is one ERR segment (or ERR-1 repetition before v2.5).
type ErrorDetail struct {
	Location Location
	Code     ErrorCode
	Text     string   // defaults to the table 0357 description
	Severity Severity // defaults to SeverityError; v2.5 and later only
}

// ACKOptions tune NewACK. The zero value is a plain acknowledgment.
type ACKOptions struct {
	Text             string        // MSA-3, text message
	Errors           []ErrorDetail // ERR segments
	MessageControlID string        // MSH-10 of the ACK; NewControlID if empty
	Time             time.Time     // MSH-7 of the ACK; time.Now if zero
}

// NewACK builds the original-mode acknowledgment of req (HL7 2.5.1 §2.9.2,
// §2.14.1): MSH with sending and receiving application and facility
// swapped, MSH-9 ACK^<trigger>^ACK, a new MSH-10 and the request's MSH-11
// and MSH-12; MSA-1 code, MSA-2 the request's MSH-10, MSA-3 text; one ERR
// per error. It is written with the request's delimiters.
func NewACK(req *Message, code AckCode, opts *ACKOptions) ([]byte, error) {
	return NewACKFromHeader(req.Header(), code, opts)
}

// NewACKFromHeader builds an acknowledgment from a request's header alone,
// which is all there is when the request could not be parsed: use the
// Header of a *ParseError to reject (AR) a message whose MSH was only
// partly readable. Empty header fields stay empty in the reply.
func NewACKFromHeader(req Header, code AckCode, opts *ACKOptions) ([]byte, error) {
	// The reply echoes the request's MSH-18 when that is a character set
	// this package reads; a set it cannot read (the reason for a reject,
	// perhaps) is not claimed, as the reply is not written in it.
	charset := req.CharacterSet
	if _, err := newDecoder(charset); err != nil {
		charset = ""
	}
	out, err := buildACK(req, charset, code, opts)
	if err != nil || isASCII(out) {
		return out, err
	}
	// The reply carries non-ASCII text and is written in UTF-8: say so in
	// MSH-18 unless the request already declared UTF-8.
	switch charset {
	case CharsetUTF8, charsetUTF8Alt:
		return out, nil
	}
	return buildACK(req, CharsetUTF8, code, opts)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func buildACK(req Header, charset string, code AckCode, opts *ACKOptions) ([]byte, error) {
	if opts == nil {
		opts = &ACKOptions{}
	}
	d := req.Delimiters()
	t := opts.Time
	if t.IsZero() {
		t = time.Now()
	}
	h := Header{
		SendingApplication:   req.ReceivingApplication,
		SendingFacility:      req.ReceivingFacility,
		ReceivingApplication: req.SendingApplication,
		ReceivingFacility:    req.SendingFacility,
		DateTimeOfMessage:    FormatTime(t),
		MessageType:          "ACK",
		TriggerEvent:         req.TriggerEvent,
		MessageControlID:     opts.MessageControlID,
		ProcessingID:         req.ProcessingID,
		ProcessingMode:       req.ProcessingMode,
		VersionID:            req.VersionID,
		CharacterSet:         charset,
	}
	// MSH-9.3, message structure, exists from v2.3.1 on; the structure of
	// every acknowledgment is ACK.
	if h.TriggerEvent != "" && !versionBefore(req.VersionID, 2, 3, 1) {
		h.MessageStructure = "ACK"
	}
	if h.ProcessingID == "" {
		h.ProcessingID = "P"
	}
	// MSH-12 is required; a request too broken to name its version is
	// answered as v2.5.1, the version this package follows.
	if h.VersionID == "" {
		h.VersionID = DefaultVersionID
	}
	b := &Builder{Delimiters: d}
	b.MSH(h)
	b.Texts("MSA", string(code), req.MessageControlID, opts.Text)
	if versionBefore25(req.VersionID) {
		// v2.3/v2.4: one ERR whose repeating ERR-1 (ELD) holds
		// segment^sequence^field^code&text&HL70357 per error.
		if len(opts.Errors) > 0 {
			var reps []Field
			for _, e := range opts.Errors {
				reps = append(reps, SubComponents(
					[]string{e.Location.Segment}, []string{posText(max(e.Location.SegmentRepetition, 1), e.Location.Segment != "")},
					[]string{posText(e.Location.Field, true)},
					[]string{strconv.Itoa(int(e.Code)), e.text(), "HL70357"}))
			}
			b.Segment("ERR", Repeat(reps...))
		}
	} else {
		// v2.5+: ERR-2 location (ERL), ERR-3 code (CWE, table 0357),
		// ERR-4 severity (HL7 2.5.1 §2.15.5).
		for _, e := range opts.Errors {
			l := e.Location
			loc := Field{}
			if l.Segment != "" {
				loc = Components(l.Segment, posText(max(l.SegmentRepetition, 1), true),
					posText(l.Field, true), posText(max(l.FieldRepetition, 1), l.Field > 0),
					posText(l.Component, true), posText(l.SubComponent, true))
			}
			sev := e.Severity
			if sev == "" {
				sev = SeverityError
			}
			b.Segment("ERR", Field{}, loc, Components(strconv.Itoa(int(e.Code)), e.text(), "HL70357"), Text(string(sev)))
		}
	}
	return b.Bytes()
}

func (e ErrorDetail) text() string {
	if e.Text != "" {
		return e.Text
	}
	return e.Code.String()
}

func posText(n int, show bool) string {
	if !show || n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// versionBefore reports whether version string v is older than
// major.minor.patch; an unreadable version counts as current.
func versionBefore(v string, major, minor, patch int) bool {
	var n [3]int
	parts := splitVersion(v)
	if parts == nil {
		return false
	}
	copy(n[:], parts)
	want := [3]int{major, minor, patch}
	for i := range n {
		if n[i] != want[i] {
			return n[i] < want[i]
		}
	}
	return false
}

func splitVersion(v string) []int {
	var out []int
	cur, digits := 0, 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == '.' {
			if digits == 0 {
				return nil
			}
			out = append(out, cur)
			cur, digits = 0, 0
			continue
		}
		if v[i] < '0' || v[i] > '9' {
			return nil
		}
		cur = cur*10 + int(v[i]-'0')
		digits++
	}
	return out
}
