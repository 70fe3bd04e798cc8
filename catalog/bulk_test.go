package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestBulkLoadSynthetic loads a small synthetic archive on each backend and
// checks that searches find exactly the studies SyntheticStudyAt describes,
// that the study rows hang together with their series and instances, and
// that StoreInstance still works afterwards (the PostgreSQL identity
// sequences were moved past the loaded ids).
func TestBulkLoadSynthetic(t *testing.T) {
	const studies = 2000
	for _, be := range searchBackends {
		t.Run(be.name, func(t *testing.T) {
			c := be.open(t)
			ctx := context.Background()
			if err := c.BulkLoadSynthetic(ctx, studies); err != nil {
				t.Fatalf("BulkLoadSynthetic: %v", err)
			}
			count := func(match func(SyntheticStudy) bool) int {
				n := 0
				for i := range studies {
					if match(SyntheticStudyAt(i, studies)) {
						n++
					}
				}
				return n
			}
			prefix2 := SyntheticStudyAt(17, studies).PatientName[:2]
			prefix3 := SyntheticStudyAt(1234, studies).PatientName[:3]
			tests := []struct {
				name    string
				filters map[string]string
				want    int
			}{
				{"PatientName two-letter prefix", map[string]string{"PatientName": prefix2 + "*"},
					count(func(s SyntheticStudy) bool { return strings.HasPrefix(s.PatientName, prefix2) })},
				{"PatientName three-letter prefix", map[string]string{"PatientName": prefix3 + "*"},
					count(func(s SyntheticStudy) bool { return strings.HasPrefix(s.PatientName, prefix3) })},
				{"StudyDate range", map[string]string{"StudyDate": "20180101-20180331"},
					count(func(s SyntheticStudy) bool { return s.StudyDate >= "20180101" && s.StudyDate <= "20180331" })},
				{"AccessionNumber", map[string]string{"AccessionNumber": SyntheticStudyAt(1999, studies).AccessionNumber}, 1},
				{"universal", nil, studies},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if tt.want == 0 {
						t.Fatalf("test data: %v should match something", tt.filters)
					}
					res, err := c.Search(ctx, Query{Level: StudyLevel, Filters: tt.filters})
					if err != nil {
						t.Fatalf("Search: %v", err)
					}
					if len(res) != tt.want {
						t.Fatalf("Search(%v) = %d studies, want %d", tt.filters, len(res), tt.want)
					}
					for _, r := range res {
						var i int
						if _, err := fmt.Sscanf(r.Study.StudyInstanceUID, syntheticUIDRoot+".%d", &i); err != nil {
							t.Fatalf("StudyInstanceUID %q: %v", r.Study.StudyInstanceUID, err)
						}
						want := SyntheticStudyAt(i, studies)
						if r.Patient.PatientName != want.PatientName || r.Study.StudyDate != want.StudyDate ||
							r.Study.AccessionNumber != want.AccessionNumber || r.Patient.PatientID != want.PatientID {
							t.Fatalf("study %d: got %+v %+v, want %+v", i, r.Patient, r.Study, want)
						}
					}
				})
			}

			inst, err := c.Search(ctx, Query{Level: InstanceLevel, Filters: map[string]string{
				"StudyInstanceUID": SyntheticStudyAt(42, studies).StudyInstanceUID}})
			if err != nil || len(inst) != 1 || inst[0].Instance.SOPInstanceUID != SyntheticStudyAt(42, studies).SOPInstanceUID {
				t.Fatalf("instances of study 42 = %+v, %v; want its one instance", inst, err)
			}

			rec := InstanceRecord{
				Patient: Patient{PatientID: "AFTER-BULK", PatientName: "AFTER^BULK"},
				Study:   Study{StudyInstanceUID: "2.25.6666.1", StudyDate: "20250101"},
				Series:  Series{SeriesInstanceUID: "2.25.6666.1.1", Modality: "CT"},
				Instance: Instance{SOPInstanceUID: "2.25.6666.1.1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
					BlobKey: "after/1", SizeBytes: 1},
			}
			ev := OutboxMessage{EventID: "after-bulk", Subject: "ih.dicom.instance.stored", Payload: []byte("{}")}
			if _, err := c.StoreInstance(ctx, rec, KeepFirst, ev); err != nil {
				t.Fatalf("StoreInstance after bulk load: %v", err)
			}

			if err := c.BulkLoadSynthetic(ctx, 10); !errors.Is(err, ErrInvalid) {
				t.Fatalf("second BulkLoadSynthetic = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestBulkLoadSyntheticInvalid(t *testing.T) {
	c := openSearchCatalog(t, "", Options{DataDir: t.TempDir()})
	for _, n := range []int{0, -1} {
		if err := c.BulkLoadSynthetic(context.Background(), n); !errors.Is(err, ErrInvalid) {
			t.Errorf("BulkLoadSynthetic(%d) = %v, want ErrInvalid", n, err)
		}
	}
}
