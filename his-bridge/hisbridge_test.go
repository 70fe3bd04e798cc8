package hisbridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

type testHub struct {
	rt     *hub.Runtime
	intake *hl7intake.Listener
	client *hl7.Client
	events *hubtest.Recorder
}

func startHub(t *testing.T, cfg config.Config) *testHub {
	t.Helper()
	th := &testHub{}
	th.rt = hubtest.Start(t, cfg, func(rt *hub.Runtime) {
		l, err := hl7intake.New(rt, hisbridge.Routes()...)
		if err != nil {
			t.Fatal(err)
		}
		b, err := hisbridge.New(rt)
		if err != nil {
			t.Fatal(err)
		}
		b.BackOff = []time.Duration{50 * time.Millisecond}
		th.intake = l
		rt.Server.Add(l)
		rt.Server.Add(b)
	})
	th.client = &hl7.Client{Addr: th.intake.Addr(), Timeout: 10 * time.Second}
	t.Cleanup(func() { th.client.Close() })
	th.events = hubtest.Record(t, th.rt, "ih.patient.>")
	return th
}

func (th *testHub) send(t *testing.T, msg string) *hl7.Message {
	t.Helper()
	ack, err := th.client.Send(context.Background(), []byte(msg))
	if err != nil {
		t.Fatalf("send: %v", err)
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
		t.Fatalf("GET %s: decode: %v", path, err)
	}
	return rsp.StatusCode
}

func seg(lines ...string) string { return strings.Join(lines, "\r") + "\r" }

func TestADTRegisterUpdateAndEvents(t *testing.T) {
	th := startHub(t, hubtest.Config(t))
	tests := []struct {
		name    string
		msg     string
		ackCode hl7.AckCode
		version string
	}{
		{"A01 v2.5.1 UTF-8", seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315083000+0100||ADT^A01^ADT_A01|MSG-A01|P|2.5.1|||AL|NE||UNICODE UTF-8`,
			`EVN|A01|20260315083000`,
			`PID|1||PAT-1001^^^GENHOSP^MR~99-88-77^^^NATID^NI||Test^Jörg^Nils^^Dr.||19700101|M|||Teststraße 1^^Müllheim^^79379^DE||^PRN^PH^^49^7631^5550100`,
			`PV1|1|I|RAD^101^A||||1234^Sample^Sam|5678^Ref^Rita|||||||||||V1001`), hl7.AA, "2.5.1"},
		{"A08 v2.3 LF endings", strings.ReplaceAll(seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A08|MSG-A08|P|2.3`,
			`EVN|A08`,
			`PID|1||PAT-1001^^^GENHOSP^MR||Test^Jörg||19700101|M|||Neue Str. 2^^Freiburg^^79098^DE||(555)555-0199`), "\r", "\n"), hl7.AA, "2.3"},
		{"A04 v2.4 escapes", seg(
			`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A04|MSG-A04|P|2.4`,
			`PID|1||PAT-1002^^^GENHOSP^MR||O\S\Brien^Ann||19800229|F`), hl7.AA, "2.4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ack := th.send(t, tc.msg)
			req, err := hl7.Parse([]byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			checkACK(t, ack, req.Header(), tc.ackCode)
		})
	}
	evs := th.events.Wait(t, 3)
	wantTypes := []string{events.TypePatientCreated, events.TypePatientUpdated, events.TypePatientCreated}
	for i, e := range evs[:3] {
		if e.Type != wantTypes[i] {
			t.Errorf("event %d type %s, want %s", i, e.Type, wantTypes[i])
		}
	}
	var pe hisbridge.PatientEvent
	if err := evs[0].DecodeData(&pe); err != nil {
		t.Fatal(err)
	}
	if pe.Name.Family != "Test" || pe.Name.Given != "Jörg" || pe.Name.Prefix != "Dr." || pe.BirthDate != "19700101" || pe.Sex != "M" {
		t.Errorf("created event patient %+v", pe.Patient)
	}
	if len(pe.Identifiers) != 2 || pe.Visit == nil || pe.Visit.VisitNumber != "V1001" || pe.Visit.AttendingDoctor != "1234^Sample^Sam" || pe.Visit.AssignedLocation != "RAD^101^A" || pe.Visit.PatientClass != "I" {
		t.Errorf("created event identifiers %+v visit %+v", pe.Identifiers, pe.Visit)
	}
	if pe.Address.City != "Müllheim" || pe.Phone != "49 7631 5550100" {
		t.Errorf("address %+v phone %q", pe.Address, pe.Phone)
	}

	var list []hisbridge.Patient
	if code := th.getJSON(t, "/api/patients?identifier=PAT-1001", &list); code != 200 || len(list) != 1 {
		t.Fatalf("GET /api/patients?identifier: %d %+v", code, list)
	}
	p := list[0]
	if p.Address.City != "Freiburg" || p.Phone != "(555)555-0199" || p.Name.Given != "Jörg" || p.Name.Prefix != "Dr." {
		t.Errorf("updated patient %+v", p)
	}
	if code := th.getJSON(t, "/api/patients?name=o%5Eb", &list); code != 200 || len(list) != 1 || list[0].Name.Family != "O^Brien" {
		t.Errorf("name search: %d %+v", code, list)
	}
	var one hisbridge.Patient
	if code := th.getJSON(t, fmt.Sprintf("/api/patients/%d", p.ID), &one); code != 200 || one.ID != p.ID || len(one.Visits) != 1 {
		t.Errorf("GET patient: %d %+v", code, one)
	}
	// A new record's event carries the identifiers and visits it was
	// created with, without reading them back; they must be what the
	// registry holds (the A08 since changed neither).
	if !reflect.DeepEqual(pe.Identifiers, one.Identifiers) || !reflect.DeepEqual(pe.Visits, one.Visits) {
		t.Errorf("created event identifiers %+v visits %+v; registry %+v %+v", pe.Identifiers, pe.Visits, one.Identifiers, one.Visits)
	}
	var e map[string]string
	if code := th.getJSON(t, "/api/patients/999999", &e); code != 404 || e["error"] == "" {
		t.Errorf("unknown patient: %d %v", code, e)
	}
	if code := th.getJSON(t, "/api/patients/abc", &e); code != 400 || e["error"] == "" {
		t.Errorf("bad id: %d %v", code, e)
	}
	if code := th.getJSON(t, "/api/patients?limit=0", &e); code != 400 {
		t.Errorf("bad limit: %d %v", code, e)
	}
}

