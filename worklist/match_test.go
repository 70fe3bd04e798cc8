package worklist

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hub/hubtest"
)

func TestMatches(t *testing.T) {
	it := ItemDataSet(Item{PatientName: "Dö^Jäne", PatientID: "P1", AccessionNumber: "A-1", StudyInstanceUID: "1.2.3",
		ScheduledStationAETitle: "CT01", Modality: "CT", ScheduledProcedureStepStartDate: "20260316", ScheduledProcedureStepStartTime: "101500",
		ScheduledProcedureStepStatus: StatusScheduled})
	cases := []struct {
		name string
		q    Query
		uids []string
		want bool
	}{
		{"universal", Query{}, nil, true},
		{"station", Query{ScheduledStationAETitle: "CT01"}, nil, true},
		{"other station", Query{ScheduledStationAETitle: "CT02"}, nil, false},
		{"date", Query{ScheduledProcedureStepStartDate: "20260316"}, nil, true},
		{"date range", Query{ScheduledProcedureStepStartDate: "20260315-20260317"}, nil, true},
		{"date range before", Query{ScheduledProcedureStepStartDate: "-20260315"}, nil, false},
		{"date range after", Query{ScheduledProcedureStepStartDate: "20260316-"}, nil, true},
		{"time range HHMM", Query{ScheduledProcedureStepStartTime: "1000-1015"}, nil, true},
		{"time range out", Query{ScheduledProcedureStepStartTime: "1016-1100"}, nil, false},
		{"time single hour", Query{ScheduledProcedureStepStartTime: "10"}, nil, true},
		{"name wildcard, other case", Query{PatientName: "dö*"}, nil, true},
		{"name ?", Query{PatientName: "D?^J*"}, nil, true},
		{"name no match", Query{PatientName: "Doe*"}, nil, false},
		{"name exact", Query{PatientName: "DÖ^JÄNE"}, nil, true},
		{"accession wildcard", Query{AccessionNumber: "A-*"}, nil, true},
		{"accession", Query{AccessionNumber: "A-2"}, nil, false},
		{"status", Query{ScheduledProcedureStepStatus: "STARTED"}, nil, false},
		{"UID list", Query{}, []string{"9.9", "1.2.3"}, true},
		{"UID list miss", Query{}, []string{"9.9", "1.2.4"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q.DataSet()
			if c.uids != nil {
				q[tagStudyInstanceUID] = &dicomjson.Attribute{VR: "UI", Strings: c.uids}
			}
			if got := Matches(q, it); got != c.want {
				t.Errorf("Matches = %v, want %v", got, c.want)
			}
		})
	}
}

func TestWildcard(t *testing.T) {
	for _, c := range []struct {
		p, v string
		want bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*b*", "abc", true}, {"a*b*c", "aXbYc", true}, {"a*b*c", "aXbY", false}, {"ö?", "öä", true}, {"**", "x", true},
	} {
		if got := wildcard(c.p, c.v); got != c.want {
			t.Errorf("wildcard(%q, %q) = %v", c.p, c.v, got)
		}
	}
}

// TestCodecRoundTrip encodes a full item in both transfer syntaxes and
// reads it back with the hub's parser.
func TestCodecRoundTrip(t *testing.T) {
	ds := ItemDataSet(Item{PatientName: "Dö^Jäne", PatientID: "P1", StudyInstanceUID: "1.2.3", RequestedProcedureCode: Code{"C", "L", "M"},
		ScheduledStationAETitle: "CT01", ScheduledProtocolCode: Code{"P", "L", "Protocol"}})
	for _, ts := range []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian} {
		b, err := EncodeDataSet(ds, ts)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeDataSet(bytes.NewReader(b), ts)
		if err != nil {
			t.Fatalf("%s: %v", ts, err)
		}
		if back.String(tagPatientName) != "Dö^Jäne" || back.String(tagStudyInstanceUID) != "1.2.3" ||
			back[tagScheduledProcedureStepSequence].Items[0][tagScheduledProtocolCodeSequence].Items[0].String(tagCodeMeaning) != "Protocol" {
			t.Errorf("%s: round trip lost values: %v", ts, back)
		}
		if !Matches(Query{ScheduledStationAETitle: "CT01", PatientName: "dö*"}.DataSet(), back) {
			t.Errorf("%s: decoded item does not match", ts)
		}
	}
}

