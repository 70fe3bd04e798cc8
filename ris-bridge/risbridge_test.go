package risbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

func seg(lines ...string) string { return strings.Join(lines, "\r") + "\r" }

type testHub struct {
	rt     *hub.Runtime
	client *hl7.Client
	events *hubtest.Recorder
}

func startHub(t *testing.T) *testHub {
	t.Helper()
	th := &testHub{}
	var l *hl7intake.Listener
	th.rt = hubtest.Start(t, hubtest.Config(t), func(rt *hub.Runtime) {
		var err error
		if l, err = hl7intake.New(rt, risbridge.Routes()...); err != nil {
			t.Fatal(err)
		}
		b, err := risbridge.New(rt)
		if err != nil {
			t.Fatal(err)
		}
		b.BackOff, b.MaxDeliver = []time.Duration{20 * time.Millisecond}, 2
		rt.Server.Add(l)
		rt.Server.Add(b)
	})
	th.client = &hl7.Client{Addr: l.Addr(), Timeout: 10 * time.Second}
	t.Cleanup(func() { th.client.Close() })
	th.events = hubtest.Record(t, th.rt, "ih.>")
	return th
}

func (th *testHub) waitEvents(t *testing.T, n int) []events.Event {
	t.Helper()
	return th.events.Wait(t, n)
}