// checkACK asserts an original-mode acknowledgment field by field
// (HL7 2.5.1 §2.9.2).
func checkACK(t *testing.T, ack *hl7.Message, req hl7.Header, code hl7.AckCode) {
	t.Helper()
	h := ack.Header()
	if got := ack.Get("MSA-1"); got != string(code) {
		t.Errorf("MSA-1 = %q, want %s (MSA-3 %q, ERR %q)", got, code, ack.Get("MSA-3"), ack.Get("ERR-3"))
	}
	if got := ack.Get("MSA-2"); got != req.MessageControlID {
		t.Errorf("MSA-2 = %q, want %q", got, req.MessageControlID)
	}
	if h.SendingApplication != req.ReceivingApplication || h.SendingFacility != req.ReceivingFacility ||
		h.ReceivingApplication != req.SendingApplication || h.ReceivingFacility != req.SendingFacility {
		t.Errorf("ACK MSH-3..6 = %q %q %q %q, want swapped from request", h.SendingApplication, h.SendingFacility, h.ReceivingApplication, h.ReceivingFacility)
	}
	if h.VersionID != req.VersionID {
		t.Errorf("ACK MSH-12 = %q, want %q", h.VersionID, req.VersionID)
	}
	if h.MessageType != "ACK" || h.TriggerEvent != req.TriggerEvent {
		t.Errorf("ACK MSH-9 = %s^%s", h.MessageType, h.TriggerEvent)
	}
	if h.MessageControlID == "" || h.MessageControlID == req.MessageControlID {
		t.Errorf("ACK MSH-10 = %q", h.MessageControlID)
	}
}

// A PID-3 with more repetitions than one multi-row statement takes is
// recorded whole, and the created event carries every identifier.
func TestADTManyIdentifiers(t *testing.T) {
	th := startHub(t, hubtest.Config(t))
	const n = 300
	reps := make([]string, n)
	for i := range reps {
		reps[i] = fmt.Sprintf("ID-%04d^^^AUTH%d^MR", i, i%7)
	}
	msg := seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A04^ADT_A01|MANY-1|P|2.5.1`,
		`EVN|A04|20260315100000`,
		`PID|1||`+strings.Join(reps, "~")+`||Many^Ids||19700101|F`)
	if ack := th.send(t, msg); ack.AckCode() != hl7.AA {
		t.Fatalf("ACK %s: %s", ack.AckCode(), ack.Get("MSA-3"))
	}
	var pe hisbridge.PatientEvent
	if err := th.events.Wait(t, 1)[0].DecodeData(&pe); err != nil {
		t.Fatal(err)
	}
	var p hisbridge.Patient
	if code := th.getJSON(t, fmt.Sprintf("/api/patients/%d", pe.ID), &p); code != 200 {
		t.Fatalf("GET patient: %d", code)
	}
	if len(pe.Identifiers) != n || !reflect.DeepEqual(pe.Identifiers, p.Identifiers) {
		t.Fatalf("event has %d identifiers, registry %d; want %d, alike", len(pe.Identifiers), len(p.Identifiers), n)
	}
}
