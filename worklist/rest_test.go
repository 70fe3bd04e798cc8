package worklist_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/worklist"
)

func TestREST(t *testing.T) {
	th := startHub(t, false, worklist.Options{})
	today := time.Now().Format("20060102")
	it := createItem(t, th, worklist.Item{PatientID: "RPAT-1", PatientName: "Rest^Api", Modality: "DX", ScheduledStationAETitle: "DX01_AE",
		ScheduledProcedureStepStartDate: today, ScheduledProcedureStepStartTime: "1400", AccessionNumber: "RACC-1"})
	if it.ID == 0 || it.StudyInstanceUID == "" || it.ScheduledProcedureStepID == "" || it.ScheduledProcedureStepStatus != worklist.StatusScheduled || it.Source != worklist.SourceManual {
		t.Fatalf("created %+v", it)
	}
	as := th.dial(t)
	find := func() int {
		sets, err := worklist.Find(context.Background(), as, worklist.Query{ScheduledStationAETitle: "DX01_AE", ScheduledProcedureStepStartDate: today}.DataSet())
		if err != nil {
			t.Fatal(err)
		}
		return len(sets)
	}
	if n := find(); n != 1 {
		t.Fatalf("MWL after POST: %d items", n)
	}

	edit := it
	edit.ScheduledStationAETitle = "DX02_AE"
	var got worklist.Item
	if code := th.do(t, "PUT", fmt.Sprintf("/api/worklist/items/%d", it.ID), edit, &got); code != 200 || got.ScheduledStationAETitle != "DX02_AE" || got.StudyInstanceUID != it.StudyInstanceUID {
		t.Fatalf("PUT: %d %+v", code, got)
	}
	if n := find(); n != 0 {
		t.Errorf("MWL for the old station after PUT: %d items", n)
	}
	var list struct{ Items []worklist.Item }
	if code := th.do(t, "GET", "/api/worklist/items?station=DX02_AE&date=today", nil, &list); code != 200 || len(list.Items) != 1 {
		t.Errorf("GET list: %d %+v", code, list)
	}
	if code := th.do(t, "POST", fmt.Sprintf("/api/worklist/items/%d/cancel", it.ID), nil, &got); code != 200 || got.ScheduledProcedureStepStatus != worklist.StatusCanceled {
		t.Errorf("cancel: %d %+v", code, got)
	}
	other := createItem(t, th, worklist.Item{PatientID: "RPAT-2", Modality: "DX", ScheduledStationAETitle: "DX02_AE", ScheduledProcedureStepStartDate: today})
	if code := th.do(t, "DELETE", fmt.Sprintf("/api/worklist/items/%d", other.ID), nil, &got); code != 200 || got.ScheduledProcedureStepStatus != worklist.StatusCanceled {
		t.Errorf("DELETE: %d %+v", code, got)
	}
	if sets, _ := worklist.Find(context.Background(), as, worklist.Query{ScheduledStationAETitle: "DX02_AE"}.DataSet()); len(sets) != 0 {
		t.Errorf("cancelled items still served: %d", len(sets))
	}

	errs := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"missing patient ID", "POST", "/api/worklist/items", worklist.Item{Modality: "CT"}, 400},
		{"bad date", "POST", "/api/worklist/items", worklist.Item{PatientID: "X", Modality: "CT", ScheduledProcedureStepStartDate: "2026-13-01"}, 400},
		{"bad UID", "POST", "/api/worklist/items", worklist.Item{PatientID: "X", Modality: "CT", StudyInstanceUID: "1.02.x"}, 400},
		{"bad status", "POST", "/api/worklist/items", worklist.Item{PatientID: "X", Modality: "CT", ScheduledProcedureStepStatus: "DONE"}, 400},
		{"unknown field", "POST", "/api/worklist/items", map[string]string{"patientID": "X", "bogus": "1"}, 400},
		{"not JSON", "POST", "/api/worklist/items", "text", 400},
		{"unknown item", "GET", "/api/worklist/items/999999", nil, 404},
		{"bad id", "GET", "/api/worklist/items/abc", nil, 400},
		{"cancel unknown", "POST", "/api/worklist/items/999999/cancel", nil, 404},
		{"bad list date", "GET", "/api/worklist/items?date=yesterday", nil, 400},
		{"bad limit", "GET", "/api/worklist/items?limit=5000", nil, 400},
		{"unknown MPPS", "GET", "/api/worklist/mpps/1.2.3", nil, 404},
	}
	for _, c := range errs {
		var e map[string]string
		if code := th.do(t, c.method, c.path, c.body, &e); code != c.want || e["error"] == "" {
			t.Errorf("%s: %d %v, want %d with an error", c.name, code, e, c.want)
		}
	}
}
