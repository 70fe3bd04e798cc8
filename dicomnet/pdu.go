package dicomnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDU types, PS3.8 §9.3.1 Table 9-10 and onwards.
const (
	PDUTypeAssociateRQ byte = 0x01
	PDUTypeAssociateAC byte = 0x02
	PDUTypeAssociateRJ byte = 0x03
	PDUTypePDataTF     byte = 0x04
	PDUTypeReleaseRQ   byte = 0x05
	PDUTypeReleaseRP   byte = 0x06
	PDUTypeAbort       byte = 0x07
)

// Variable item types of A-ASSOCIATE-RQ/AC, PS3.8 §9.3.2 and §9.3.3.
const (
	itemApplicationContext   byte = 0x10
	itemPresentationContextR byte = 0x20
	itemPresentationContextA byte = 0x21
	itemAbstractSyntax       byte = 0x30
	itemTransferSyntax       byte = 0x40
	itemUserInformation      byte = 0x50
	subMaxLength             byte = 0x51
	subImplementationClass   byte = 0x52
	subAsyncOpsWindow        byte = 0x53
	subRoleSelection         byte = 0x54
	subImplementationVersion byte = 0x55
	subSOPClassExtended      byte = 0x56
	subSOPClassCommonExt     byte = 0x57
	subUserIdentityRQ        byte = 0x58
	subUserIdentityAC        byte = 0x59
)

// pduHeaderLen is the fixed PDU header: type, reserved, 4-byte length (PS3.8 §9.3.1).
const pduHeaderLen = 6

// DefaultMaxAssociatePDU bounds A-ASSOCIATE-RQ/AC PDUs. They carry only
// UIDs and short items; 64 KiB is far above anything a real peer sends
// (128 presentation contexts of 10 transfer syntaxes each is about 40 KiB).
const DefaultMaxAssociatePDU = 64 << 10

// ApplicationContextName is the DICOM application context, PS3.7 Annex A.2.1.
const ApplicationContextName = "1.2.840.10008.3.1.1.1"

// Errors of the upper layer codec. Decoding errors wrap one of these, so
// callers can test them with errors.Is; AbortReasonFor maps them to the
// A-ABORT reason PS3.8 §9.3.8 asks for.
var (
	// ErrMalformedPDU: the bytes are not a well-formed PDU (truncated, item
	// lengths exceeding their parent, wrong fixed fields).
	ErrMalformedPDU = errors.New("dicomnet: malformed PDU")
	// ErrPDUTooLarge: the PDU length field exceeds the configured maximum.
	ErrPDUTooLarge = errors.New("dicomnet: PDU length exceeds maximum")
	// ErrUnrecognizedPDU: the PDU type is not one of PS3.8 Table 9-10.
	ErrUnrecognizedPDU = errors.New("dicomnet: unrecognized PDU type")
	// ErrUnexpectedPDU: a valid PDU arrived in a state where it is not allowed.
	ErrUnexpectedPDU = errors.New("dicomnet: unexpected PDU")
	// ErrUnrecognizedItem: a variable item of an unknown type.
	ErrUnrecognizedItem = errors.New("dicomnet: unrecognized PDU parameter")
	// ErrUnexpectedItem: a known variable item where it is not allowed.
	ErrUnexpectedItem = errors.New("dicomnet: unexpected PDU parameter")
)

// PDU is one upper layer protocol data unit.
type PDU interface {
	// PDUType is the PDU's type byte.
	PDUType() byte
	// AppendBinary appends the encoded PDU, header included.
	AppendBinary(b []byte) ([]byte, error)
}

// AssociateRQAC is an A-ASSOCIATE-RQ (PS3.8 §9.3.2) or A-ASSOCIATE-AC
// (§9.3.3). Both have the same layout; in an AC the AE titles are copies of
// the RQ's and presentation context items carry a result.
type AssociateRQAC struct {
	Type                   byte // PDUTypeAssociateRQ or PDUTypeAssociateAC
	ProtocolVersion        uint16
	CalledAETitle          string
	CallingAETitle         string
	ApplicationContextName string
	PresentationContexts   []PresentationContextItem
	UserInformation        UserInformation
}

// PDUType implements PDU.
func (p *AssociateRQAC) PDUType() byte { return p.Type }

