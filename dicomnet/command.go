package dicomnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Command fields, PS3.7 §9.3 and §10.3 (E.1-1). A response is the
// request's value | 0x8000.
const (
	CStoreRQ        uint16 = 0x0001
	CStoreRSP       uint16 = 0x8001
	CGetRQ          uint16 = 0x0010
	CGetRSP         uint16 = 0x8010
	CFindRQ         uint16 = 0x0020
	CFindRSP        uint16 = 0x8020
	CMoveRQ         uint16 = 0x0021
	CMoveRSP        uint16 = 0x8021
	CEchoRQ         uint16 = 0x0030
	CEchoRSP        uint16 = 0x8030
	NEventReportRQ  uint16 = 0x0100
	NEventReportRSP uint16 = 0x8100
	NGetRQ          uint16 = 0x0110
	NGetRSP         uint16 = 0x8110
	NSetRQ          uint16 = 0x0120
	NSetRSP         uint16 = 0x8120
	NActionRQ       uint16 = 0x0130
	NActionRSP      uint16 = 0x8130
	NCreateRQ       uint16 = 0x0140
	NCreateRSP      uint16 = 0x8140
	NDeleteRQ       uint16 = 0x0150
	NDeleteRSP      uint16 = 0x8150
	CCancelRQ       uint16 = 0x0FFF

	responseBit uint16 = 0x8000
)

// CommandDataSetType values, PS3.7 §9.3 and E.1-1: 0x0101 means no data
// set follows; any other value means one does.
const (
	NoDataSet      uint16 = 0x0101
	DataSetPresent uint16 = 0x0000
)

// Priority values, PS3.7 E.1-1.
const (
	PriorityMedium uint16 = 0x0000
	PriorityHigh   uint16 = 0x0001
	PriorityLow    uint16 = 0x0002
)

// Status codes, PS3.7 Annex C and PS3.4.
const (
	StatusSuccess                     uint16 = 0x0000
	StatusPending                     uint16 = 0xFF00
	StatusPendingWarning              uint16 = 0xFF01 // C-FIND: optional keys not supported
	StatusCancel                      uint16 = 0xFE00
	StatusNoSuchAttribute             uint16 = 0x0105
	StatusInvalidAttributeValue       uint16 = 0x0106
	StatusAttributeListError          uint16 = 0x0107
	StatusProcessingFailure           uint16 = 0x0110
	StatusDuplicateSOPInstance        uint16 = 0x0111
	StatusNoSuchSOPInstance           uint16 = 0x0112
	StatusAttributeValueOutOfRange    uint16 = 0x0116
	StatusInvalidObjectInstance       uint16 = 0x0117
	StatusNoSuchSOPClass              uint16 = 0x0118
	StatusClassInstanceConflict       uint16 = 0x0119
	StatusMissingAttribute            uint16 = 0x0120
	StatusMissingAttributeValue       uint16 = 0x0121
	StatusSOPClassNotSupported        uint16 = 0x0122
	StatusNotAuthorized               uint16 = 0x0124
	StatusDuplicateInvocation         uint16 = 0x0210
	StatusUnrecognizedOperation       uint16 = 0x0211
	StatusMistypedArgument            uint16 = 0x0212
	StatusResourceLimitation          uint16 = 0x0213
	StatusOutOfResources              uint16 = 0xA700 // C-STORE A7xx, C-FIND A700
	StatusOutOfResourcesMatches       uint16 = 0xA701 // C-MOVE/C-GET
	StatusOutOfResourcesSubOperations uint16 = 0xA702 // C-MOVE/C-GET
	StatusMoveDestinationUnknown      uint16 = 0xA801
	StatusDataSetDoesNotMatchSOPClass uint16 = 0xA900 // A9xx
	StatusCannotUnderstand            uint16 = 0xC000 // Cxxx
	StatusCoercionOfDataElements      uint16 = 0xB000 // C-STORE warning; C-MOVE/C-GET: sub-operations complete, one or more failures
	StatusElementsDiscarded           uint16 = 0xB006
	StatusDataSetDoesNotMatchWarning  uint16 = 0xB007
)

// IsPending reports whether a status is Pending (0xFF00, 0xFF01), meaning
// more responses follow (PS3.7 C.4).
func IsPending(status uint16) bool { return status == StatusPending || status == StatusPendingWarning }

// Tag is a data element tag (group, element).
type Tag struct {
	Group, Element uint16
}

func (t Tag) String() string { return fmt.Sprintf("(%04X,%04X)", t.Group, t.Element) }

