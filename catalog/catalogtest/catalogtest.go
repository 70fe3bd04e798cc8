// Package catalogtest is the conformance suite every catalog backend runs,
// in the manner of gocloud.dev's drivertest: the same table of cases
// against SQLite and PostgreSQL, through the portable catalog API only.
package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
)

// NewDB returns the URL and options of a fresh, empty database for one
// test. Opening them twice must reach the same database; the harness
// removes it when the test ends.
type NewDB func(t *testing.T) (rawURL string, opts catalog.Options)

// Run runs the conformance cases as subtests of t.
func Run(t *testing.T, newDB NewDB) {
	cases := []struct {
		name string
		fn   func(t *testing.T, newDB NewDB)
	}{
		{"MigrationsIdempotent", testMigrationsIdempotent},
		{"ConcurrentOpen", testConcurrentOpen},
		{"RoundTrip", testRoundTrip},
		{"CountsAndModalities", testCountsAndModalities},
		{"DuplicatePolicies", testDuplicatePolicies},
		{"ConcurrentStore", testConcurrentStore},
		{"ConcurrentDuplicates", testConcurrentDuplicates},
		{"SeriesInAnotherStudy", testSeriesInAnotherStudy},
		{"EmptyPatientID", testEmptyPatientID},
		{"PatientMatching", testPatientMatching},
		{"OutboxAtomicity", testOutboxAtomicity},
		{"ConcurrentTxIsolation", testConcurrentTxIsolation},
		{"OutboxPendingMarkPurge", testOutboxPendingMarkPurge},
		{"OutboxBatchOrder", testOutboxBatchOrder},
		{"StudySeriesFillEmpty", testStudySeriesFillEmpty},
		{"OutboxClaim", testOutboxClaim},
		{"NotFound", testNotFound},
		{"InvalidInput", testInvalidInput},
		{"InstanceBlobKeys", testInstanceBlobKeys},
		{"Reopen", testReopen},
		{"JournaledStoreAndIntakeCheckpoint", testJournaledStore},
		{"Closed", testClosed},
		{"ReadTx", testReadTx},
		{"StudiesAwaitingStable", testStudiesAwaitingStable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, rawURL string, opts catalog.Options) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(ctxT(t), rawURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func openNew(t *testing.T, newDB NewDB) *catalog.Catalog {
	t.Helper()
	u, o := newDB(t)
	return open(t, u, o)
}

// uid builds synthetic UIDs under the 2.25 (UUID-derived) root
// (PS3.5 §B.2), which no real device issues with such small numbers.
func uid(parts ...int) string {
	s := "2.25.999"
	for _, p := range parts {
		s += fmt.Sprintf(".%d", p)
	}
	return s
}

// record builds a synthetic instance: study st, series se, instance in.
func record(st, se, in int, modality string) catalog.InstanceRecord {
	return catalog.InstanceRecord{
		Patient: catalog.Patient{
			PatientID:         fmt.Sprintf("TEST-%d", st),
			IssuerOfPatientID: "SYNTHETIC",
			PatientName:       fmt.Sprintf("TEST^PATIENT^%d", st),
			PatientBirthDate:  "19700101",
			PatientSex:        "O",
		},
		Study: catalog.Study{
			StudyInstanceUID:       uid(st),
			StudyDate:              "20240102",
			StudyTime:              "101500",
			AccessionNumber:        fmt.Sprintf("ACC%d", st),
			ReferringPhysicianName: "REFERRER^TEST",
			StudyDescription:       "SYNTHETIC STUDY",
			StudyID:                fmt.Sprintf("S%d", st),
		},
		Series: catalog.Series{
			SeriesInstanceUID: uid(st, se),
			Modality:          modality,
			SeriesNumber:      se,
			SeriesDescription: "SERIES " + modality,
			BodyPartExamined:  "CHEST",
			StationName:       "STATION1",
			InstitutionName:   "TEST HOSPITAL",
		},
		Instance: catalog.Instance{
			SOPInstanceUID:    uid(st, se, in),
			SOPClassUID:       "1.2.840.10008.5.1.4.1.1.7", // Secondary Capture Image Storage
			InstanceNumber:    in,
			TransferSyntaxUID: "1.2.840.10008.1.2.1",
			NumberOfFrames:    1,
			Rows:              64,
			Columns:           64,
			BlobKey:           fmt.Sprintf("blobs/%d/%d/%d.dcm", st, se, in),
			SizeBytes:         4096 + int64(in),
			CallingAE:         "TESTSCU",
		},
	}
}

func event(id string) catalog.OutboxMessage {
	return catalog.OutboxMessage{EventID: id, Subject: "ih.dicom.instance.stored", Payload: []byte(`{"id":"` + id + `"}`)}
}

func mustStore(t *testing.T, c *catalog.Catalog, rec catalog.InstanceRecord, msgs ...catalog.OutboxMessage) catalog.StoreResult {
	t.Helper()
	res, err := c.StoreInstance(ctxT(t), rec, catalog.KeepFirst, msgs...)
	if err != nil {
		t.Fatalf("StoreInstance %s: %v", rec.Instance.SOPInstanceUID, err)
	}
	return res
}

func mustStudy(t *testing.T, c *catalog.Catalog, studyUID string) catalog.StudyRecord {
	t.Helper()
	s, err := c.GetStudy(ctxT(t), studyUID)
	if err != nil {
		t.Fatalf("GetStudy %s: %v", studyUID, err)
	}
	return s
}

func wantCounts(t *testing.T, s catalog.Study, series, instances int, modalities ...string) {
	t.Helper()
	if s.NumberOfStudyRelatedSeries != series || s.NumberOfStudyRelatedInstances != instances {
		t.Errorf("study %s: NumberOfStudyRelatedSeries/Instances = %d/%d, want %d/%d",
			s.StudyInstanceUID, s.NumberOfStudyRelatedSeries, s.NumberOfStudyRelatedInstances, series, instances)
	}
	if !slices.Equal(s.ModalitiesInStudy, modalities) {
		t.Errorf("study %s: ModalitiesInStudy = %q, want %q", s.StudyInstanceUID, s.ModalitiesInStudy, modalities)
	}
}

func backlog(t *testing.T, c *catalog.Catalog) int64 {
	t.Helper()
	n, err := c.OutboxBacklog(ctxT(t))
	if err != nil {
		t.Fatalf("OutboxBacklog: %v", err)
	}
	return n
}

func testMigrationsIdempotent(t *testing.T, newDB NewDB) {
	u, o := newDB(t)
	c1 := open(t, u, o)
	mustStore(t, c1, record(1, 1, 1, "CT"))
	if err := c1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Second and third Open find the schema current and change nothing.
	for i := 0; i < 2; i++ {
		c := open(t, u, o)
		if n, err := c.CountInstances(ctxT(t)); err != nil || n != 1 {
			t.Fatalf("after reopen %d: CountInstances = %d, %v; want 1", i, n, err)
		}
		c.Close()
	}
}

func testConcurrentOpen(t *testing.T, newDB NewDB) {
	u, o := newDB(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	cats := make([]*catalog.Catalog, n)
	for i := range n {
		wg.Go(func() {
			cats[i], errs[i] = catalog.Open(ctxT(t), u, o)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("concurrent Open %d: %v", i, errs[i])
			continue
		}
		defer cats[i].Close()
		if err := cats[i].Ping(ctxT(t)); err != nil {
			t.Errorf("Ping %d: %v", i, err)
		}
	}
	if errs[0] == nil {
		mustStore(t, cats[0], record(1, 1, 1, "CT"))
	}
}

func testRoundTrip(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	rec := record(7, 2, 3, "MR")
	rec.Series.Laterality = "L"
	rec.Series.SeriesDate, rec.Series.SeriesTime = "20240102", "101501.123"
	rec.Study.IssuerOfAccessionNumber = "RIS"
	rec.Patient.PatientName = "Müller^Jürgen=山田^太郎" // non-ASCII survives as UTF-8
	rec.Instance.ReceivedAt = time.Date(2024, 1, 2, 10, 15, 2, 123456000, time.UTC)
	before := time.Now().Add(-time.Second)
	res := mustStore(t, c, rec)
	if res.Duplicate || !res.NewStudy || !res.NewSeries || res.UnusedBlobKey != "" {
		t.Errorf("StoreResult = %+v, want new study and series, no duplicate", res)
	}

	got, err := c.GetInstance(ctx, rec.Instance.SOPInstanceUID)
	if err != nil {
		t.Fatalf("GetInstance: %v", err)
	}
	want := rec.Instance
	want.SeriesInstanceUID, want.StudyInstanceUID = rec.Series.SeriesInstanceUID, rec.Study.StudyInstanceUID
	if !got.ReceivedAt.Equal(want.ReceivedAt) {
		t.Errorf("ReceivedAt = %v, want %v", got.ReceivedAt, want.ReceivedAt)
	}
	got.ReceivedAt, want.ReceivedAt = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("GetInstance =\n%+v\nwant\n%+v", got, want)
	}

	s := mustStudy(t, c, rec.Study.StudyInstanceUID)
	if s.Patient != rec.Patient {
		t.Errorf("GetStudy patient = %+v, want %+v", s.Patient, rec.Patient)
	}
	if !s.Study.LastReceived.Equal(rec.Instance.ReceivedAt) {
		t.Errorf("LastReceived = %v, want %v", s.Study.LastReceived, rec.Instance.ReceivedAt)
	}
	if s.Study.CreatedAt.Before(before) || s.Study.UpdatedAt.Before(s.Study.CreatedAt) {
		t.Errorf("CreatedAt/UpdatedAt = %v/%v, want after %v and ordered", s.Study.CreatedAt, s.Study.UpdatedAt, before)
	}
	gs := s.Study
	gs.ModalitiesInStudy, gs.NumberOfStudyRelatedSeries, gs.NumberOfStudyRelatedInstances = nil, 0, 0
	gs.CreatedAt, gs.UpdatedAt, gs.LastReceived = time.Time{}, time.Time{}, time.Time{}
	if !studyEqual(gs, rec.Study) {
		t.Errorf("GetStudy study =\n%+v\nwant\n%+v", gs, rec.Study)
	}
	wantCounts(t, s.Study, 1, 1, "MR")

	se, err := c.GetSeries(ctx, rec.Series.SeriesInstanceUID)
	if err != nil {
		t.Fatalf("GetSeries: %v", err)
	}
	wantSe := rec.Series
	wantSe.NumberOfSeriesRelatedInstances = 1
	if se != wantSe {
		t.Errorf("GetSeries =\n%+v\nwant\n%+v", se, wantSe)
	}

	list, err := c.ListInstances(ctx, rec.Study.StudyInstanceUID)
	if err != nil || len(list) != 1 || list[0].SOPInstanceUID != rec.Instance.SOPInstanceUID {
		t.Errorf("ListInstances = %+v, %v; want the one instance", list, err)
	}
}

func studyEqual(a, b catalog.Study) bool {
	a.ModalitiesInStudy, b.ModalitiesInStudy = nil, nil
	return reflect.DeepEqual(a, b)
}

func testCountsAndModalities(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	// Study 1: series 1 CT ×2, series 2 MR ×3, series 3 CT ×1, series 4
	// without Modality ×1. Study 2 (same patient ID scheme, other
	// patient): series 1 US ×1.
	layout := []struct {
		se, n    int
		modality string
	}{{1, 2, "CT"}, {2, 3, "MR"}, {3, 1, "CT"}, {4, 1, ""}}
	for _, l := range layout {
		for in := 1; in <= l.n; in++ {
			// Store in reverse instance order to check ListInstances sorts.
			mustStore(t, c, record(1, l.se, l.n-in+1, l.modality))
		}
	}
	mustStore(t, c, record(2, 1, 1, "US"))

	wantCounts(t, mustStudy(t, c, uid(1)).Study, 4, 7, "CT", "MR")
	wantCounts(t, mustStudy(t, c, uid(2)).Study, 1, 1, "US")
	for _, l := range layout {
		se, err := c.GetSeries(ctx, uid(1, l.se))
		if err != nil || se.NumberOfSeriesRelatedInstances != l.n {
			t.Errorf("series %d: NumberOfSeriesRelatedInstances = %d, %v; want %d", l.se, se.NumberOfSeriesRelatedInstances, err, l.n)
		}
	}
	list, err := c.ListInstances(ctx, uid(1))
	if err != nil {
		t.Fatalf("ListInstances: %v", err)
	}
	var order []string
	for _, in := range list {
		order = append(order, in.SOPInstanceUID)
	}
	wantOrder := []string{uid(1, 1, 1), uid(1, 1, 2), uid(1, 2, 1), uid(1, 2, 2), uid(1, 2, 3), uid(1, 3, 1), uid(1, 4, 1)}
	if !slices.Equal(order, wantOrder) {
		t.Errorf("ListInstances order = %q, want %q", order, wantOrder)
	}
	if n, err := c.CountInstances(ctx); err != nil || n != 8 {
		t.Errorf("CountInstances = %d, %v; want 8", n, err)
	}
}

func testDuplicatePolicies(t *testing.T, newDB NewDB) {
	tests := []struct {
		name        string
		policy      catalog.DuplicatePolicy
		newKey      string
		wantErr     error
		wantKey     string // blob key stored after the call
		wantUnused  string
		wantBacklog int64
	}{
		{"KeepFirst", catalog.KeepFirst, "blobs/new.dcm", nil, "blobs/1/1/1.dcm", "blobs/new.dcm", 1},
		{"KeepFirstSameKey", catalog.KeepFirst, "blobs/1/1/1.dcm", nil, "blobs/1/1/1.dcm", "", 1},
		{"Replace", catalog.Replace, "blobs/new.dcm", nil, "blobs/new.dcm", "blobs/1/1/1.dcm", 2},
		{"ReplaceSameKey", catalog.Replace, "blobs/1/1/1.dcm", nil, "blobs/1/1/1.dcm", "", 2},
		{"Reject", catalog.Reject, "blobs/new.dcm", catalog.ErrDuplicate, "blobs/1/1/1.dcm", "blobs/new.dcm", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openNew(t, newDB)
			ctx := ctxT(t)
			first := record(1, 1, 1, "CT")
			mustStore(t, c, first, event("e1"))
			before := mustStudy(t, c, uid(1))

			dup := record(1, 1, 1, "CT")
			dup.Instance.BlobKey = tt.newKey
			dup.Instance.SizeBytes = 99
			dup.Patient.PatientName = "CHANGED^NAME"
			res, err := c.StoreInstance(ctx, dup, tt.policy, event("e2"))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("StoreInstance duplicate: err = %v, want %v", err, tt.wantErr)
			}
			if !res.Duplicate || res.ExistingBlobKey != "blobs/1/1/1.dcm" || res.UnusedBlobKey != tt.wantUnused {
				t.Errorf("StoreResult = %+v, want Duplicate, ExistingBlobKey blobs/1/1/1.dcm, UnusedBlobKey %q", res, tt.wantUnused)
			}
			in, err := c.GetInstance(ctx, first.Instance.SOPInstanceUID)
			if err != nil || in.BlobKey != tt.wantKey {
				t.Errorf("stored BlobKey = %q, %v; want %q", in.BlobKey, err, tt.wantKey)
			}
			after := mustStudy(t, c, uid(1))
			wantCounts(t, after.Study, 1, 1, "CT")
			if se, err := c.GetSeries(ctx, uid(1, 1)); err != nil || se.NumberOfSeriesRelatedInstances != 1 {
				t.Errorf("NumberOfSeriesRelatedInstances = %d, %v; want 1", se.NumberOfSeriesRelatedInstances, err)
			}
			if after.Patient.PatientName != before.Patient.PatientName {
				t.Errorf("PatientName = %q, want unchanged %q", after.Patient.PatientName, before.Patient.PatientName)
			}
			if tt.policy != catalog.Replace && !after.Study.LastReceived.Equal(before.Study.LastReceived) {
				t.Errorf("LastReceived changed by a kept duplicate")
			}
			if got := backlog(t, c); got != tt.wantBacklog {
				t.Errorf("OutboxBacklog = %d, want %d", got, tt.wantBacklog)
			}
		})
	}
}

func testConcurrentStore(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	const workers, total = 8, 200
	modalities := []string{"CT", "MR", "PR", "SR"}
	work := make(chan int)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				se := i%len(modalities) + 1
				_, err := c.StoreInstance(ctx, record(1, se, i, modalities[se-1]), catalog.KeepFirst, event(fmt.Sprint("e", i)))
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range total {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("StoreInstance: %v", err)
	}
	wantCounts(t, mustStudy(t, c, uid(1)).Study, 4, total, "CT", "MR", "PR", "SR")
	for se := 1; se <= len(modalities); se++ {
		s, err := c.GetSeries(ctx, uid(1, se))
		if err != nil || s.NumberOfSeriesRelatedInstances != total/len(modalities) {
			t.Errorf("series %d: NumberOfSeriesRelatedInstances = %d, %v; want %d", se, s.NumberOfSeriesRelatedInstances, err, total/len(modalities))
		}
	}
	if got := backlog(t, c); got != total {
		t.Errorf("OutboxBacklog = %d, want %d", got, total)
	}
}

func testConcurrentDuplicates(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	// Eight associations send the same 20 instances at once: each is
	// stored once, the rest are duplicates, nothing fails.
	const workers, n = 8, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	dups := 0
	for w := range workers {
		wg.Go(func() {
			for i := range n {
				rec := record(3, 1, i, "CT")
				rec.Instance.BlobKey = fmt.Sprintf("blobs/w%d/%d.dcm", w, i)
				res, err := c.StoreInstance(ctx, rec, catalog.KeepFirst)
				if err != nil {
					t.Errorf("StoreInstance: %v", err)
					return
				}
				if res.Duplicate {
					mu.Lock()
					dups++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if dups != (workers-1)*n {
		t.Errorf("duplicates = %d, want %d", dups, (workers-1)*n)
	}
	wantCounts(t, mustStudy(t, c, uid(3)).Study, 1, n, "CT")
}

func testSeriesInAnotherStudy(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	mustStore(t, c, record(1, 1, 1, "CT"))
	bad := record(2, 1, 2, "CT")
	bad.Series.SeriesInstanceUID = uid(1, 1) // series of study 1 claimed by study 2
	_, err := c.StoreInstance(ctxT(t), bad, catalog.KeepFirst, event("bad"))
	if !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("StoreInstance: err = %v, want ErrConflict", err)
	}
	if _, err := c.GetStudy(ctxT(t), uid(2)); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("GetStudy of the failed store: err = %v, want ErrNotFound (rolled back)", err)
	}
	if got := backlog(t, c); got != 0 {
		t.Errorf("OutboxBacklog = %d after a failed store, want 0", got)
	}
	wantCounts(t, mustStudy(t, c, uid(1)).Study, 1, 1, "CT")
}

func testEmptyPatientID(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	// Two studies without Patient ID must not share a patient; two
	// instances of one such study must.
	a1, a2, b := record(1, 1, 1, "CT"), record(1, 1, 2, "CT"), record(2, 1, 1, "CT")
	for _, r := range []*catalog.InstanceRecord{&a1, &a2, &b} {
		r.Patient.PatientID, r.Patient.IssuerOfPatientID = "", ""
	}
	a1.Patient.PatientName, a2.Patient.PatientName, b.Patient.PatientName = "ANON^A", "ANON^A", "ANON^B"
	mustStore(t, c, a1)
	mustStore(t, c, a2)
	mustStore(t, c, b)
	sa, sb := mustStudy(t, c, uid(1)), mustStudy(t, c, uid(2))
	if sa.Patient.PatientName != "ANON^A" || sb.Patient.PatientName != "ANON^B" {
		t.Errorf("patients = %q, %q; want ANON^A, ANON^B", sa.Patient.PatientName, sb.Patient.PatientName)
	}
	wantCounts(t, sa.Study, 1, 2, "CT")
}

// testStudySeriesFillEmpty: study and series attributes the first
// instance left empty are filled in by a later one; a value once stored is
// kept when another instance carries a different one.
func testStudySeriesFillEmpty(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	first := record(1, 1, 1, "CT")
	first.Study.AccessionNumber, first.Study.StudyDescription, first.Study.StudyTime = "", "", ""
	first.Series.SeriesNumber, first.Series.SeriesDescription, first.Series.BodyPartExamined = 0, "", ""
	second := record(1, 1, 2, "CT")
	second.Study.AccessionNumber, second.Study.StudyDescription, second.Series.SeriesNumber = "ACC-LATE", "FILLED LATER", 7
	third := record(1, 1, 3, "CT")
	third.Study.AccessionNumber, third.Study.StudyDescription, third.Study.StudyDate = "ACC-OTHER", "OTHER", "20250101"
	third.Series.SeriesNumber, third.Series.SeriesDescription, third.Series.BodyPartExamined = 9, "OTHER", "HEAD"
	for _, r := range []catalog.InstanceRecord{first, second, third} {
		mustStore(t, c, r)
	}
	st := mustStudy(t, c, uid(1)).Study
	if st.AccessionNumber != "ACC-LATE" || st.StudyDescription != "FILLED LATER" || st.StudyTime != second.Study.StudyTime || st.StudyDate != first.Study.StudyDate {
		t.Errorf("study = %+v; want accession ACC-LATE, description FILLED LATER, time %s, date %s",
			st, second.Study.StudyTime, first.Study.StudyDate)
	}
	wantCounts(t, st, 1, 3, "CT")
	se, err := c.GetSeries(ctxT(t), uid(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if se.SeriesNumber != 7 || se.SeriesDescription != second.Series.SeriesDescription || se.BodyPartExamined != second.Series.BodyPartExamined {
		t.Errorf("series = %+v; want number 7, description %q, body part %q", se, second.Series.SeriesDescription, second.Series.BodyPartExamined)
	}
}

func testPatientMatching(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	// Same Patient ID, different issuers: two patients. Same ID and
	// issuer: one patient, whose empty attributes later instances fill in.
	tests := []struct {
		st             int
		id, issuer     string
		name, dob      string
		wantName, dob2 string
	}{
		{1, "P1", "HOSP-A", "TEST^ONE", "", "TEST^ONE", "19800101"},
		{2, "P1", "HOSP-B", "TEST^TWO", "19900101", "TEST^TWO", "19900101"},
		{3, "P1", "HOSP-A", "TEST^OTHER", "19800101", "TEST^ONE", "19800101"},
	}
	for _, tt := range tests {
		r := record(tt.st, 1, 1, "CT")
		r.Patient = catalog.Patient{PatientID: tt.id, IssuerOfPatientID: tt.issuer, PatientName: tt.name, PatientBirthDate: tt.dob}
		mustStore(t, c, r)
	}
	for _, tt := range tests {
		s := mustStudy(t, c, uid(tt.st))
		if s.Patient.PatientName != tt.wantName || s.Patient.PatientBirthDate != tt.dob2 || s.Patient.IssuerOfPatientID != tt.issuer {
			t.Errorf("study %d patient = %+v, want name %q birth date %q issuer %q", tt.st, s.Patient, tt.wantName, tt.dob2, tt.issuer)
		}
	}
}

func testOutboxAtomicity(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	mustStore(t, c, record(1, 1, 1, "CT"), event("stored-1"), event("stored-1b"))
	if got := backlog(t, c); got != 2 {
		t.Fatalf("OutboxBacklog after store = %d, want 2", got)
	}

	errBoom := errors.New("deliberate failure")
	tests := []struct {
		name string
		fn   func(tx *catalog.Tx) error
		want error
	}{
		{"FnFails", func(tx *catalog.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE studies SET study_description = ? WHERE study_instance_uid = ?`, "CHANGED", uid(1)); err != nil {
				return err
			}
			tx.AppendOutbox(event("x1"))
			return errBoom
		}, errBoom},
		{"InvalidOutbox", func(tx *catalog.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE studies SET study_description = ? WHERE study_instance_uid = ?`, "CHANGED", uid(1)); err != nil {
				return err
			}
			tx.AppendOutbox(event("x2"), catalog.OutboxMessage{Subject: "ih.x"})
			return nil
		}, catalog.ErrInvalid},
		{"BadSQL", func(tx *catalog.Tx) error {
			tx.AppendOutbox(event("x3"))
			_, err := tx.ExecContext(ctx, `UPDATE no_such_table SET x = 1`)
			return err
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.InTx(ctx, tt.fn)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("InTx: err = %v, want %v", err, tt.want)
			}
			if got := backlog(t, c); got != 2 {
				t.Errorf("OutboxBacklog = %d, want 2 (nothing from the failed transaction)", got)
			}
			if d := mustStudy(t, c, uid(1)).Study.StudyDescription; d != "SYNTHETIC STUDY" {
				t.Errorf("StudyDescription = %q, change not rolled back", d)
			}
		})
	}

	// A committed InTx writes its change and its outbox rows.
	err := c.InTx(ctx, func(tx *catalog.Tx) error {
		tx.AppendOutbox(event("ok"))
		_, err := tx.ExecContext(ctx, `UPDATE studies SET study_description = ? WHERE study_instance_uid = ?`, "CHANGED", uid(1))
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if got := backlog(t, c); got != 3 {
		t.Errorf("OutboxBacklog = %d, want 3", got)
	}
	if d := mustStudy(t, c, uid(1)).Study.StudyDescription; d != "CHANGED" {
		t.Errorf("StudyDescription = %q, want CHANGED", d)
	}

	// A panic rolls back too, and propagates.
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("InTx swallowed a panic")
			}
		}()
		_ = c.InTx(ctx, func(tx *catalog.Tx) error {
			tx.AppendOutbox(event("panic"))
			panic("deliberate")
		})
	}()
	if got := backlog(t, c); got != 3 {
		t.Errorf("OutboxBacklog after panic = %d, want 3", got)
	}
}

// testConcurrentTxIsolation runs many write transactions at once, some of
// which fail, panic or were cancelled before they ran: each one commits or
// rolls back alone, whatever the backend does to run them (SQLite commits
// the ones that queue behind a running transaction together).
func testConcurrentTxIsolation(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	errBoom := errors.New("deliberate failure")
	insert := func(tx *catalog.Tx, id string) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO outbox (event_id, subject, payload, created_at) VALUES (?, ?, ?, ?)`,
			id+"-direct", "ih.test", []byte("{}"), tx.Time(time.Now()))
		return err
	}

	// The first transaction holds the writer while the others queue.
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- c.InTx(ctx, func(tx *catalog.Tx) error {
			close(started)
			<-release
			tx.AppendOutbox(event("tx-first"))
			return insert(tx, "tx-first")
		})
	}()
	<-started

	const n = 24
	var (
		wg     sync.WaitGroup
		errs   [n]error
		panics [n]any
		want   = []string{"tx-first", "tx-first-direct"}
	)
	for i := range n {
		id := fmt.Sprintf("tx-%02d", i)
		switch {
		case i%6 == 1, i%6 == 3, i == 5:
		default:
			want = append(want, id, id+"-direct")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { panics[i] = recover() }()
			errs[i] = c.InTx(ctx, func(tx *catalog.Tx) error {
				if err := insert(tx, id); err != nil {
					return err
				}
				tx.AppendOutbox(event(id))
				switch {
				case i%6 == 1:
					return errBoom
				case i%6 == 3:
					_, err := tx.ExecContext(ctx, `INSERT INTO no_such_table VALUES (1)`)
					return err
				case i == 5:
					panic("deliberate panic")
				}
				return nil
			})
		}()
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	ranCancelled := false
	cerr := c.InTx(cancelled, func(tx *catalog.Tx) error {
		ranCancelled = true
		return nil
	})
	time.Sleep(50 * time.Millisecond) // let the others queue; the checks below hold either way
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first transaction: %v", err)
	}
	if cerr == nil || ranCancelled {
		t.Errorf("cancelled transaction: err = %v, ran = %v; want an error and no run", cerr, ranCancelled)
	}
	for i := range n {
		switch {
		case i == 5:
			if panics[i] != "deliberate panic" {
				t.Errorf("tx %d: panic = %v, want it raised in the caller", i, panics[i])
			}
		case i%6 == 1:
			if !errors.Is(errs[i], errBoom) {
				t.Errorf("tx %d: err = %v, want errBoom", i, errs[i])
			}
		case i%6 == 3:
			if errs[i] == nil {
				t.Errorf("tx %d: bad SQL committed", i)
			}
		default:
			if errs[i] != nil || panics[i] != nil {
				t.Errorf("tx %d: err = %v, panic = %v", i, errs[i], panics[i])
			}
		}
	}
	msgs, err := c.PendingOutbox(ctx, 1000)
	if err != nil {
		t.Fatalf("PendingOutbox: %v", err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.EventID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("committed outbox rows:\n got %q\nwant %q", got, want)
	}
}

// testOutboxBatchOrder appends more messages in one transaction than one
// multi-row insert takes: all are written, with ids in the order appended,
// and nil and empty payloads are both stored as empty.
func testOutboxBatchOrder(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	const n = 300 // 128 + 128 + 32 + 8 + 4
	var want []string
	err := c.InTx(ctx, func(tx *catalog.Tx) error {
		for i := range n {
			m := event(fmt.Sprintf("batch-%03d", i))
			switch i % 3 {
			case 1:
				m.Payload = nil
			case 2:
				m.Payload = []byte{}
			}
			want = append(want, m.EventID)
			tx.AppendOutbox(m)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	msgs, err := c.PendingOutbox(ctx, 1000)
	if err != nil {
		t.Fatalf("PendingOutbox: %v", err)
	}
	var got []string
	for i, m := range msgs {
		got = append(got, m.EventID)
		if i > 0 && m.ID <= msgs[i-1].ID {
			t.Fatalf("ids not increasing at %d: %d after %d", i, m.ID, msgs[i-1].ID)
		}
		if wantPayload := i%3 == 0; (len(m.Payload) > 0) != wantPayload {
			t.Errorf("%s: payload %q", m.EventID, m.Payload)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("outbox rows in id order:\n got %q\nwant %q", got, want)
	}
}

func testOutboxPendingMarkPurge(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	for i := range 5 {
		mustStore(t, c, record(1, 1, i, "CT"), event(fmt.Sprint("e", i)))
	}
	msgs, err := c.PendingOutbox(ctx, 3)
	if err != nil {
		t.Fatalf("PendingOutbox: %v", err)
	}
	if len(msgs) != 3 {
		t.Fatalf("PendingOutbox(3) returned %d", len(msgs))
	}
	for i, m := range msgs {
		if m.EventID != fmt.Sprint("e", i) || m.Subject != "ih.dicom.instance.stored" ||
			string(m.Payload) != `{"id":"e`+fmt.Sprint(i)+`"}` || m.CreatedAt.IsZero() || m.ID == 0 {
			t.Errorf("message %d = %+v, want e%d in order", i, m, i)
		}
	}
	if err := c.MarkOutboxSent(ctx, msgs[0].ID, msgs[1].ID, msgs[2].ID, msgs[0].ID); err != nil {
		t.Fatalf("MarkOutboxSent: %v", err)
	}
	if got := backlog(t, c); got != 2 {
		t.Errorf("OutboxBacklog = %d, want 2", got)
	}
	rest, err := c.PendingOutbox(ctx, 100)
	if err != nil || len(rest) != 2 || rest[0].EventID != "e3" || rest[1].EventID != "e4" {
		t.Errorf("PendingOutbox after mark = %+v, %v; want e3, e4", rest, err)
	}
	// Sent a moment ago: a one-hour retention keeps them, zero purges them.
	if n, err := c.PurgeSentOutbox(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("PurgeSentOutbox(1h) = %d, %v; want 0", n, err)
	}
	if n, err := c.PurgeSentOutbox(ctx, 0); err != nil || n != 3 {
		t.Errorf("PurgeSentOutbox(0) = %d, %v; want 3", n, err)
	}
	if got := backlog(t, c); got != 2 {
		t.Errorf("OutboxBacklog after purge = %d, want 2 (unsent never purged)", got)
	}
	if err := c.MarkOutboxSent(ctx); err != nil {
		t.Errorf("MarkOutboxSent(): %v", err)
	}
}

func testOutboxClaim(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	const total = 60
	for i := range total {
		mustStore(t, c, record(1, 1, i, "CT"), event(fmt.Sprint("e", i)))
	}
	// Three relays claim concurrently: every message goes to exactly one.
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				msgs, err := c.ClaimOutbox(ctx, time.Minute, 7)
				if err != nil {
					t.Errorf("ClaimOutbox: %v", err)
					return
				}
				if len(msgs) == 0 {
					return
				}
				mu.Lock()
				for _, m := range msgs {
					seen[m.EventID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != total {
		t.Errorf("claimed %d distinct messages, want %d", len(seen), total)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
	// Claims do not mark sent; after the lease they are claimable again.
	if got := backlog(t, c); got != total {
		t.Errorf("OutboxBacklog = %d, want %d", got, total)
	}
	mustStore(t, c, record(2, 1, 1, "CT"), event("short"))
	msgs, err := c.ClaimOutbox(ctx, 50*time.Millisecond, 10)
	if err != nil || len(msgs) != 1 || msgs[0].EventID != "short" {
		t.Fatalf("ClaimOutbox = %+v, %v; want the one unclaimed message", msgs, err)
	}
	time.Sleep(100 * time.Millisecond)
	again, err := c.ClaimOutbox(ctx, time.Minute, 10)
	if err != nil || len(again) != 1 || again[0].ID != msgs[0].ID {
		t.Fatalf("ClaimOutbox after lease = %+v, %v; want the expired claim back", again, err)
	}
	if err := c.MarkOutboxSent(ctx, again[0].ID); err != nil {
		t.Fatalf("MarkOutboxSent: %v", err)
	}
	if got := backlog(t, c); got != total {
		t.Errorf("OutboxBacklog = %d, want %d", got, total)
	}
}

func testNotFound(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	mustStore(t, c, record(1, 1, 1, "CT"))
	tests := []struct {
		name string
		fn   func() error
	}{
		{"GetInstance", func() error { _, err := c.GetInstance(ctx, uid(9, 9, 9)); return err }},
		{"GetStudy", func() error { _, err := c.GetStudy(ctx, uid(9)); return err }},
		{"GetSeries", func() error { _, err := c.GetSeries(ctx, uid(9, 9)); return err }},
		{"ListInstances", func() error { _, err := c.ListInstances(ctx, uid(9)); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, catalog.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

func testInvalidInput(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	tests := []struct {
		name   string
		mutate func(r *catalog.InstanceRecord)
		msgs   []catalog.OutboxMessage
		policy catalog.DuplicatePolicy
	}{
		{"NoStudyUID", func(r *catalog.InstanceRecord) { r.Study.StudyInstanceUID = "" }, nil, catalog.KeepFirst},
		{"NoSeriesUID", func(r *catalog.InstanceRecord) { r.Series.SeriesInstanceUID = "" }, nil, catalog.KeepFirst},
		{"NoSOPInstanceUID", func(r *catalog.InstanceRecord) { r.Instance.SOPInstanceUID = "" }, nil, catalog.KeepFirst},
		{"NoBlobKey", func(r *catalog.InstanceRecord) { r.Instance.BlobKey = "" }, nil, catalog.KeepFirst},
		{"Latin1Name", func(r *catalog.InstanceRecord) { r.Patient.PatientName = "M\xfcller" }, nil, catalog.KeepFirst},
		{"NULInUID", func(r *catalog.InstanceRecord) { r.Study.StudyInstanceUID += "\x00" }, nil, catalog.KeepFirst},
		{"MultiValueModality", func(r *catalog.InstanceRecord) { r.Series.Modality = `CT\PT` }, nil, catalog.KeepFirst},
		{"OutboxWithoutEventID", func(*catalog.InstanceRecord) {}, []catalog.OutboxMessage{{Subject: "ih.x"}}, catalog.KeepFirst},
		{"UnknownPolicy", func(*catalog.InstanceRecord) {}, nil, catalog.DuplicatePolicy(42)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := record(1, 1, 1, "CT")
			tt.mutate(&r)
			if _, err := c.StoreInstance(ctx, r, tt.policy, tt.msgs...); !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("StoreInstance: err = %v, want ErrInvalid", err)
			}
		})
	}
	if n, err := c.CountInstances(ctx); err != nil || n != 0 {
		t.Errorf("CountInstances = %d, %v; want 0", n, err)
	}
	if _, err := c.PendingOutbox(ctx, 0); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("PendingOutbox(0): err = %v, want ErrInvalid", err)
	}
}

func testInstanceBlobKeys(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	// More than one page (1000) of rows.
	const n = 1203
	err := c.InTx(ctx, func(tx *catalog.Tx) error { return nil })
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	want := map[string]string{}
	for i := range n {
		r := record(1+i%3, 1, i, "CT")
		mustStore(t, c, r)
		want[r.Instance.SOPInstanceUID] = r.Instance.BlobKey
	}
	got := map[string]string{}
	for b, err := range c.InstanceBlobKeys(ctx) {
		if err != nil {
			t.Fatalf("InstanceBlobKeys: %v", err)
		}
		if _, dup := got[b.SOPInstanceUID]; dup {
			t.Errorf("%s yielded twice", b.SOPInstanceUID)
		}
		got[b.SOPInstanceUID] = b.BlobKey
	}
	if len(got) != n {
		t.Errorf("yielded %d, want %d", len(got), n)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: blob key %q, want %q", k, got[k], v)
		}
	}
	// BlobRefs looks up a chosen set, more than one statement's worth.
	var ask []string
	for k := range want {
		ask = append(ask, k)
		if len(ask) == 300 {
			break
		}
	}
	ask = append(ask, "1.2.999.unknown")
	refs, err := c.BlobRefs(ctx, ask)
	if err != nil {
		t.Fatalf("BlobRefs: %v", err)
	}
	if len(refs) != len(ask)-1 {
		t.Errorf("BlobRefs returned %d, want %d", len(refs), len(ask)-1)
	}
	for _, k := range ask[:len(ask)-1] {
		if refs[k].BlobKey != want[k] || refs[k].SOPInstanceUID != k {
			t.Errorf("BlobRefs %s: %+v, want key %q", k, refs[k], want[k])
		}
	}
	// Stopping early is allowed.
	count := 0
	for range c.InstanceBlobKeys(ctx) {
		count++
		if count == 5 {
			break
		}
	}
	if count != 5 {
		t.Errorf("early break: %d", count)
	}
}

func testReopen(t *testing.T, newDB NewDB) {
	u, o := newDB(t)
	c := open(t, u, o)
	for i := range 10 {
		mustStore(t, c, record(1, 1+i%2, i, "MR"), event(fmt.Sprint("e", i)))
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c2 := open(t, u, o)
	wantCounts(t, mustStudy(t, c2, uid(1)).Study, 2, 10, "MR")
	if got := backlog(t, c2); got != 10 {
		t.Errorf("OutboxBacklog after reopen = %d, want 10", got)
	}
	// The reopened catalog keeps counting from where it was.
	mustStore(t, c2, record(1, 3, 1, "CT"))
	wantCounts(t, mustStudy(t, c2, uid(1)).Study, 3, 11, "CT", "MR")
}

// An instance stored with a lazy commit is visible at once and survives a
// reopen; the intake checkpoint row is written and moved forward.
func testJournaledStore(t *testing.T, newDB NewDB) {
	u, o := newDB(t)
	c := open(t, u, o)
	ctx := ctxT(t)
	for i := range 3 {
		if _, err := c.StoreInstanceJournaled(ctx, record(1, 1, i, "CT"), catalog.KeepFirst, nil, event(fmt.Sprint("j", i))); err != nil {
			t.Fatalf("StoreInstanceJournaled: %v", err)
		}
	}
	wantCounts(t, mustStudy(t, c, uid(1)).Study, 1, 3, "CT")
	for _, seq := range []uint64{7, 42} {
		if err := c.SyncIntake(ctx, "host:/data/intake.journal", seq); err != nil {
			t.Fatalf("SyncIntake(%d): %v", seq, err)
		}
	}
	var seq int64
	err := c.InTx(ctx, func(tx *catalog.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT seq FROM intake_checkpoints WHERE journal = ?`, "host:/data/intake.journal").Scan(&seq)
	})
	if err != nil || seq != 42 {
		t.Fatalf("intake checkpoint: seq %d, %v; want 42", seq, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2 := open(t, u, o)
	wantCounts(t, mustStudy(t, c2, uid(1)).Study, 1, 3, "CT")
	if got := backlog(t, c2); got != 3 {
		t.Errorf("OutboxBacklog after reopen = %d, want 3", got)
	}
}

func testClosed(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err := c.StoreInstance(ctxT(t), record(1, 1, 1, "CT"), catalog.KeepFirst)
	if !errors.Is(err, catalog.ErrClosed) {
		t.Errorf("StoreInstance after Close: err = %v, want ErrClosed", err)
	}
	if _, err := c.GetStudy(ctxT(t), uid(1)); !errors.Is(err, catalog.ErrClosed) {
		t.Errorf("GetStudy after Close: err = %v, want ErrClosed", err)
	}
}

// testReadTx: a read transaction sees committed rows, runs beside an open
// write transaction without waiting for it, and refuses writes.
func testReadTx(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	if err := c.InTx(ctx, func(tx *catalog.Tx) error {
		tx.AppendOutbox(catalog.OutboxMessage{EventID: "e1", Subject: "ih.test"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	count := func(q catalog.Querier) (n int) {
		if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox WHERE event_id = ?", "e1").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	inWrite := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.InTx(ctx, func(tx *catalog.Tx) error {
			if count(tx) != 1 {
				t.Error("write transaction does not see the row")
			}
			close(inWrite)
			<-release
			return nil
		})
	}()
	<-inWrite
	err := c.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		if n := count(tx); n != 1 {
			t.Errorf("read transaction sees %d rows, want 1", n)
		}
		_, err := tx.QueryContext(ctx, "DELETE FROM outbox")
		if err == nil {
			t.Error("a read transaction accepted a write")
		}
		return nil
	})
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func testStudiesAwaitingStable(t *testing.T, newDB NewDB) {
	c := openNew(t, newDB)
	ctx := ctxT(t)
	store := func(study, inst int) {
		t.Helper()
		rec := catalog.InstanceRecord{
			Patient:  catalog.Patient{PatientID: "SYNRS", PatientName: "RECEIPT^TEST"},
			Study:    catalog.Study{StudyInstanceUID: uid(9100, study)},
			Series:   catalog.Series{SeriesInstanceUID: uid(9100, study, 1), Modality: "CT"},
			Instance: catalog.Instance{SOPInstanceUID: uid(9100, study, 1, inst), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", BlobKey: fmt.Sprintf("k%d-%d", study, inst), TransferSyntaxUID: "1.2.840.10008.1.2"},
		}
		if _, err := c.StoreInstance(ctx, rec, catalog.KeepFirst); err != nil {
			t.Fatal(err)
		}
	}
	awaiting := func() []string {
		t.Helper()
		got, err := c.StudiesAwaitingStable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var uids []string
		for _, r := range got {
			if r.LastReceived.IsZero() {
				t.Fatalf("no LastReceived: %+v", r)
			}
			uids = append(uids, r.StudyInstanceUID)
		}
		return uids
	}
	announce := func(study int) {
		t.Helper()
		st, err := c.GetStudy(ctx, uid(9100, study))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.InTx(ctx, func(tx *catalog.Tx) error {
			return tx.MarkStableAnnounced(ctx, uid(9100, study), st.Study.LastReceived)
		}); err != nil {
			t.Fatal(err)
		}
	}
	store(1, 1)
	store(2, 1)
	if got := awaiting(); len(got) != 2 {
		t.Fatalf("awaiting %v, want both studies", got)
	}
	announce(1)
	if got := awaiting(); len(got) != 1 || got[0] != uid(9100, 2) {
		t.Fatalf("awaiting %v, want study 2", got)
	}
	time.Sleep(5 * time.Millisecond)
	store(1, 2) // a new instance after the announcement
	if got := awaiting(); len(got) != 2 {
		t.Fatalf("awaiting %v after a new instance, want both", got)
	}
}