// PresentationContextItem is item 0x20 (RQ, PS3.8 §9.3.2.2) or 0x21 (AC,
// §9.3.3.2).
type PresentationContextItem struct {
	ID byte
	// Result is the AC's result/reason (PresentationContextAccepted...).
	Result byte
	// AbstractSyntax is the SOP class UID; RQ only.
	AbstractSyntax string
	// TransferSyntaxes: proposed ones in an RQ, exactly one in an AC.
	TransferSyntaxes []string
}

// Presentation context results, PS3.8 §9.3.3.2 Table 9-18.
const (
	PresentationContextAccepted                   byte = 0
	PresentationContextUserRejection              byte = 1
	PresentationContextProviderRejection          byte = 2
	PresentationContextAbstractSyntaxNotSupported byte = 3
	PresentationContextTransferSyntaxNotSupported byte = 4
)

// UserInformation is item 0x50 and its sub-items (PS3.8 Annex D, PS3.7 Annex D.3.3).
type UserInformation struct {
	// MaxLength is the maximum P-DATA-TF variable field length the sender
	// can receive; 0 means no limit (PS3.8 D.1).
	MaxLength                 uint32
	ImplementationClassUID    string
	ImplementationVersionName string
	// AsyncOperationsWindow is nil when the sub-item is absent, which means
	// one outstanding operation each way (PS3.7 D.3.3.3).
	AsyncOperationsWindow *AsyncOperationsWindow
	RoleSelections        []RoleSelection
	// ExtendedNegotiations keeps 0x56 and 0x57 sub-items as they came.
	ExtendedNegotiations []RawSubItem
	UserIdentity         *UserIdentity         // 0x58, RQ only
	UserIdentityResponse *UserIdentityResponse // 0x59, AC only
	// Unknown keeps sub-items of unknown types; PS3.7 D.3.3 lets a receiver
	// ignore them.
	Unknown []RawSubItem
}

// AsyncOperationsWindow is sub-item 0x53, PS3.7 D.3.3.3.
type AsyncOperationsWindow struct {
	MaxOperationsInvoked   uint16
	MaxOperationsPerformed uint16
}

// RoleSelection is sub-item 0x54, PS3.7 D.3.3.4. The roles are those of the
// association requestor.
type RoleSelection struct {
	SOPClassUID string
	SCURole     bool
	SCPRole     bool
}

// RawSubItem is a user information sub-item kept undecoded.
type RawSubItem struct {
	Type byte
	Data []byte
}

// User identity types, PS3.7 D.3.3.7 Table D.3-14.
const (
	UserIdentityUsername         byte = 1
	UserIdentityUsernamePasscode byte = 2
	UserIdentityKerberos         byte = 3
	UserIdentitySAML             byte = 4
	UserIdentityJWT              byte = 5
)

// UserIdentity is sub-item 0x58, PS3.7 D.3.3.7.1.
type UserIdentity struct {
	Type                      byte
	PositiveResponseRequested bool
	PrimaryField              []byte
	SecondaryField            []byte // passcode, for UserIdentityUsernamePasscode
}

// UserIdentityResponse is sub-item 0x59, PS3.7 D.3.3.7.2.
type UserIdentityResponse struct {
	ServerResponse []byte
}

// AssociateRJ is an A-ASSOCIATE-RJ PDU, PS3.8 §9.3.4.
type AssociateRJ struct {
	Result byte
	Source byte
	Reason byte
}

// PDUType implements PDU.
func (*AssociateRJ) PDUType() byte { return PDUTypeAssociateRJ }

// A-ASSOCIATE-RJ result, source and reason values, PS3.8 §9.3.4 Table 9-21.
const (
	RejectPermanent byte = 1
	RejectTransient byte = 2

	RejectSourceServiceUser           byte = 1
	RejectSourceServiceProviderACSE   byte = 2
	RejectSourceServiceProviderPresen byte = 3

	// Source 1 (service user).
	RejectReasonNoReasonGiven                      byte = 1
	RejectReasonApplicationContextNameNotSupported byte = 2
	RejectReasonCallingAETitleNotRecognized        byte = 3
	RejectReasonCalledAETitleNotRecognized         byte = 7
	// Source 2 (ACSE).
	RejectReasonProtocolVersionNotSupported byte = 2
	// Source 3 (presentation).
	RejectReasonTemporaryCongestion byte = 1
	RejectReasonLocalLimitExceeded  byte = 2
)

