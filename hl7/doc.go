// Package hl7 reads, writes and transports HL7 v2 messages (v2.3 to
// v2.5.1 as used by RIS and HIS systems). It knows nothing of orders or
// patients: the bridges that do are built on it.
//
// # Reading
//
// Parse takes one message, as delivered by an MLLP block, and returns a
// *Message whose header is available typed (Header) and whose values are
// addressed by HL7 positions: seg.Field(3), seg.Component(3, 1),
// seg.Repetitions(3), or a location string, msg.Get("PID-3(2).4"). MSH-1
// is the field separator and MSH-2 the encoding characters, so MSH field
// numbers match the standard. Values come back unescaped (HL7 2.5.1 §2.7)
// and in UTF-8: MSH-18 "8859/1", "8859/15", "UNICODE UTF-8" (and the
// common "UTF-8") are decoded; an empty MSH-18 or "ASCII" accepts UTF-8
// and falls back to Latin-1 for other bytes, because senders routinely
// put accented names in messages that declare nothing. Any other MSH-18 is
// refused with ErrCharset: HL7 table 0357 has no character-set code, so
// the reject carries 103 "Table value not found" at MSH-18 (the field is
// coded from table 0211 and the value is not one this receiver supports).
// Bytes invalid in the declared set are refused with ErrEncoding, code 102.
//
// Segments may end in CR, LF or CRLF. Delimiters are whatever MSH-1 and
// MSH-2 declare. Parse rejects a message that does not start with MSH,
// whose delimiters are unusable, that has a segment without a segment ID,
// or whose MSH-9, MSH-10, MSH-11 or MSH-12 is empty; the *ParseError
// carries a table 0357 code, an ERR location and whatever of the header
// was readable, from which NewACKFromHeader builds the reject.
//
// The chosen parsing library, github.com/lenaten/hl7, is not used for
// parsing: at the pinned version it slices byte offsets with rune counts
// (fields shift after any multi-byte UTF-8 character, e.g. "Müller^Jörg"
// reads as "Müller^Jö"), skips the character after an escape character
// (so "\T\|" hides the field separator that follows), does not split
// segments on LF, stops at a NUL byte, and does not unescape. Splitting
// HL7 on single-byte delimiters is short, so this package does its own
// and checks it against that library where the library is right (see
// TestAgreesWithLenatenHL7).
//
// # Writing
//
// Builder writes segments, escaping values, joining components,
// sub-components and repetitions, and leaving out trailing empty fields;
// Builder.MSH writes a header with a new MSH-10 (NewControlID). NewACK
// builds an original-mode acknowledgment (HL7 2.5.1 §2.9.2) with ERR
// segments in the form of the request's version: ERR-2/ERR-3/ERR-4 from
// v2.5, ERR-1 before.
//
// # Transport
//
// Package hl7/mllp frames messages (MLLP release 1). Server accepts MLLP
// connections and calls a Handler per message, replying on the same
// connection in order; Client keeps a connection to a peer and sends
// messages one at a time, waiting for each acknowledgment.
package hl7
