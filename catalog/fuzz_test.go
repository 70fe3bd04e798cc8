package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/imaginghub/imaginghub/catalog"
)

// FuzzStoreInstanceRoundTrip stores header values as they might arrive
// from the network (after character-set decoding) and checks that what
// the catalog returns is what went in, or that it refuses the record with
// ErrInvalid, never anything else.
func FuzzStoreInstanceRoundTrip(f *testing.F) {
	f.Add("TEST^PATIENT", "P1", "ACC1", "CT", "desc")
	f.Add("Müller^Jürgen=山田^太郎", "", "", "", "")
	f.Add("O'BRIEN^PAT", "'; DROP TABLE patients; --", "?", "$1", `%_\`)
	f.Add("M\xfcller", "P\x00", "A", `CT\PT`, "d")
	f.Add(strings.Repeat("X", 1000), "P2", "ACC2", "MR", "\u2028")
	c, err := catalog.Open(context.Background(), "", catalog.Options{DataDir: f.TempDir(), Logger: testLogger(f)})
	if err != nil {
		f.Fatalf("Open: %v", err)
	}
	f.Cleanup(func() { c.Close() })
	var n int
	f.Fuzz(func(t *testing.T, name, patientID, accession, modality, description string) {
		n++
		ctx := context.Background()
		rec := catalog.InstanceRecord{
			Patient: catalog.Patient{PatientID: patientID, PatientName: name},
			Study:   catalog.Study{StudyInstanceUID: fmt.Sprintf("2.25.555.%d", n), AccessionNumber: accession, StudyDescription: description},
			Series:  catalog.Series{SeriesInstanceUID: fmt.Sprintf("2.25.555.%d.1", n), Modality: modality},
			Instance: catalog.Instance{
				SOPInstanceUID: fmt.Sprintf("2.25.555.%d.1.1", n), BlobKey: fmt.Sprint("k", n),
			},
		}
		_, err := c.StoreInstance(ctx, rec, catalog.KeepFirst)
		valid := true
		for _, s := range []string{name, patientID, accession, modality, description} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				valid = false
			}
		}
		if strings.Contains(modality, `\`) {
			valid = false
		}
		if !valid {
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("StoreInstance of invalid text: err = %v, want ErrInvalid", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("StoreInstance: %v", err)
		}
		got, err := c.GetStudy(ctx, rec.Study.StudyInstanceUID)
		if err != nil {
			t.Fatalf("GetStudy: %v", err)
		}
		if got.Study.AccessionNumber != accession || got.Study.StudyDescription != description || got.Patient.PatientID != patientID {
			t.Errorf("round trip: got %+v", got)
		}
		// A patient seen before keeps its first non-empty name.
		if patientID == "" && got.Patient.PatientName != name {
			t.Errorf("PatientName = %q, want %q", got.Patient.PatientName, name)
		}
		wantMod := []string(nil)
		if modality != "" {
			wantMod = []string{modality}
		}
		if fmt.Sprint(got.Study.ModalitiesInStudy) != fmt.Sprint(wantMod) {
			t.Errorf("ModalitiesInStudy = %q, want %q", got.Study.ModalitiesInStudy, wantMod)
		}
	})
}