// Error makes a rejection usable as an error by the requestor.
func (r *AssociateRJ) Error() string {
	return fmt.Sprintf("dicomnet: association rejected (result %d, source %d, reason %d)", r.Result, r.Source, r.Reason)
}

// PDataTF is a P-DATA-TF PDU, PS3.8 §9.3.5. The association machinery
// streams P-DATA-TF without building this type; it exists for tests and
// tools that want a whole PDU.
type PDataTF struct {
	Items []PDV
}

// PDUType implements PDU.
func (*PDataTF) PDUType() byte { return PDUTypePDataTF }

// PDV is a presentation data value item, PS3.8 §9.3.5.1 and Annex E.2.
type PDV struct {
	PresentationContextID byte
	// MessageControlHeader: bit 0 set = command, bit 1 set = last fragment.
	MessageControlHeader byte
	Data                 []byte
}

// Message control header bits, PS3.8 Annex E.2.
const (
	pdvCommand byte = 0x01
	pdvLast    byte = 0x02
)

// ReleaseRQ is an A-RELEASE-RQ PDU, PS3.8 §9.3.6.
type ReleaseRQ struct{}

// PDUType implements PDU.
func (ReleaseRQ) PDUType() byte { return PDUTypeReleaseRQ }

// ReleaseRP is an A-RELEASE-RP PDU, PS3.8 §9.3.7.
type ReleaseRP struct{}

// PDUType implements PDU.
func (ReleaseRP) PDUType() byte { return PDUTypeReleaseRP }

// Abort is an A-ABORT PDU, PS3.8 §9.3.8.
type Abort struct {
	Source byte
	Reason byte
}

// PDUType implements PDU.
func (*Abort) PDUType() byte { return PDUTypeAbort }

// A-ABORT sources and provider reasons, PS3.8 §9.3.8 Table 9-26.
const (
	AbortSourceServiceUser     byte = 0
	AbortSourceServiceProvider byte = 2

	AbortReasonNotSpecified             byte = 0
	AbortReasonUnrecognizedPDU          byte = 1
	AbortReasonUnexpectedPDU            byte = 2
	AbortReasonUnrecognizedPDUParameter byte = 4
	AbortReasonUnexpectedPDUParameter   byte = 5
	AbortReasonInvalidPDUParameterValue byte = 6
)

// Error makes an abort received from the peer usable as an error.
func (a *Abort) Error() string {
	return fmt.Sprintf("dicomnet: association aborted (source %d, reason %d)", a.Source, a.Reason)
}

// AbortReasonFor returns the A-ABORT provider reason (PS3.8 §9.3.8) that
// fits a decoding error.
func AbortReasonFor(err error) byte {
	switch {
	case errors.Is(err, ErrUnrecognizedPDU):
		return AbortReasonUnrecognizedPDU
	case errors.Is(err, ErrUnexpectedPDU):
		return AbortReasonUnexpectedPDU
	case errors.Is(err, ErrUnrecognizedItem):
		return AbortReasonUnrecognizedPDUParameter
	case errors.Is(err, ErrUnexpectedItem):
		return AbortReasonUnexpectedPDUParameter
	case errors.Is(err, ErrMalformedPDU), errors.Is(err, ErrPDUTooLarge):
		return AbortReasonInvalidPDUParameterValue
	}
	return AbortReasonNotSpecified
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedPDU}, args...)...)
}

// ---- encoding ----

func appendHeader(b []byte, typ byte) ([]byte, int) {
	start := len(b)
	return append(b, typ, 0, 0, 0, 0, 0), start
}

func finishHeader(b []byte, start int) ([]byte, error) {
	n := len(b) - start - pduHeaderLen
	if uint64(n) > 0xFFFFFFFF {
		return b, fmt.Errorf("dicomnet: PDU too long to encode (%d bytes)", n)
	}
	binary.BigEndian.PutUint32(b[start+2:], uint32(n))
	return b, nil
}

// itemWriter appends variable items with 2-byte lengths (PS3.8 §9.3.2.1)
// and remembers the first item too long to encode.
type itemWriter struct {
	b   []byte
	err error
}

