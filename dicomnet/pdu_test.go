package dicomnet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleRQ() *AssociateRQAC {
	return &AssociateRQAC{
		Type:                   PDUTypeAssociateRQ,
		ProtocolVersion:        1,
		CalledAETitle:          "HUB",
		CallingAETitle:         "CT SCANNER 1",
		ApplicationContextName: ApplicationContextName,
		PresentationContexts: []PresentationContextItem{
			{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
		},
		UserInformation: UserInformation{
			MaxLength:                 16384,
			ImplementationClassUID:    "1.2.3.4.5",
			ImplementationVersionName: "TEST_1",
			AsyncOperationsWindow:     &AsyncOperationsWindow{MaxOperationsInvoked: 3, MaxOperationsPerformed: 2},
			RoleSelections:            []RoleSelection{{SOPClassUID: testSOPClass, SCURole: false, SCPRole: true}},
			ExtendedNegotiations: []RawSubItem{
				{Type: subSOPClassExtended, Data: []byte{0, 3, '1', '.', '2', 1, 0}},
				{Type: subSOPClassCommonExt, Data: []byte{0, 1, '1', 0, 1, '2', 0, 0}},
			},
			UserIdentity: &UserIdentity{Type: UserIdentityUsernamePasscode, PositiveResponseRequested: true, PrimaryField: []byte("tech"), SecondaryField: []byte("pw")},
			Unknown:      []RawSubItem{{Type: 0x5F, Data: []byte{1, 2, 3}}},
		},
	}
}

func sampleAC() *AssociateRQAC {
	return &AssociateRQAC{
		Type:                   PDUTypeAssociateAC,
		ProtocolVersion:        1,
		CalledAETitle:          "HUB",
		CallingAETitle:         "CT SCANNER 1",
		ApplicationContextName: ApplicationContextName,
		PresentationContexts: []PresentationContextItem{
			{ID: 1, Result: PresentationContextAccepted, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 3, Result: PresentationContextAbstractSyntaxNotSupported, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
		},
		UserInformation: UserInformation{
			MaxLength:              1 << 20,
			ImplementationClassUID: ImplementationClassUID, ImplementationVersionName: ImplementationVersionName,
			UserIdentityResponse: &UserIdentityResponse{ServerResponse: []byte("ok")},
		},
	}
}

func samplePDUs() []PDU {
	return []PDU{
		sampleRQ(),
		sampleAC(),
		&AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonCalledAETitleNotRecognized},
		&PDataTF{Items: []PDV{{PresentationContextID: 1, MessageControlHeader: 3, Data: []byte{1, 2, 3, 4}}, {PresentationContextID: 1, MessageControlHeader: 0, Data: nil}}},
		ReleaseRQ{},
		ReleaseRP{},
		&Abort{Source: AbortSourceServiceProvider, Reason: AbortReasonUnexpectedPDU},
	}
}

func TestPDURoundTrip(t *testing.T) {
	for _, p := range samplePDUs() {
		t.Run(reflect.TypeOf(p).String(), func(t *testing.T) {
			b, err := p.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadPDU(bytes.NewReader(b), 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, p)
			}
		})
	}
}

// Golden encodings written out by hand from PS3.8 §9.3.
func TestPDUGolden(t *testing.T) {
	tests := []struct {
		name string
		pdu  PDU
		hex  string
	}{
		{"A-ASSOCIATE-RJ", &AssociateRJ{Result: 2, Source: 3, Reason: 2}, "03000000000400020302"},
		{"A-RELEASE-RQ", ReleaseRQ{}, "05000000000400000000"},
		{"A-RELEASE-RP", ReleaseRP{}, "06000000000400000000"},
		{"A-ABORT", &Abort{Source: 2, Reason: 6}, "07000000000400000206"},
		{"P-DATA-TF", &PDataTF{Items: []PDV{{PresentationContextID: 5, MessageControlHeader: 3, Data: []byte{0xAA}}}}, "04000000000700000003" + "0503aa"},
		{"A-ASSOCIATE-AC minimal", &AssociateRQAC{Type: PDUTypeAssociateAC, ProtocolVersion: 1, CalledAETitle: "A", CallingAETitle: "B", ApplicationContextName: "1.2"},
			"020000000057" + "00010000" + "41" + strings.Repeat("20", 15) + "42" + strings.Repeat("20", 15) + strings.Repeat("00", 32) +
				"10000003312e32" + "500000085100000400000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.pdu.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(b); got != tt.hex {
				t.Errorf("encoded\n got %s\nwant %s", got, tt.hex)
			}
		})
	}
}