func (t Tag) u32() uint32 { return uint32(t.Group)<<16 | uint32(t.Element) }

// Command element tags, PS3.7 E.1-1.
var (
	TagCommandGroupLength                   = Tag{0x0000, 0x0000}
	TagAffectedSOPClassUID                  = Tag{0x0000, 0x0002}
	TagRequestedSOPClassUID                 = Tag{0x0000, 0x0003}
	TagCommandField                         = Tag{0x0000, 0x0100}
	TagMessageID                            = Tag{0x0000, 0x0110}
	TagMessageIDBeingRespondedTo            = Tag{0x0000, 0x0120}
	TagMoveDestination                      = Tag{0x0000, 0x0600}
	TagPriority                             = Tag{0x0000, 0x0700}
	TagCommandDataSetType                   = Tag{0x0000, 0x0800}
	TagStatus                               = Tag{0x0000, 0x0900}
	TagOffendingElement                     = Tag{0x0000, 0x0901}
	TagErrorComment                         = Tag{0x0000, 0x0902}
	TagErrorID                              = Tag{0x0000, 0x0903}
	TagAffectedSOPInstanceUID               = Tag{0x0000, 0x1000}
	TagRequestedSOPInstanceUID              = Tag{0x0000, 0x1001}
	TagEventTypeID                          = Tag{0x0000, 0x1002}
	TagAttributeIdentifierList              = Tag{0x0000, 0x1005}
	TagActionTypeID                         = Tag{0x0000, 0x1008}
	TagNumberOfRemainingSuboperations       = Tag{0x0000, 0x1020}
	TagNumberOfCompletedSuboperations       = Tag{0x0000, 0x1021}
	TagNumberOfFailedSuboperations          = Tag{0x0000, 0x1022}
	TagNumberOfWarningSuboperations         = Tag{0x0000, 0x1023}
	TagMoveOriginatorApplicationEntityTitle = Tag{0x0000, 0x1030}
	TagMoveOriginatorMessageID              = Tag{0x0000, 0x1031}
)

// Command is a DIMSE command set (PS3.7 §9.3, §10.3, Annex E). Encode
// writes the elements each command field calls for; Decode fills what came.
type Command struct {
	CommandField              uint16
	MessageID                 uint16
	MessageIDBeingRespondedTo uint16
	AffectedSOPClassUID       string
	RequestedSOPClassUID      string
	AffectedSOPInstanceUID    string
	RequestedSOPInstanceUID   string
	Priority                  uint16
	// CommandDataSetType is NoDataSet or, for a data set, any other value
	// (DataSetPresent when we send).
	CommandDataSetType uint16
	Status             uint16
	ErrorComment       string
	OffendingElement   []Tag
	MoveDestination    string
	// MoveOriginatorApplicationEntityTitle and MoveOriginatorMessageID mark
	// a C-STORE sub-operation of a C-MOVE (PS3.7 §9.3.1.1).
	MoveOriginatorApplicationEntityTitle string
	MoveOriginatorMessageID              uint16
	// Sub-operation counters of C-MOVE/C-GET responses (PS3.7 §9.3.3.2,
	// §9.3.4.2); nil means absent.
	NumberOfRemainingSuboperations *uint16
	NumberOfCompletedSuboperations *uint16
	NumberOfFailedSuboperations    *uint16
	NumberOfWarningSuboperations   *uint16
	EventTypeID                    uint16
	ActionTypeID                   uint16
	AttributeIdentifierList        []Tag
	// Other keeps elements this type does not model (for example Error ID,
	// or retired group 0000 elements), so that they survive a round trip.
	Other []RawElement
}

// RawElement is a command element kept as its Implicit VR LE value bytes.
type RawElement struct {
	Tag   Tag
	Value []byte
}

// HasDataSet reports whether a data set follows the command (PS3.7 E.1-1).
func (c *Command) HasDataSet() bool { return c.CommandDataSetType != NoDataSet }

// IsResponse reports whether the command is a response.
func (c *Command) IsResponse() bool {
	return c.CommandField&responseBit != 0
}

// U16 returns a pointer to v, for the optional sub-operation counters.
func U16(v uint16) *uint16 { return &v }

// ErrMalformedCommand: a command set that cannot be decoded.
var ErrMalformedCommand = errors.New("dicomnet: malformed command set")

// MaxCommandLength bounds a command set. Commands are a few hundred bytes;
// the largest legitimate one is an N-GET with a long Attribute Identifier
// List, which 1 MiB still covers many times over.
const MaxCommandLength = 1 << 20