// item appends an item of type typ whose body is appended by body.
func (w *itemWriter) item(typ byte, body func()) {
	start := len(w.b)
	w.b = append(w.b, typ, 0, 0, 0)
	body()
	n := len(w.b) - start - 4
	if n > 0xFFFF {
		if w.err == nil {
			w.err = fmt.Errorf("dicomnet: item 0x%02x too long to encode (%d bytes)", typ, n)
		}
		return
	}
	binary.BigEndian.PutUint16(w.b[start+2:], uint16(n))
}

func (w *itemWriter) bytesItem(typ byte, v []byte) {
	w.item(typ, func() { w.b = append(w.b, v...) })
}

func (w *itemWriter) stringItem(typ byte, s string) {
	w.item(typ, func() { w.b = append(w.b, s...) })
}

// u16Bytes appends a field with a 2-byte length prefix (role selection UID,
// user identity fields).
func (w *itemWriter) u16Bytes(v []byte) {
	if len(v) > 0xFFFF && w.err == nil {
		w.err = fmt.Errorf("dicomnet: field too long to encode (%d bytes)", len(v))
	}
	w.b = binary.BigEndian.AppendUint16(w.b, uint16(len(v)))
	w.b = append(w.b, v...)
}

// aeTitle16 pads an AE title with spaces to the 16 bytes of PS3.8 §9.3.2.
func aeTitle16(b []byte, ae string) []byte {
	if len(ae) > 16 {
		ae = ae[:16]
	}
	b = append(b, ae...)
	for i := len(ae); i < 16; i++ {
		b = append(b, ' ')
	}
	return b
}

// AppendBinary implements PDU.
func (p *AssociateRQAC) AppendBinary(b []byte) ([]byte, error) {
	if p.Type != PDUTypeAssociateRQ && p.Type != PDUTypeAssociateAC {
		return b, fmt.Errorf("dicomnet: AssociateRQAC with type 0x%02x", p.Type)
	}
	b, start := appendHeader(b, p.Type)
	b = binary.BigEndian.AppendUint16(b, p.ProtocolVersion)
	b = append(b, 0, 0)
	b = aeTitle16(b, p.CalledAETitle)
	b = aeTitle16(b, p.CallingAETitle)
	b = append(b, make([]byte, 32)...)
	w := &itemWriter{b: b}
	w.stringItem(itemApplicationContext, p.ApplicationContextName)
	for _, pc := range p.PresentationContexts {
		if p.Type == PDUTypeAssociateRQ {
			w.item(itemPresentationContextR, func() {
				w.b = append(w.b, pc.ID, 0, 0, 0)
				w.stringItem(itemAbstractSyntax, pc.AbstractSyntax)
				for _, ts := range pc.TransferSyntaxes {
					w.stringItem(itemTransferSyntax, ts)
				}
			})
			continue
		}
		w.item(itemPresentationContextA, func() {
			w.b = append(w.b, pc.ID, 0, pc.Result, 0)
			ts := ""
			if len(pc.TransferSyntaxes) > 0 {
				ts = pc.TransferSyntaxes[0]
			}
			w.stringItem(itemTransferSyntax, ts)
		})
	}
	p.UserInformation.appendItem(w)
	if w.err != nil {
		return b, w.err
	}
	return finishHeader(w.b, start)
}