func FuzzDecodeAndMatch(f *testing.F) {
	q := Query{ScheduledStationAETitle: "CT*", ScheduledProcedureStepStartDate: "20260101-"}.DataSet()
	for _, ts := range []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian} {
		b, _ := EncodeDataSet(q, ts)
		f.Add(b, ts == dicomnet.ImplicitVRLittleEndian)
		b, _ = EncodeDataSet(ItemDataSet(Item{PatientName: "A^B", ScheduledStationAETitle: "CT1"}), ts)
		f.Add(b, ts == dicomnet.ImplicitVRLittleEndian)
	}
	item := ItemDataSet(Item{PatientName: "Doe^Jane", PatientID: "P", ScheduledStationAETitle: "CT1", ScheduledProcedureStepStartDate: "20260102"})
	f.Fuzz(func(t *testing.T, b []byte, implicit bool) {
		ts := dicomnet.ExplicitVRLittleEndian
		if implicit {
			ts = dicomnet.ImplicitVRLittleEndian
		}
		ds, err := DecodeDataSet(bytes.NewReader(b), ts)
		if err != nil {
			return
		}
		// Any identifier that parses is matched and projected without a
		// panic, and the projection encodes.
		Matches(ds, item)
		prefilter(ds)
		if _, err := EncodeDataSet(Project(ds, item), ts); err != nil {
			t.Logf("projection not encodable: %v", err)
		}
	})
}

// TestProjection: a redelivered event changes nothing, an older one is
// ignored, a step gone from the order is canceled, a cancel hides all.
func TestProjection(t *testing.T) {
	rt := hubtest.Start(t, hubtest.Config(t), nil)
	ctx := context.Background()
	s := &Store{Catalog: rt.Catalog}
	t0 := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	order := OrderEvent{ID: 42, Status: "SC", AccessionNumber: "PA-1", StudyInstanceUID: "1.2.3.42", Patient: eventPatient{PatientID: "PP-1", PatientName: "Proj^Test"},
		Steps: []eventStep{{ScheduledProcedureStepID: "S1", Modality: "CT", ScheduledStationAETitle: "CT01", ScheduledStart: "2026-03-02T10:00:00+01:00"},
			{ScheduledProcedureStepID: "S2", Modality: "CT", ScheduledStationAETitle: "CT01", ScheduledStart: "2026-03-02T11:00:00+01:00"}},
		UpdatedAt: t0}
	apply := func(id string, o OrderEvent) {
		t.Helper()
		err := rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
			first, err := markApplied(ctx, tx, id, time.Now())
			if err != nil || !first {
				return err
			}
			return ApplyOrder(ctx, tx, o, time.Now())
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	list := func() map[string]Item {
		items, err := s.List(ctx, ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]Item{}
		for _, it := range items {
			m[it.ScheduledProcedureStepID] = it
		}
		return m
	}
	apply("e1", order)
	apply("e1", order) // redelivered
	got := list()
	if len(got) != 2 || got["S1"].ScheduledProcedureStepStartDate != "20260302" || got["S1"].ScheduledProcedureStepStartTime != "100000" {
		t.Fatalf("after scheduling: %+v", got)
	}
	newer := order
	newer.UpdatedAt = t0.Add(time.Minute)
	newer.Steps = newer.Steps[:1]
	newer.Steps[0].ScheduledStationAETitle = "CT02"
	apply("e2", newer)
	older := order
	older.UpdatedAt = t0.Add(-time.Minute)
	apply("e0", older) // late, older than what the items hold
	got = list()
	if got["S1"].ScheduledStationAETitle != "CT02" || got["S2"].ScheduledProcedureStepStatus != StatusCanceled {
		t.Errorf("after update: S1 station %s, S2 status %s", got["S1"].ScheduledStationAETitle, got["S2"].ScheduledProcedureStepStatus)
	}
	cancel := newer
	cancel.Status, cancel.UpdatedAt = "CA", t0.Add(2*time.Minute)
	apply("e3", cancel)
	if found, err := s.Find(ctx, Query{AccessionNumber: "PA-1"}.DataSet(), false, 0); err != nil || len(found) != 0 {
		t.Errorf("canceled order still served: %d, %v", len(found), err)
	}
	if found, _ := s.Find(ctx, Query{AccessionNumber: "PA-1"}.DataSet(), true, 0); len(found) != 2 {
		t.Errorf("IncludeFinalSteps: %d items, want 2", len(found))
	}

	// Merge: items of the retired identifier move to the survivor.
	err := rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		return ApplyPatient(ctx, tx, events.TypePatientMerged, PatientEvent{
			Identifiers: []eventIdentifier{{IDNumber: "PP-9"}}, Name: eventName{Family: "Proj", Given: "Merged"},
			PriorIdentifiers: []eventIdentifier{{IDNumber: "PP-1"}},
		}, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := list(); got["S1"].PatientID != "PP-9" || got["S1"].PatientName != "Proj^Merged" {
		t.Errorf("after merge: %+v", got["S1"])
	}
}