func (th *testHub) send(t *testing.T, msg string) *hl7.Message {
	t.Helper()
	ack, err := th.client.Send(context.Background(), []byte(msg))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	req, err := hl7.Parse([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := ack.Get("MSA-2"); got != req.Header().MessageControlID {
		t.Errorf("MSA-2 = %q, want %q", got, req.Header().MessageControlID)
	}
	if ack.Header().VersionID != req.Header().VersionID {
		t.Errorf("ACK version %q, want %q", ack.Header().VersionID, req.Header().VersionID)
	}
	if ack.Header().SendingApplication != req.Header().ReceivingApplication || ack.Header().ReceivingApplication != req.Header().SendingApplication {
		t.Errorf("ACK applications not swapped: %+v", ack.Header())
	}
	return ack
}

func (th *testHub) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	rsp, err := http.Get("http://" + th.rt.Server.HTTPAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	if err := json.NewDecoder(rsp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return rsp.StatusCode
}

const (
	ormNW = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|ORM-1|P|2.3.1\r" +
		"PID|1||PAT-0002^^^GENHOSP||Sample^Anna||19851212|F\r" +
		"PV1|1|O||||||777^Referrer^Rob|||||||||||V-77\r" +
		"ORC|NW|PL-1001|FL-2001||SC||^^^20260316100000^^R|||||555^Orderer^Olga\r" +
		"OBR|1|PL-1001|FL-2001|CTHEAD^CT head w/o contrast^L||||||||||||||ACC-5001|RP-1|SPS-1|CT01_AE|||CT|||||||^Headache\r" +
		"ZDS|1.2.826.0.1.3680043.8.498.1^100^Application^DICOM\r"
	omiNW = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315091500||OMI^O23^OMI_O23|OMI-77|P|2.5.1|||||||UNICODE UTF-8\r" +
		"PID|1||PAT-0003^^^GENHOSP^MR||Dö^Jäne||19900202|F\r" +
		"ORC|NW|PL-1002|FL-2002||SC\r" +
		"TQ1|1||||||20260317110000||S\r" +
		"OBR|1|PL-1002|FL-2002|MRKNEE^MR knee^L\r" +
		"IPC|ACC-5002|RP-2||SPS-2a|MR|KNEE^Knee protocol^L|MR01||MR01_AE\r" +
		"IPC|ACC-5002|RP-2||SPS-2b|MR|KNEEC^Knee contrast^L|MR01||MR01_AE\r"
	ormXO = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315093000||ORM^O01|ORM-2|P|2.3.1\n" +
		"PID|1||PAT-0002^^^GENHOSP||Sample^Anna||19851212|F\n" +
		"ORC|XO|PL-1001|FL-2001||SC||^^^20260316120000^^S\n" +
		"OBR|1|PL-1001|FL-2001|CTHEAD^CT head w/o contrast^L||||||||||||||ACC-5001|RP-1|SPS-1|CT02_AE|||CT\n"
	ormCA = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315094000||ORM^O01|ORM-3|P|2.3.1\r" +
		"PID|1||PAT-0002^^^GENHOSP||Sample^Anna\r" +
		"ORC|CA|PL-1001|FL-2001||CA\r"
	oruP = "MSH|^~\\&|REPORTING|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315120000||ORU^R01^ORU_R01|ORU-1|P|2.4\r" +
		"PID|1||PAT-0003^^^GENHOSP||Dö^Jäne\r" +
		"OBR|1|PL-1002|FL-2002|MRKNEE^MR knee^L|||20260315113000|||||||||||ACC-5002\r" +
		"OBX|1|FT|REPORT^Report^L||Findings\\F\\ none\\.br\\Line two||||||P\r"
	oruC = "MSH|^~\\&|REPORTING|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315130000||ORU^R01^ORU_R01|ORU-2|P|2.4\r" +
		"PID|1||PAT-0003^^^GENHOSP||Dö^Jäne\r" +
		"OBR|1|PL-1002|FL-2002|MRKNEE^MR knee^L|||20260315113000|||||||||||ACC-5002\r" +
		"OBX|1|TX|REPORT^Report^L||Corrected: meniscus tear~Second line||||||C\r"
)

func TestOrdersAndReports(t *testing.T) {
	th := startHub(t)
	for _, m := range []string{ormNW, omiNW, ormXO, oruP, oruC, ormCA} {
		if ack := th.send(t, m); ack.Get("MSA-1") != "AA" {
			t.Fatalf("MSA-1 %q for %q: %s", ack.Get("MSA-1"), m[:60], ack.Get("MSA-3"))
		}
	}
	evs := th.waitEvents(t, 6)
	want := []string{events.TypeOrderScheduled, events.TypeOrderScheduled, events.TypeOrderUpdated, events.TypeReportReceived, events.TypeReportReceived, events.TypeOrderCancelled}
	for i, e := range evs {
		if e.Type != want[i] {
			t.Errorf("event %d: %s, want %s", i, e.Type, want[i])
		}
	}
	var o1 risbridge.OrderEvent
	if err := evs[0].DecodeData(&o1); err != nil {
		t.Fatal(err)
	}
	if o1.AccessionNumber != "ACC-5001" || o1.PlacerOrderNumber != "PL-1001" || o1.FillerOrderNumber != "FL-2001" || o1.RequestedProcedureID != "RP-1" ||
		o1.StudyInstanceUID != "1.2.826.0.1.3680043.8.498.1" || o1.RequestedProcedure.Code != "CTHEAD" || o1.Priority != "R" ||
		o1.OrderingProvider != "555^Orderer^Olga" || o1.ReferringProvider != "777^Referrer^Rob" || o1.Reason != "Headache" ||
		o1.Patient.PatientID != "PAT-0002" || o1.Patient.IssuerOfPatientID != "GENHOSP" || o1.Patient.PatientName != "Sample^Anna" || o1.VisitNumber != "V-77" {
		t.Errorf("ORM order %+v", o1.Order)
	}
	if len(o1.Steps) != 1 || o1.Steps[0].ScheduledProcedureStepID != "SPS-1" || o1.Steps[0].Modality != "CT" || o1.Steps[0].ScheduledStationAETitle != "CT01_AE" ||
		!strings.HasPrefix(o1.Steps[0].ScheduledStart, "2026-03-16T10:00:00") {
		t.Errorf("ORM steps %+v", o1.Steps)
	}
	var o2 risbridge.OrderEvent
	evs[1].DecodeData(&o2)
	if o2.AccessionNumber != "ACC-5002" || !strings.HasPrefix(o2.StudyInstanceUID, "2.25.") || o2.Patient.PatientName != "Dö^Jäne" || o2.Priority != "S" || len(o2.Steps) != 2 ||
		o2.Steps[1].ScheduledProcedureStepID != "SPS-2b" || o2.Steps[1].ScheduledStationAETitle != "MR01_AE" || o2.Steps[1].ScheduledStationName != "MR01" ||
		o2.Steps[1].Protocol.Code != "KNEEC" || !strings.HasPrefix(o2.Steps[0].ScheduledStart, "2026-03-17T11:00:00") {
		t.Errorf("OMI order %+v", o2.Order)
	}
	var up risbridge.OrderEvent
	evs[2].DecodeData(&up)
	if up.ID != o1.ID || up.Priority != "S" || up.Steps[0].ScheduledStationAETitle != "CT02_AE" || up.StudyInstanceUID != o1.StudyInstanceUID {
		t.Errorf("XO order %+v", up.Order)
	}
	var r1, r2 risbridge.ReportEvent
	evs[3].DecodeData(&r1)
	evs[4].DecodeData(&r2)
	if r1.ResultStatus != "P" || r1.Text != "Findings| none\nLine two" || r1.OrderID != o2.ID || r1.StudyInstanceUID != o2.StudyInstanceUID {
		t.Errorf("preliminary report %+v", r1)
	}
	if r2.ResultStatus != "C" || r2.Text != "Corrected: meniscus tear\nSecond line" || len(r2.Supersedes) != 1 || r2.Supersedes[0] != r1.ID {
		t.Errorf("corrected report %+v", r2)
	}
	var cancelled risbridge.OrderEvent
	evs[5].DecodeData(&cancelled)
	if cancelled.Status != "CA" || cancelled.Steps[0].Status != "DISCONTINUED" {
		t.Errorf("cancelled order %+v", cancelled.Order)
	}

	var list []risbridge.Order
	if code := th.getJSON(t, "/api/orders?accession=ACC-5002", &list); code != 200 || len(list) != 1 || list[0].ID != o2.ID {
		t.Errorf("orders by accession: %d %+v", code, list)
	}
	if code := th.getJSON(t, "/api/orders?patient=PAT-0002&status=CA", &list); code != 200 || len(list) != 1 || list[0].ID != o1.ID {
		t.Errorf("orders by patient and status: %d %+v", code, list)
	}
	var d risbridge.OrderDetail
	if code := th.getJSON(t, fmt.Sprintf("/api/orders/%d", o2.ID), &d); code != 200 || len(d.Reports) != 2 || d.Reports[0].SupersededBy != r2.ID {
		t.Errorf("order detail: %d %+v", code, d)
	}
	var e map[string]string
	if code := th.getJSON(t, "/api/orders/424242", &e); code != 404 || e["error"] == "" {
		t.Errorf("unknown order: %d %v", code, e)
	}
}

func TestRejects(t *testing.T) {
	th := startHub(t)
	tests := []struct {
		name     string
		msg      string
		code     string
		location string // ERR-2 (v2.5: SEG^seq^field[^component]) or ERR-1 (earlier: SEG^seq^field)
		errCode  string
	}{
		{"missing PID-3 v2.5.1", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||OMI^O23^OMI_O23|R-1|P|2.5.1`,
			`PID|1||||Doe^John`, `ORC|NW|PL-9|FL-9||SC`, `OBR|1|PL-9|FL-9|X^Y^L`), "AE", "PID^1^3", "101"},
		{"missing order numbers v2.3.1", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|R-2|P|2.3.1`,
			`PID|1||PAT-9`, `ORC|NW|||`, `OBR|1|||X^Y^L`), "AE", "ORC^1^2", "101"},
		{"unknown order control v2.4", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|R-3|P|2.4`,
			`PID|1||PAT-9`, `ORC|ZZ|PL-9`, `OBR|1|PL-9||X^Y^L`), "AE", "ORC^1^1", "103"},
		{"bad result status v2.5.1", seg(`MSH|^~\&|REP|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORU^R01^ORU_R01|R-4|P|2.5.1`,
			`PID|1||PAT-9`, `OBR|1|PL-9`, `OBX|1|TX|R||text||||||Q`), "AE", "OBX^1^11", "103"},
		{"bad study UID v2.3.1", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|R-5|P|2.3.1`,
			`PID|1||PAT-9`, `ORC|NW|PL-9`, `OBR|1|PL-9||X^Y^L`, `ZDS|1.2.abc`), "AE", "ZDS^1^1", "102"},
		{"unsupported message type", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||SIU^S12|R-6|P|2.5.1`), "AR", "MSH^1^9^1", "200"},
		{"unsupported trigger", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O02|R-7|P|2.3.1`), "AR", "MSH^1^9", "201"},
		{"unsupported version", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|R-8|P|2.7`), "AR", "MSH^1^12", "203"},
		{"unsupported processing ID", seg(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|R-9|X|2.5.1`), "AR", "MSH^1^11", "202"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ack := th.send(t, tc.msg)
			if got := ack.Get("MSA-1"); got != tc.code {
				t.Fatalf("MSA-1 = %q, want %s", got, tc.code)
			}
			v := ack.Header().VersionID
			var loc, code string
			if v == "2.5" || v == "2.5.1" || v == "2.7" {
				loc = strings.Join([]string{ack.Get("ERR-2.1"), ack.Get("ERR-2.2"), ack.Get("ERR-2.3")}, "^")
				// ERL: field repetition, then component where one is named.
				if c := ack.Get("ERR-2.5"); c != "" {
					loc += "^" + c
				}
				code = ack.Get("ERR-3.1")
				if ack.Get("ERR-4") != "E" {
					t.Errorf("ERR-4 = %q", ack.Get("ERR-4"))
				}
			} else {
				loc = strings.Join([]string{ack.Get("ERR-1.1"), ack.Get("ERR-1.2"), ack.Get("ERR-1.3")}, "^")
				code = ack.Get("ERR-1.4.1")
			}
			if loc != tc.location || code != tc.errCode {
				t.Errorf("ERR location %q code %q, want %q %q (ack %q)", loc, code, tc.location, tc.errCode, ack.Bytes())
			}
		})
	}
	var failed []hl7intake.Failed
	if code := th.getJSON(t, "/api/hl7/failed", &failed); code != 200 || len(failed) != len(tests) {
		t.Fatalf("failed list: %d, %d entries, want %d", code, len(failed), len(tests))
	}
	for _, f := range failed {
		if f.Kind != "rejected" || f.Reason == "" || f.ErrorCode == 0 || f.MessageControlID == "" {
			t.Errorf("failed entry %+v", f)
		}
	}
	// No order was created by any of them.
	var list []risbridge.Order
	if th.getJSON(t, "/api/orders", &list); len(list) != 0 {
		t.Errorf("orders after rejects: %+v", list)
	}
}