func (u *UserInformation) appendItem(w *itemWriter) {
	w.item(itemUserInformation, func() {
		w.item(subMaxLength, func() { w.b = binary.BigEndian.AppendUint32(w.b, u.MaxLength) })
		if u.ImplementationClassUID != "" {
			w.stringItem(subImplementationClass, u.ImplementationClassUID)
		}
		if a := u.AsyncOperationsWindow; a != nil {
			w.item(subAsyncOpsWindow, func() {
				w.b = binary.BigEndian.AppendUint16(w.b, a.MaxOperationsInvoked)
				w.b = binary.BigEndian.AppendUint16(w.b, a.MaxOperationsPerformed)
			})
		}
		for _, r := range u.RoleSelections {
			w.item(subRoleSelection, func() {
				w.u16Bytes([]byte(r.SOPClassUID))
				w.b = append(w.b, boolByte(r.SCURole), boolByte(r.SCPRole))
			})
		}
		if u.ImplementationVersionName != "" {
			w.stringItem(subImplementationVersion, u.ImplementationVersionName)
		}
		for _, x := range u.ExtendedNegotiations {
			w.bytesItem(x.Type, x.Data)
		}
		if id := u.UserIdentity; id != nil {
			w.item(subUserIdentityRQ, func() {
				w.b = append(w.b, id.Type, boolByte(id.PositiveResponseRequested))
				w.u16Bytes(id.PrimaryField)
				w.u16Bytes(id.SecondaryField)
			})
		}
		if r := u.UserIdentityResponse; r != nil {
			w.item(subUserIdentityAC, func() { w.u16Bytes(r.ServerResponse) })
		}
		for _, x := range u.Unknown {
			w.bytesItem(x.Type, x.Data)
		}
	})
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// AppendBinary implements PDU.
func (p *AssociateRJ) AppendBinary(b []byte) ([]byte, error) {
	return append(b, PDUTypeAssociateRJ, 0, 0, 0, 0, 4, 0, p.Result, p.Source, p.Reason), nil
}

// AppendBinary implements PDU.
func (ReleaseRQ) AppendBinary(b []byte) ([]byte, error) {
	return append(b, PDUTypeReleaseRQ, 0, 0, 0, 0, 4, 0, 0, 0, 0), nil
}

// AppendBinary implements PDU.
func (ReleaseRP) AppendBinary(b []byte) ([]byte, error) {
	return append(b, PDUTypeReleaseRP, 0, 0, 0, 0, 4, 0, 0, 0, 0), nil
}

// AppendBinary implements PDU.
func (p *Abort) AppendBinary(b []byte) ([]byte, error) {
	return append(b, PDUTypeAbort, 0, 0, 0, 0, 4, 0, 0, p.Source, p.Reason), nil
}

// AppendBinary implements PDU.
func (p *PDataTF) AppendBinary(b []byte) ([]byte, error) {
	b, start := appendHeader(b, PDUTypePDataTF)
	for _, v := range p.Items {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)+2))
		b = append(b, v.PresentationContextID, v.MessageControlHeader)
		b = append(b, v.Data...)
	}
	return finishHeader(b, start)
}

// ---- decoding ----

// ReadPDU reads one whole PDU from r. A length field above max is
// ErrPDUTooLarge and nothing is allocated for it. buf is reused for the
// body when large enough.
func ReadPDU(r io.Reader, max uint32, buf []byte) (PDU, error) {
	var h [pduHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[2:])
	if n > max {
		return nil, fmt.Errorf("%w: %d > %d", ErrPDUTooLarge, n, max)
	}
	if cap(buf) < pduHeaderLen+int(n) {
		buf = make([]byte, pduHeaderLen+int(n))
	}
	buf = buf[:pduHeaderLen+int(n)]
	copy(buf, h[:])
	if _, err := io.ReadFull(r, buf[pduHeaderLen:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformedPDU, err)
	}
	return DecodePDU(buf)
}

// DecodePDU decodes one whole PDU, header included. Byte slices in the
// result do not alias b.
func DecodePDU(b []byte) (PDU, error) {
	if len(b) < pduHeaderLen {
		return nil, malformed("short header (%d bytes)", len(b))
	}
	n := binary.BigEndian.Uint32(b[2:])
	if uint64(n) != uint64(len(b)-pduHeaderLen) {
		return nil, malformed("length field %d, have %d bytes", n, len(b)-pduHeaderLen)
	}
	body := b[pduHeaderLen:]
	switch b[0] {
	case PDUTypeAssociateRQ, PDUTypeAssociateAC:
		return decodeAssociate(b[0], body)
	case PDUTypeAssociateRJ:
		if len(body) != 4 {
			return nil, malformed("A-ASSOCIATE-RJ length %d", len(body))
		}
		return &AssociateRJ{Result: body[1], Source: body[2], Reason: body[3]}, nil
	case PDUTypePDataTF:
		p := &PDataTF{}
		err := forEachPDV(body, func(id, mch byte, data []byte) error {
			p.Items = append(p.Items, PDV{PresentationContextID: id, MessageControlHeader: mch, Data: append([]byte(nil), data...)})
			return nil
		})
		if err != nil {
			return nil, err
		}
		return p, nil
	case PDUTypeReleaseRQ, PDUTypeReleaseRP, PDUTypeAbort:
		if len(body) != 4 {
			return nil, malformed("PDU type 0x%02x length %d", b[0], len(body))
		}
		switch b[0] {
		case PDUTypeReleaseRQ:
			return ReleaseRQ{}, nil
		case PDUTypeReleaseRP:
			return ReleaseRP{}, nil
		}
		return &Abort{Source: body[2], Reason: body[3]}, nil
	}
	return nil, fmt.Errorf("%w: 0x%02x", ErrUnrecognizedPDU, b[0])
}

