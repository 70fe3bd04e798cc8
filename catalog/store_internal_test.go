package catalog

import (
	"context"
	"fmt"
	"testing"
)

// TestStoreInstanceWALPages: an instance of a series the catalog already
// holds, with nothing to fill in, rewrites only the pages its rows and
// counts live on. Each page is a WAL frame its commit writes and fsyncs;
// rewriting unchanged patient, study and series rows (and every index on a
// column an UPDATE assigns) cost 17.6 frames per instance.
func TestStoreInstanceWALPages(t *testing.T) {
	c := testSQLite(t)
	ctx := context.Background()
	rec := func(n int) InstanceRecord {
		return InstanceRecord{
			Patient: Patient{PatientID: "P1", PatientName: "DOE^JANE", PatientBirthDate: "19700101", PatientSex: "F"},
			Study:   Study{StudyInstanceUID: "2.25.1", StudyDate: "20240101", StudyTime: "101010", AccessionNumber: "A1", StudyDescription: "CT HEAD", StudyID: "1"},
			Series:  Series{SeriesInstanceUID: "2.25.1.1", Modality: "CT", SeriesNumber: 1, SeriesDescription: "AX", BodyPartExamined: "HEAD", StationName: "CT1", InstitutionName: "GEN"},
			Instance: Instance{SOPInstanceUID: fmt.Sprintf("2.25.1.1.%d", n), SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
				TransferSyntaxUID: "1.2.840.10008.1.2", BlobKey: fmt.Sprintf("k/%d", n), SizeBytes: 524288, InstanceNumber: n},
		}
	}
	ev := func(n int) OutboxMessage {
		return OutboxMessage{EventID: fmt.Sprint("e", n), Subject: "ih.dicom.instance.stored", Payload: make([]byte, 900)}
	}
	if _, err := c.StoreInstance(ctx, rec(0), KeepFirst, ev(0)); err != nil {
		t.Fatal(err)
	}
	// The writer is one connection: an empty WAL, no automatic
	// checkpoints, and the checkpoint afterwards reports the frames.
	var busy, frames, done int
	if err := c.writer.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &done); err != nil {
		t.Fatal(err)
	}
	if _, err := c.writer.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := 1; i <= n; i++ {
		if _, err := c.StoreInstance(ctx, rec(i), KeepFirst, ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.writer.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err != nil {
		t.Fatal(err)
	}
	per := float64(frames) / n
	t.Logf("WAL frames per instance: %.1f", per)
	if per > 12 {
		t.Errorf("%.1f WAL frames per instance, want at most 12", per)
	}
}
