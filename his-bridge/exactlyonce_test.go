package hisbridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

func count(t *testing.T, rt *hub.Runtime, query string) int {
	t.Helper()
	var n int
	if err := rt.Catalog.InTx(context.Background(), func(tx *catalog.Tx) error {
		return tx.QueryRowContext(context.Background(), query).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitCount(t *testing.T, rt *hub.Runtime, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := count(t, rt, query)
		if n == want {
			return
		}
		if n > want || time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", query, n, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSameMessagesTwiceAcrossRestart sends 1,000 messages, sends them
// again, restarts the hub on the same data and sends them a third time;
// every send is answered AA and each message takes effect once.
func TestSameMessagesTwiceAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 3,000 messages")
	}
	const n = 1000
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = []byte(seg(
			fmt.Sprintf(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A04^ADT_A01|EO-%05d|P|2.5.1`, i),
			fmt.Sprintf(`PID|1||EO-%05d^^^GENHOSP^MR||Synthetic^Patient%d||19700101|F`, i, i)))
	}
	cfg := hubtest.Config(t)
	sendAll := func(th *testHub) {
		for _, m := range msgs {
			ack, err := th.client.Send(context.Background(), m)
			if err != nil || ack.AckCode() != hl7.AA {
				t.Fatalf("send: %v %v", err, ack)
			}
		}
	}
	const processed = `SELECT COUNT(*) FROM hl7_processed`
	th := startHub(t, cfg)
	sendAll(th)
	sendAll(th)
	waitCount(t, th.rt, processed, n)
	th.events.Wait(t, n)
	th.client.Close()
	hubtest.Stop(t, th.rt)

	th = startHub(t, cfg)
	sendAll(th)
	// Past the stream's duplicate window the processed-key table is what
	// keeps the effect single: store every message again under new ids.
	for _, m := range msgs {
		msg, _ := hl7.Parse(m)
		key := hl7intake.MessageKey(msg.Header())
		h := nats.Header{}
		h.Set(hl7intake.HeaderMessageKey, key)
		if _, err := th.rt.Bus.PublishRaw(context.Background(), hl7intake.Subject(hisbridge.Domain, "ADT"), "again-"+key, m, h); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the consumer has taken everything, then count.
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, err := th.rt.Bus.JetStream().Consumer(context.Background(), th.rt.Bus.StreamName(hl7intake.StreamName), hisbridge.ConsumerName)
		if err != nil {
			t.Fatal(err)
		}
		ci, err := info.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumPending == 0 && ci.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has %d pending", ci.NumPending+uint64(ci.NumAckPending))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := count(t, th.rt, processed); got != n {
		t.Errorf("processed messages = %d, want %d", got, n)
	}
	if got := count(t, th.rt, `SELECT COUNT(*) FROM registry_patients`); got != n {
		t.Errorf("patients = %d, want %d", got, n)
	}
	// The new hub's event consumer starts from the stream's beginning:
	// exactly n created events, no updates.
	time.Sleep(200 * time.Millisecond)
	evs := th.events.Wait(t, n)
	for _, e := range evs {
		if e.Type != events.TypePatientCreated {
			t.Fatalf("unexpected event %s", e.Type)
		}
	}
	if len(evs) != n {
		t.Errorf("%d events, want %d", len(evs), n)
	}
}

func TestMergeAndVisits(t *testing.T) {
	th := startHub(t, hubtest.Config(t))
	msgs := []string{
		seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A01^ADT_A01|MV-1|P|2.5.1`,
			`PID|1||OLD-1^^^GENHOSP^MR||Merge^Max||19600101|M`,
			`PV1|1|I|WARD^1^1||||||||||||||||VIS-1|||||||||||||||||||||||||20260315080000`),
		seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A04^ADT_A01|MV-2|P|2.5.1`,
			`PID|1||NEW-1^^^GENHOSP^MR||Merge^Max||19600101|M`),
		seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315110000||ADT^A40^ADT_A39|MV-3|P|2.5.1`,
			`EVN|A40|20260315110000`,
			`PID|1||NEW-1^^^GENHOSP^MR||Merge^Max`,
			`MRG|OLD-1^^^GENHOSP^MR`),
		seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315120000||ADT^A03^ADT_A03|MV-4|P|2.5.1`,
			`EVN|A03|20260315120000`,
			`PID|1||OLD-1^^^GENHOSP^MR`,
			`PV1|1|I|WARD^1^1||||||||||||||||VIS-1`),
		seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315130000||ADT^A13^ADT_A01|MV-5|P|2.5.1`,
			`PID|1||NEW-1^^^GENHOSP^MR`,
			`PV1|1|I|WARD^1^1||||||||||||||||VIS-1`),
		seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315130000||ADT^A11^ADT_A09|MV-6|P|2.5.1`,
			`PID|1||NEW-1^^^GENHOSP^MR`,
			`PV1|1|I|WARD^1^1||||||||||||||||VIS-1`),
	}
	for _, m := range msgs {
		if ack := th.send(t, m); ack.AckCode() != hl7.AA {
			t.Fatalf("ack %s: %s", ack.AckCode(), ack.Get("MSA-3"))
		}
	}
	evs := th.events.Wait(t, len(msgs))
	want := []string{events.TypePatientCreated, events.TypePatientCreated, events.TypePatientMerged, events.TypePatientUpdated, events.TypePatientUpdated, events.TypePatientUpdated}
	var datas []hisbridge.PatientEvent
	for i, e := range evs {
		if e.Type != want[i] {
			t.Errorf("event %d = %s, want %s", i, e.Type, want[i])
		}
		var d hisbridge.PatientEvent
		if err := e.DecodeData(&d); err != nil {
			t.Fatal(err)
		}
		datas = append(datas, d)
	}
	oldID, newID := datas[0].ID, datas[1].ID
	merged := datas[2]
	if merged.ID != newID || merged.PriorPatientID != oldID || len(merged.PriorIdentifiers) != 1 || merged.PriorIdentifiers[0].IDNumber != "OLD-1" {
		t.Errorf("merge event %+v", merged)
	}
	// A03 by the retired identifier lands on the survivor, which now has
	// the visit.
	tests := []struct {
		i                int
		status           string
		dischargePresent bool
	}{{3, "discharged", true}, {4, "active", false}, {5, "cancelled", false}}
	for _, tc := range tests {
		d := datas[tc.i]
		if d.ID != newID || d.Visit == nil || d.Visit.Status != tc.status || (d.Visit.DischargeTime != "") != tc.dischargePresent {
			t.Errorf("event %d (%s): patient %d visit %+v", tc.i, d.TriggerEvent, d.ID, d.Visit)
		}
	}
	var old hisbridge.Patient
	th.getJSON(t, fmt.Sprintf("/api/patients/%d", oldID), &old)
	if old.MergedInto != newID || len(old.Visits) != 0 {
		t.Errorf("retired record %+v", old)
	}
	var survivor hisbridge.Patient
	th.getJSON(t, fmt.Sprintf("/api/patients/%d", newID), &survivor)
	if len(survivor.Visits) != 1 || survivor.Visits[0].VisitNumber != "VIS-1" || survivor.Visits[0].AdmitTime == "" {
		t.Errorf("survivor %+v", survivor)
	}
}

func TestADTContentErrors(t *testing.T) {
	th := startHub(t, hubtest.Config(t))
	tests := []struct {
		name, msg, loc, code string
	}{
		{"no PID", seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A01|CE-1|P|2.5.1`, `EVN|A01`), "PID", "100"},
		{"no PID-3", seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A01|CE-2|P|2.5.1`, `PID|1||||Doe^J`), "PID^1^3", "101"},
		{"bad birth date", seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A01|CE-3|P|2.5.1`, `PID|1||P-1||Doe^J||1970-01-01`), "PID^1^7", "102"},
		{"bad sex", seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A01|CE-4|P|2.5.1`, `PID|1||P-1||Doe^J||19700101|Q`), "PID^1^8", "103"},
		{"merge without MRG", seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A40|CE-5|P|2.5.1`, `PID|1||P-1`), "MRG", "100"},
		{"discharge without PV1", seg(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315100000||ADT^A03|CE-6|P|2.5.1`, `PID|1||P-1`), "PV1", "100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ack := th.send(t, tc.msg)
			if ack.AckCode() != hl7.AE {
				t.Fatalf("MSA-1 = %s, want AE", ack.AckCode())
			}
			loc := ack.Get("ERR-2.1")
			if f := ack.Get("ERR-2.3"); f != "" {
				loc += "^" + ack.Get("ERR-2.2") + "^" + f
			}
			if loc != tc.loc || ack.Get("ERR-3.1") != tc.code {
				t.Errorf("ERR-2 %q ERR-3 %q, want %q %q", loc, ack.Get("ERR-3.1"), tc.loc, tc.code)
			}
		})
	}
	if n := count(t, th.rt, `SELECT COUNT(*) FROM registry_patients`); n != 0 {
		t.Errorf("%d patients after content errors", n)
	}
}