// forEachPDV walks the PDV items of a P-DATA-TF body (PS3.8 §9.3.5).
func forEachPDV(body []byte, fn func(id, mch byte, data []byte) error) error {
	if len(body) == 0 {
		return malformed("P-DATA-TF without PDV items")
	}
	for len(body) > 0 {
		if len(body) < 6 {
			return malformed("truncated PDV item header")
		}
		l := binary.BigEndian.Uint32(body)
		if l < 2 || uint64(l) > uint64(len(body)-4) {
			return malformed("PDV item length %d exceeds P-DATA-TF", l)
		}
		if err := fn(body[4], body[5], body[6:4+l]); err != nil {
			return err
		}
		body = body[4+l:]
	}
	return nil
}

// trimUID drops the trailing NUL or space padding some peers put on UIDs;
// PS3.8 Annex F says UIDs in items are not padded, PS3.5 §9.1 allows NUL.
func trimUID(b []byte) string {
	return strings.TrimRight(string(b), "\x00 ")
}

// trimAE drops insignificant leading and trailing spaces of an AE title (PS3.5 §6.2, AE).
func trimAE(b []byte) string {
	return strings.Trim(string(b), " \x00")
}

// items splits a sequence of variable items with 2-byte lengths (PS3.8 §9.3.2.1).
func forEachItem(b []byte, fn func(typ byte, body []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return malformed("truncated item header")
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l > len(b)-4 {
			return malformed("item 0x%02x length %d exceeds its parent", b[0], l)
		}
		if err := fn(b[0], b[4:4+l]); err != nil {
			return err
		}
		b = b[4+l:]
	}
	return nil
}