type cmdElem struct {
	tag uint32
	val []byte
}

func strVal(s string, pad byte) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, pad)
	}
	return b
}

func u16Val(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

func tagsVal(ts []Tag) []byte {
	b := make([]byte, 0, 4*len(ts))
	for _, t := range ts {
		b = binary.LittleEndian.AppendUint16(b, t.Group)
		b = binary.LittleEndian.AppendUint16(b, t.Element)
	}
	return b
}

// AppendBinary appends the command set, Implicit VR Little Endian with
// CommandGroupLength first (PS3.7 §6.3.1, E.1).
func (c *Command) AppendBinary(b []byte) ([]byte, error) {
	var es []cmdElem
	add := func(t Tag, v []byte) { es = append(es, cmdElem{t.u32(), v}) }
	addUID := func(t Tag, s string) {
		if s != "" {
			add(t, strVal(s, 0))
		}
	}
	f := c.CommandField
	rq := f&responseBit == 0
	addUID(TagAffectedSOPClassUID, c.AffectedSOPClassUID)
	addUID(TagRequestedSOPClassUID, c.RequestedSOPClassUID)
	add(TagCommandField, u16Val(f))
	switch {
	case f == CCancelRQ:
		add(TagMessageIDBeingRespondedTo, u16Val(c.MessageIDBeingRespondedTo))
	case rq:
		add(TagMessageID, u16Val(c.MessageID))
	default:
		add(TagMessageIDBeingRespondedTo, u16Val(c.MessageIDBeingRespondedTo))
	}
	if c.MoveDestination != "" {
		add(TagMoveDestination, strVal(c.MoveDestination, ' '))
	}
	switch f {
	case CStoreRQ, CFindRQ, CGetRQ, CMoveRQ:
		add(TagPriority, u16Val(c.Priority))
	}
	add(TagCommandDataSetType, u16Val(c.CommandDataSetType))
	if !rq {
		add(TagStatus, u16Val(c.Status))
	}
	if len(c.OffendingElement) > 0 {
		add(TagOffendingElement, tagsVal(c.OffendingElement))
	}
	if c.ErrorComment != "" {
		add(TagErrorComment, strVal(c.ErrorComment, ' '))
	}
	addUID(TagAffectedSOPInstanceUID, c.AffectedSOPInstanceUID)
	addUID(TagRequestedSOPInstanceUID, c.RequestedSOPInstanceUID)
	if f == NEventReportRQ || (f == NEventReportRSP && c.EventTypeID != 0) {
		add(TagEventTypeID, u16Val(c.EventTypeID))
	}
	if len(c.AttributeIdentifierList) > 0 {
		add(TagAttributeIdentifierList, tagsVal(c.AttributeIdentifierList))
	}
	if f == NActionRQ || (f == NActionRSP && c.ActionTypeID != 0) {
		add(TagActionTypeID, u16Val(c.ActionTypeID))
	}
	for i, p := range []*uint16{c.NumberOfRemainingSuboperations, c.NumberOfCompletedSuboperations, c.NumberOfFailedSuboperations, c.NumberOfWarningSuboperations} {
		if p != nil {
			add(Tag{0, 0x1020 + uint16(i)}, u16Val(*p))
		}
	}
	if c.MoveOriginatorApplicationEntityTitle != "" {
		add(TagMoveOriginatorApplicationEntityTitle, strVal(c.MoveOriginatorApplicationEntityTitle, ' '))
		add(TagMoveOriginatorMessageID, u16Val(c.MoveOriginatorMessageID))
	}
	for _, o := range c.Other {
		if o.Tag.Group != 0 || o.Tag.Element == 0 || slices.ContainsFunc(es, func(e cmdElem) bool { return e.tag == o.Tag.u32() }) {
			continue
		}
		add(o.Tag, o.Value)
	}
	slices.SortFunc(es, func(a, b cmdElem) int { return int(a.tag) - int(b.tag) })
	total := 0
	for _, e := range es {
		total += 8 + len(e.val)
	}
	b = binary.LittleEndian.AppendUint32(b, 0) // (0000,0000)
	b = binary.LittleEndian.AppendUint32(b, 4)
	b = binary.LittleEndian.AppendUint32(b, uint32(total))
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, uint16(e.tag>>16))
		b = binary.LittleEndian.AppendUint16(b, uint16(e.tag))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.val)))
		b = append(b, e.val...)
	}
	return b, nil
}