func TestPDUDecodeErrors(t *testing.T) {
	rq, _ := sampleRQ().AppendBinary(nil)
	withLen := func(b []byte, off int, hi, lo byte) []byte {
		c := bytes.Clone(b)
		c[off], c[off+1] = hi, lo
		return c
	}
	tests := []struct {
		name string
		in   []byte
		max  uint32
		want error
	}{
		{"length above maximum", []byte{1, 0, 0x10, 0, 0, 0}, 1 << 20, ErrPDUTooLarge},
		{"truncated body", rq[:len(rq)-3], 1 << 20, ErrMalformedPDU},
		{"unknown type", []byte{0x42, 0, 0, 0, 0, 0}, 1 << 20, ErrUnrecognizedPDU},
		{"item exceeds parent", withLen(rq, 6+68+2, 0xFF, 0xF0), 1 << 20, ErrMalformedPDU},
		{"presentation context sub-item exceeds item", withLen(rq, 6+68+4+21+4+4+2, 0x7F, 0), 1 << 20, ErrMalformedPDU},
		{"unknown variable item", append(withLen(rq, 4, byte((len(rq)-6+4)>>8), byte(len(rq)-6+4)), 0x77, 0, 0, 0), 1 << 20, ErrUnrecognizedItem},
		{"AC item in RQ", append(withLen(rq, 4, byte((len(rq)-6+8)>>8), byte(len(rq)-6+8)), 0x21, 0, 0, 4, 1, 0, 0, 0), 1 << 20, ErrUnexpectedItem},
		{"release with body 2", []byte{5, 0, 0, 0, 0, 2, 0, 0}, 1 << 20, ErrMalformedPDU},
		{"P-DATA-TF PDV beyond PDU", []byte{4, 0, 0, 0, 0, 6, 0, 0, 0, 9, 1, 3}, 1 << 20, ErrMalformedPDU},
		{"P-DATA-TF without PDVs", []byte{4, 0, 0, 0, 0, 0}, 1 << 20, ErrMalformedPDU},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPDU(bytes.NewReader(tt.in), tt.max, nil)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAbortReasonFor(t *testing.T) {
	tests := []struct {
		err  error
		want byte
	}{
		{ErrUnrecognizedPDU, AbortReasonUnrecognizedPDU},
		{ErrUnexpectedPDU, AbortReasonUnexpectedPDU},
		{ErrUnrecognizedItem, AbortReasonUnrecognizedPDUParameter},
		{ErrUnexpectedItem, AbortReasonUnexpectedPDUParameter},
		{ErrMalformedPDU, AbortReasonInvalidPDUParameterValue},
		{ErrPDUTooLarge, AbortReasonInvalidPDUParameterValue},
		{errors.New("other"), AbortReasonNotSpecified},
	}
	for _, tt := range tests {
		if got := AbortReasonFor(tt.err); got != tt.want {
			t.Errorf("AbortReasonFor(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	reg := &Registry{}
	reg.Handle(VerificationSOPClass, []string{ImplicitVRLittleEndian}, VerificationHandler)
	reg.Handle(testSOPClass, []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian}, &storeRecorder{})
	const ctStorage = "1.2.840.10008.5.1.4.1.1.2"
	reg.AllowSCU(ctStorage, []string{ExplicitVRLittleEndian})
	rq := &AssociateRQAC{
		Type: PDUTypeAssociateRQ,
		PresentationContexts: []PresentationContextItem{
			{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
			{ID: 5, AbstractSyntax: "1.2.3", TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 7, AbstractSyntax: testSOPClass, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.90"}},
			{ID: 8, AbstractSyntax: testSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 9, AbstractSyntax: ctStorage, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
			{ID: 9, AbstractSyntax: ctStorage, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
		},
		UserInformation: UserInformation{RoleSelections: []RoleSelection{{SOPClassUID: ctStorage, SCURole: true, SCPRole: true}}},
	}
	n := reg.negotiate(rq)
	type res struct {
		id     byte
		result byte
		ts     string
	}
	want := []res{
		{1, PresentationContextAccepted, ImplicitVRLittleEndian},
		{3, PresentationContextAccepted, ExplicitVRLittleEndian}, // the SCU's order wins
		{5, PresentationContextAbstractSyntaxNotSupported, ImplicitVRLittleEndian},
		{7, PresentationContextTransferSyntaxNotSupported, "1.2.840.10008.1.2.4.90"},
		{8, PresentationContextProviderRejection, ImplicitVRLittleEndian}, // even ID
		{9, PresentationContextAccepted, ExplicitVRLittleEndian},
	}
	var got []res
	for _, it := range n.items {
		got = append(got, res{it.ID, it.Result, it.TransferSyntaxes[0]})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("negotiated\n got %v\nwant %v", got, want)
	}
	// We can act as SCP? no handler for CT: SCU role refused; SCP role granted.
	if wantRoles := []RoleSelection{{SOPClassUID: ctStorage, SCURole: false, SCPRole: true}}; !reflect.DeepEqual(n.roles, wantRoles) {
		t.Errorf("roles = %+v, want %+v", n.roles, wantRoles)
	}
	if len(n.accepted) != 3 {
		t.Errorf("accepted %d contexts, want 3", len(n.accepted))
	}
}