func decodeAssociate(typ byte, body []byte) (*AssociateRQAC, error) {
	// Fixed part: protocol version 2, reserved 2, called 16, calling 16, reserved 32.
	if len(body) < 68 {
		return nil, malformed("A-ASSOCIATE fixed fields truncated (%d bytes)", len(body))
	}
	p := &AssociateRQAC{
		Type:            typ,
		ProtocolVersion: binary.BigEndian.Uint16(body),
		CalledAETitle:   trimAE(body[4:20]),
		CallingAETitle:  trimAE(body[20:36]),
	}
	var sawApp, sawUser bool
	err := forEachItem(body[68:], func(it byte, ib []byte) error {
		switch it {
		case itemApplicationContext:
			if sawApp {
				return fmt.Errorf("%w: second application context item", ErrUnexpectedItem)
			}
			sawApp = true
			p.ApplicationContextName = trimUID(ib)
		case itemPresentationContextR, itemPresentationContextA:
			if (it == itemPresentationContextR) != (typ == PDUTypeAssociateRQ) {
				return fmt.Errorf("%w: presentation context item 0x%02x in PDU 0x%02x", ErrUnexpectedItem, it, typ)
			}
			pc, err := decodePresentationContext(it, ib)
			if err != nil {
				return err
			}
			p.PresentationContexts = append(p.PresentationContexts, pc)
		case itemUserInformation:
			if sawUser {
				return fmt.Errorf("%w: second user information item", ErrUnexpectedItem)
			}
			sawUser = true
			return p.UserInformation.decode(typ, ib)
		default:
			return fmt.Errorf("%w: item 0x%02x in A-ASSOCIATE", ErrUnrecognizedItem, it)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sawApp {
		return nil, malformed("no application context item")
	}
	return p, nil
}

func decodePresentationContext(it byte, b []byte) (PresentationContextItem, error) {
	var pc PresentationContextItem
	if len(b) < 4 {
		return pc, malformed("presentation context item truncated")
	}
	pc.ID = b[0]
	if it == itemPresentationContextA {
		pc.Result = b[2]
	}
	err := forEachItem(b[4:], func(st byte, sb []byte) error {
		switch {
		case st == itemAbstractSyntax && it == itemPresentationContextR:
			if pc.AbstractSyntax != "" {
				return fmt.Errorf("%w: second abstract syntax in context %d", ErrUnexpectedItem, pc.ID)
			}
			pc.AbstractSyntax = trimUID(sb)
		case st == itemTransferSyntax:
			if it == itemPresentationContextA && len(pc.TransferSyntaxes) > 0 {
				return fmt.Errorf("%w: second transfer syntax in accepted context %d", ErrUnexpectedItem, pc.ID)
			}
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(sb))
		case st == itemAbstractSyntax:
			return fmt.Errorf("%w: abstract syntax in A-ASSOCIATE-AC context", ErrUnexpectedItem)
		default:
			return fmt.Errorf("%w: sub-item 0x%02x in presentation context", ErrUnrecognizedItem, st)
		}
		return nil
	})
	return pc, err
}

func (u *UserInformation) decode(typ byte, b []byte) error {
	return forEachItem(b, func(st byte, sb []byte) error {
		switch st {
		case subMaxLength:
			if len(sb) != 4 {
				return malformed("maximum length sub-item of %d bytes", len(sb))
			}
			u.MaxLength = binary.BigEndian.Uint32(sb)
		case subImplementationClass:
			u.ImplementationClassUID = trimUID(sb)
		case subImplementationVersion:
			u.ImplementationVersionName = trimAE(sb)
		case subAsyncOpsWindow:
			if len(sb) != 4 {
				return malformed("asynchronous operations window sub-item of %d bytes", len(sb))
			}
			u.AsyncOperationsWindow = &AsyncOperationsWindow{
				MaxOperationsInvoked:   binary.BigEndian.Uint16(sb),
				MaxOperationsPerformed: binary.BigEndian.Uint16(sb[2:]),
			}
		case subRoleSelection:
			if len(sb) < 2 {
				return malformed("role selection sub-item truncated")
			}
			l := int(binary.BigEndian.Uint16(sb))
			if len(sb) != 2+l+2 {
				return malformed("role selection UID length %d in sub-item of %d bytes", l, len(sb))
			}
			u.RoleSelections = append(u.RoleSelections, RoleSelection{
				SOPClassUID: trimUID(sb[2 : 2+l]),
				SCURole:     sb[2+l] == 1,
				SCPRole:     sb[3+l] == 1,
			})
		case subSOPClassExtended, subSOPClassCommonExt:
			u.ExtendedNegotiations = append(u.ExtendedNegotiations, RawSubItem{Type: st, Data: append([]byte(nil), sb...)})
		case subUserIdentityRQ:
			if typ != PDUTypeAssociateRQ {
				return fmt.Errorf("%w: user identity request in A-ASSOCIATE-AC", ErrUnexpectedItem)
			}
			if len(sb) < 4 {
				return malformed("user identity sub-item truncated")
			}
			id := &UserIdentity{Type: sb[0], PositiveResponseRequested: sb[1] == 1}
			l := int(binary.BigEndian.Uint16(sb[2:]))
			if 4+l+2 > len(sb) {
				return malformed("user identity primary field length %d exceeds sub-item", l)
			}
			id.PrimaryField = append([]byte(nil), sb[4:4+l]...)
			rest := sb[4+l:]
			l2 := int(binary.BigEndian.Uint16(rest))
			if 2+l2 != len(rest) {
				return malformed("user identity secondary field length %d does not fit sub-item", l2)
			}
			id.SecondaryField = append([]byte(nil), rest[2:]...)
			u.UserIdentity = id
		case subUserIdentityAC:
			if typ != PDUTypeAssociateAC {
				return fmt.Errorf("%w: user identity response in A-ASSOCIATE-RQ", ErrUnexpectedItem)
			}
			if len(sb) < 2 || int(binary.BigEndian.Uint16(sb))+2 != len(sb) {
				return malformed("user identity response sub-item length")
			}
			u.UserIdentityResponse = &UserIdentityResponse{ServerResponse: append([]byte(nil), sb[2:]...)}
		default:
			u.Unknown = append(u.Unknown, RawSubItem{Type: st, Data: append([]byte(nil), sb...)})
		}
		return nil
	})
}
