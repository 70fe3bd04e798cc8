package worklist_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/worklist"
)

func createItem(t *testing.T, th *testHub, it worklist.Item) worklist.Item {
	t.Helper()
	var got worklist.Item
	if code := th.do(t, "POST", "/api/worklist/items", it, &got); code != 201 {
		t.Fatalf("POST item: %d", code)
	}
	return got
}

func statusOf(err error) uint16 {
	var se *dicomnet.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	if err == nil {
		return dicomnet.StatusSuccess
	}
	return 0xFFFF
}

func TestMPPS(t *testing.T) {
	th := startHub(t, false, worklist.Options{})
	today := time.Now().Format("20060102")
	a := createItem(t, th, worklist.Item{PatientID: "MPAT-1", PatientName: "Test^Mpps", AccessionNumber: "MACC-1", Modality: "CT",
		ScheduledStationAETitle: "CT01_AE", ScheduledProcedureStepStartDate: today, ScheduledProcedureStepStartTime: "0900"})
	b := createItem(t, th, worklist.Item{PatientID: "MPAT-2", PatientName: "Test^Other", AccessionNumber: "MACC-2", Modality: "CT",
		ScheduledStationAETitle: "CT01_AE", ScheduledProcedureStepStartDate: today})
	ctx := context.Background()
	as := th.dial(t)

	items, err := worklist.Find(ctx, as, worklist.Query{ScheduledStationAETitle: "CT01_AE", ScheduledProcedureStepStartDate: today}.DataSet())
	if err != nil || len(items) != 2 {
		t.Fatalf("worklist: %d items, %v", len(items), err)
	}
	byAcc := map[string]dicomjson.DataSet{}
	for _, ds := range items {
		byAcc[ds.String(tAccession)] = ds
	}
	uidA, uidB, uidU := dicomfile.NewUID(), dicomfile.NewUID(), dicomfile.NewUID()
	createA := worklist.MPPSInProgress(byAcc["MACC-1"], "CT01_AE", "PPS-1", today, "091500")
	badStatus := worklist.MPPSInProgress(byAcc["MACC-2"], "CT01_AE", "PPS-X", today, "091500")
	badStatus[dicomfile.NewTag(0x0040, 0x0252)] = &dicomjson.Attribute{VR: "CS", Strings: []string{"COMPLETED"}}
	unscheduled := worklist.MPPSInProgress(dicomjson.DataSet{}, "CT01_AE", "PPS-U", today, "100000")
	unscheduled[dicomfile.NewTag(0x0010, 0x0020)] = &dicomjson.Attribute{VR: "LO", Strings: []string{"MPAT-9"}}
	invalid := worklist.MPPSFinal("DONE", today, "1000")
	series := dicomfile.NewUID()

	steps := []struct {
		name string
		do   func() error
		want uint16
	}{
		{"N-CREATE IN PROGRESS", func() error { _, err := worklist.CreateMPPS(ctx, as, uidA, createA); return err }, dicomnet.StatusSuccess},
		{"N-CREATE duplicate", func() error { _, err := worklist.CreateMPPS(ctx, as, uidA, createA); return err }, dicomnet.StatusDuplicateSOPInstance},
		{"N-CREATE not IN PROGRESS", func() error { _, err := worklist.CreateMPPS(ctx, as, dicomfile.NewUID(), badStatus); return err }, dicomnet.StatusInvalidAttributeValue},
		{"N-SET unknown instance", func() error {
			return worklist.SetMPPS(ctx, as, dicomfile.NewUID(), worklist.MPPSFinal(worklist.PPSCompleted, today, "1000"))
		}, dicomnet.StatusNoSuchSOPInstance},
		{"N-SET invalid status", func() error { return worklist.SetMPPS(ctx, as, uidA, invalid) }, dicomnet.StatusInvalidAttributeValue},
		{"N-SET COMPLETED", func() error {
			return worklist.SetMPPS(ctx, as, uidA, worklist.MPPSFinal(worklist.PPSCompleted, today, "093000", series))
		}, dicomnet.StatusSuccess},
		{"N-SET after COMPLETED", func() error {
			return worklist.SetMPPS(ctx, as, uidA, worklist.MPPSFinal(worklist.PPSDiscontinued, today, "093500"))
		}, dicomnet.StatusProcessingFailure},
		{"N-CREATE for item B", func() error {
			_, err := worklist.CreateMPPS(ctx, as, uidB, worklist.MPPSInProgress(byAcc["MACC-2"], "CT01_AE", "PPS-2", today, "094000"))
			return err
		}, dicomnet.StatusSuccess},
		{"N-SET DISCONTINUED", func() error {
			return worklist.SetMPPS(ctx, as, uidB, worklist.MPPSFinal(worklist.PPSDiscontinued, today, "094500"))
		}, dicomnet.StatusSuccess},
		{"N-CREATE unscheduled", func() error { _, err := worklist.CreateMPPS(ctx, as, uidU, unscheduled); return err }, dicomnet.StatusSuccess},
	}
	for _, s := range steps {
		if got := statusOf(s.do()); got != s.want {
			t.Errorf("%s: status 0x%04X, want 0x%04X", s.name, got, s.want)
		}
	}
	// Every refusal left the association usable.
	if err := as.Echo(ctx); err != nil {
		t.Fatalf("association after the error cases: %v", err)
	}

	var got worklist.Item
	th.do(t, "GET", fmt.Sprintf("/api/worklist/items/%d", a.ID), nil, &got)
	if got.ScheduledProcedureStepStatus != worklist.StatusCompleted {
		t.Errorf("item A status %s, want COMPLETED", got.ScheduledProcedureStepStatus)
	}
	th.do(t, "GET", fmt.Sprintf("/api/worklist/items/%d", b.ID), nil, &got)
	if got.ScheduledProcedureStepStatus != worklist.StatusDiscontinued {
		t.Errorf("item B status %s, want DISCONTINUED", got.ScheduledProcedureStepStatus)
	}
	// Finished steps leave the worklist.
	if items, err := worklist.Find(ctx, as, worklist.Query{ScheduledStationAETitle: "CT01_AE"}.DataSet()); err != nil || len(items) != 0 {
		t.Errorf("worklist after the procedures: %d items, %v", len(items), err)
	}
	var m worklist.MPPS
	if code := th.do(t, "GET", "/api/worklist/mpps/"+uidU, nil, &m); code != 200 || !m.Unscheduled || m.Status != worklist.PPSInProgress {
		t.Errorf("unscheduled MPPS: %d %+v", code, m)
	}
	if code := th.do(t, "GET", "/api/worklist/mpps/"+uidA, nil, &m); code != 200 || m.Unscheduled || len(m.ItemIDs) != 1 || m.ItemIDs[0] != a.ID || m.Status != worklist.PPSCompleted {
		t.Errorf("MPPS A: %d %+v", code, m)
	}

	evs := th.waitEvents(t, 5)
	want := []string{events.TypeProcedureStarted, events.TypeProcedureCompleted, events.TypeProcedureStarted, events.TypeProcedureDiscontinue, events.TypeProcedureStarted}
	for i, e := range evs {
		if e.Type != want[i] {
			t.Errorf("event %d: %s, want %s", i, e.Type, want[i])
		}
	}
	var done worklist.ProcedureEvent
	if err := evs[1].DecodeData(&done); err != nil {
		t.Fatal(err)
	}
	if done.SOPInstanceUID != uidA || done.AccessionNumber != "MACC-1" || len(done.PerformedSeries) != 1 || done.PerformedSeries[0].SeriesInstanceUID != series ||
		len(done.WorklistItemIDs) != 1 || done.Unscheduled || done.PerformedProcedureStepEndTime != "093000" || done.StudyInstanceUID != a.StudyInstanceUID {
		t.Errorf("completed event %+v", done)
	}
	var u worklist.ProcedureEvent
	evs[4].DecodeData(&u)
	if !u.Unscheduled || u.PatientID != "MPAT-9" {
		t.Errorf("unscheduled event %+v", u)
	}
}