// DecodeCommand decodes a command set (Implicit VR Little Endian, group
// 0000 only, PS3.7 §6.3.1). Elements it does not model go to Other.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) > MaxCommandLength {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformedCommand, len(b))
	}
	c := &Command{}
	var sawField, sawType bool
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated element header", ErrMalformedCommand)
		}
		t := Tag{binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:])}
		l := binary.LittleEndian.Uint32(b[4:])
		if uint64(l) > uint64(len(b)-8) {
			return nil, fmt.Errorf("%w: element %v length %d exceeds command", ErrMalformedCommand, t, l)
		}
		v := b[8 : 8+l]
		b = b[8+l:]
		if t.Group != 0 {
			return nil, fmt.Errorf("%w: element %v outside group 0000", ErrMalformedCommand, t)
		}
		u16 := func(dst *uint16) error {
			if len(v) != 2 {
				return fmt.Errorf("%w: element %v has length %d, want 2", ErrMalformedCommand, t, len(v))
			}
			*dst = binary.LittleEndian.Uint16(v)
			return nil
		}
		var err error
		switch t {
		case TagCommandGroupLength:
			if len(v) != 4 {
				return nil, fmt.Errorf("%w: CommandGroupLength length %d", ErrMalformedCommand, len(v))
			}
			if n := binary.LittleEndian.Uint32(v); uint64(n) != uint64(len(b)) {
				return nil, fmt.Errorf("%w: CommandGroupLength %d, %d bytes follow", ErrMalformedCommand, n, len(b))
			}
		case TagAffectedSOPClassUID:
			c.AffectedSOPClassUID = trimUID(v)
		case TagRequestedSOPClassUID:
			c.RequestedSOPClassUID = trimUID(v)
		case TagAffectedSOPInstanceUID:
			c.AffectedSOPInstanceUID = trimUID(v)
		case TagRequestedSOPInstanceUID:
			c.RequestedSOPInstanceUID = trimUID(v)
		case TagCommandField:
			sawField = true
			err = u16(&c.CommandField)
		case TagMessageID:
			err = u16(&c.MessageID)
		case TagMessageIDBeingRespondedTo:
			err = u16(&c.MessageIDBeingRespondedTo)
		case TagMoveDestination:
			c.MoveDestination = trimAE(v)
		case TagPriority:
			err = u16(&c.Priority)
		case TagCommandDataSetType:
			sawType = true
			err = u16(&c.CommandDataSetType)
		case TagStatus:
			err = u16(&c.Status)
		case TagOffendingElement:
			c.OffendingElement, err = decodeTags(t, v)
		case TagErrorComment:
			c.ErrorComment = strings.TrimRight(string(v), " \x00")
		case TagEventTypeID:
			err = u16(&c.EventTypeID)
		case TagAttributeIdentifierList:
			c.AttributeIdentifierList, err = decodeTags(t, v)
		case TagActionTypeID:
			err = u16(&c.ActionTypeID)
		case TagNumberOfRemainingSuboperations, TagNumberOfCompletedSuboperations,
			TagNumberOfFailedSuboperations, TagNumberOfWarningSuboperations:
			var n uint16
			if err = u16(&n); err == nil {
				p := &n
				switch t {
				case TagNumberOfRemainingSuboperations:
					c.NumberOfRemainingSuboperations = p
				case TagNumberOfCompletedSuboperations:
					c.NumberOfCompletedSuboperations = p
				case TagNumberOfFailedSuboperations:
					c.NumberOfFailedSuboperations = p
				default:
					c.NumberOfWarningSuboperations = p
				}
			}
		case TagMoveOriginatorApplicationEntityTitle:
			c.MoveOriginatorApplicationEntityTitle = trimAE(v)
		case TagMoveOriginatorMessageID:
			err = u16(&c.MoveOriginatorMessageID)
		default:
			c.Other = append(c.Other, RawElement{Tag: t, Value: append([]byte(nil), v...)})
		}
		if err != nil {
			return nil, err
		}
	}
	if !sawField || !sawType {
		return nil, fmt.Errorf("%w: CommandField or CommandDataSetType missing", ErrMalformedCommand)
	}
	return c, nil
}

func decodeTags(t Tag, v []byte) ([]Tag, error) {
	if len(v)%4 != 0 {
		return nil, fmt.Errorf("%w: element %v (AT) has length %d", ErrMalformedCommand, t, len(v))
	}
	ts := make([]Tag, 0, len(v)/4)
	for i := 0; i < len(v); i += 4 {
		ts = append(ts, Tag{binary.LittleEndian.Uint16(v[i:]), binary.LittleEndian.Uint16(v[i+2:])})
	}
	return ts, nil
}
