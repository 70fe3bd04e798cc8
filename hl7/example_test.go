package hl7_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/hl7"
)

func ExampleParse() {
	raw := "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315091500||OMI^O23^OMI_O23|OMI-77|P|2.5.1\r" +
		"PID|1||PAT-0003^^^GENHOSP^MR~77-66^^^NATID||Doe^Jane\r" +
		"IPC|ACC-5002|RP-2|1.2.826.0.1.3680043.8.498.2|SPS-2|MR\r" +
		"NTE|1||Contrast \\T\\ sedation\r"
	msg, err := hl7.Parse([]byte(raw))
	if err != nil {
		panic(err)
	}
	h := msg.Header()
	fmt.Println(h.MessageType, h.TriggerEvent, h.MessageControlID, h.VersionID)
	fmt.Println(msg.Get("PID-3(2).1"), msg.Get("IPC-1"), msg.Segment("IPC").Field(5))
	fmt.Println(msg.Get("NTE-3"))
	// Output:
	// OMI O23 OMI-77 2.5.1
	// 77-66 ACC-5002 MR
	// Contrast & sedation
}

func ExampleNewACK() {
	msg, err := hl7.Parse([]byte("MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315091500||OMI^O23^OMI_O23|OMI-77|P|2.5.1\r"))
	if err != nil {
		panic(err)
	}
	ack, err := hl7.NewACK(msg, hl7.AE, &hl7.ACKOptions{
		Errors:           []hl7.ErrorDetail{{Location: hl7.Location{Segment: "IPC", Field: 1}, Code: hl7.RequiredFieldMissing}},
		MessageControlID: "A1",
		Time:             time.Date(2026, 3, 15, 9, 15, 1, 0, time.UTC),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.ReplaceAll(string(ack), "\r", "\n"))
	// Output:
	// MSH|^~\&|IMAGINGHUB|RADIOLOGY|RIS|GENHOSP|20260315091501+0000||ACK^O23^ACK|A1|P|2.5.1
	// MSA|AE|OMI-77
	// ERR||IPC^1^1^1|101^Required field missing^HL70357|E
}