func TestCancelFind(t *testing.T) {
	th := startHub(t, false, worklist.Options{})
	ctx := context.Background()
	for i := range 400 {
		if _, err := th.wl.Store().Create(ctx, worklist.Item{PatientID: fmt.Sprintf("CPAT-%d", i), PatientName: "Cancel^Test", Modality: "US",
			ScheduledStationAETitle: "US01_AE", ScheduledProcedureStepStartDate: "20300101",
			RequestedProcedureDescription: "Abdomen ultrasound"}); err != nil {
			t.Fatal(err)
		}
	}
	as := th.dial(t)
	pc, _ := as.PresentationContext(worklist.ModalityWorklistFind, dicomnet.ExplicitVRLittleEndian)
	b, err := worklist.EncodeDataSet(worklist.Query{ScheduledStationAETitle: "US01_AE"}.DataSet(), pc.TransferSyntax)
	if err != nil {
		t.Fatal(err)
	}
	rsps, err := as.Request(ctx, pc, &dicomnet.Command{CommandField: dicomnet.CFindRQ, AffectedSOPClassUID: worklist.ModalityWorklistFind, CommandDataSetType: dicomnet.DataSetPresent}, bytesReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// C-CANCEL right away: the SCP is still reading the worklist or
	// sending the first of 400 responses (PS3.7 §9.3.2.3).
	if err := rsps.Cancel(); err != nil {
		t.Fatal(err)
	}
	pending := 0
	for {
		rsp, err := rsps.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rsp.Final() {
			if rsp.Command.Status != dicomnet.StatusCancel || pending >= 400 {
				t.Errorf("final status 0x%04X after %d pending, want 0xFE00 before all 400", rsp.Command.Status, pending)
			}
			break
		}
		pending++
	}
	if err := as.Echo(ctx); err != nil {
		t.Errorf("association after C-CANCEL: %v", err)
	}
}
