package dicomnet

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
	}{
		{"C-ECHO-RQ", Command{CommandField: CEchoRQ, MessageID: 7, AffectedSOPClassUID: VerificationSOPClass, CommandDataSetType: NoDataSet}},
		{"C-STORE-RQ from a C-MOVE", Command{CommandField: CStoreRQ, MessageID: 9, AffectedSOPClassUID: testSOPClass, AffectedSOPInstanceUID: "1.2.3.4",
			Priority: PriorityHigh, CommandDataSetType: DataSetPresent, MoveOriginatorApplicationEntityTitle: "VIEWER", MoveOriginatorMessageID: 3}},
		{"C-STORE-RSP failure", Command{CommandField: CStoreRSP, MessageIDBeingRespondedTo: 9, AffectedSOPClassUID: testSOPClass, AffectedSOPInstanceUID: "1.2.3.4",
			CommandDataSetType: NoDataSet, Status: 0xA900, ErrorComment: "odd", OffendingElement: []Tag{{0x0010, 0x0010}}}},
		{"C-MOVE-RQ", Command{CommandField: CMoveRQ, MessageID: 2, AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", Priority: PriorityLow, MoveDestination: "DEST", CommandDataSetType: DataSetPresent}},
		{"C-GET-RSP pending", Command{CommandField: CGetRSP, MessageIDBeingRespondedTo: 2, CommandDataSetType: NoDataSet, Status: StatusPending,
			NumberOfRemainingSuboperations: U16(3), NumberOfCompletedSuboperations: U16(1), NumberOfFailedSuboperations: U16(0), NumberOfWarningSuboperations: U16(0)}},
		{"C-CANCEL-RQ", Command{CommandField: CCancelRQ, MessageIDBeingRespondedTo: 5, CommandDataSetType: NoDataSet}},
		{"N-EVENT-REPORT-RQ", Command{CommandField: NEventReportRQ, MessageID: 4, AffectedSOPClassUID: "1.2.840.10008.1.20.1", AffectedSOPInstanceUID: "1.2.840.10008.1.20.1.1", EventTypeID: 1, CommandDataSetType: DataSetPresent}},
		{"N-ACTION-RQ", Command{CommandField: NActionRQ, MessageID: 4, RequestedSOPClassUID: "1.2.840.10008.1.20.1", RequestedSOPInstanceUID: "1.2.840.10008.1.20.1.1", ActionTypeID: 1, CommandDataSetType: DataSetPresent}},
		{"N-GET-RQ", Command{CommandField: NGetRQ, MessageID: 4, RequestedSOPClassUID: "1.2.3", RequestedSOPInstanceUID: "1.2.3.4", CommandDataSetType: NoDataSet, AttributeIdentifierList: []Tag{{0x0008, 0x0018}, {0x0040, 0x0252}}}},
		{"unknown element kept", Command{CommandField: NSetRSP, MessageIDBeingRespondedTo: 1, CommandDataSetType: NoDataSet, Status: StatusProcessingFailure, Other: []RawElement{{Tag: TagErrorID, Value: []byte{0x10, 0x00}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.cmd.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeCommand(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.cmd) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, tt.cmd)
			}
		})
	}
}

// The C-ECHO-RQ of PS3.7 §9.3.5.1 in Implicit VR Little Endian, by hand.
func TestCommandGolden(t *testing.T) {
	cmd := Command{CommandField: CEchoRQ, MessageID: 1, AffectedSOPClassUID: VerificationSOPClass, CommandDataSetType: NoDataSet}
	b, _ := cmd.AppendBinary(nil)
	want := "00000000" + "04000000" + "38000000" + // CommandGroupLength = 56
		"00000200" + "12000000" + hex.EncodeToString([]byte("1.2.840.10008.1.1\x00")) +
		"00000001" + "02000000" + "3000" +
		"00001001" + "02000000" + "0100" +
		"00000008" + "02000000" + "0101"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("C-ECHO-RQ\n got %s\nwant %s", got, want)
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	good, _ := (&Command{CommandField: CEchoRQ, MessageID: 1, CommandDataSetType: NoDataSet}).AppendBinary(nil)
	body := good[12:] // without CommandGroupLength, which is checked first
	plus := func(extra ...byte) []byte { return append(append([]byte(nil), body...), extra...) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"truncated header", good[:5]},
		{"length beyond end", plus(0x00, 0x00, 0x00, 0x09, 0xFF, 0xFF, 0, 0)},
		{"wrong group length", func() []byte { b := append([]byte(nil), good...); b[8]++; return b }()},
		{"US of 4 bytes", plus(0, 0, 0x20, 0x01, 4, 0, 0, 0, 1, 2, 3, 4)},
		{"AT of 3 bytes", plus(0, 0, 0x05, 0x10, 3, 0, 0, 0, 1, 2, 3)},
		{"element outside group 0000", plus(8, 0, 0x18, 0, 0, 0, 0, 0)},
		{"missing CommandField", []byte{0, 0, 0x10, 0x01, 2, 0, 0, 0, 1, 0, 0, 0, 0, 8, 2, 0, 0, 0, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeCommand(tt.in); !errors.Is(err, ErrMalformedCommand) {
				t.Errorf("err = %v, want ErrMalformedCommand", err)
			}
		})
	}
}
