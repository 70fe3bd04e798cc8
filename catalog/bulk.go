package catalog

import (
	"context"
	"fmt"
	"time"
)

// SyntheticStudy is study number i of the synthetic archive that
// BulkLoadSynthetic writes. Benchmarks use it to build queries that match
// (and DICOM files that carry the same attributes, for peers that cannot be
// bulk-loaded). Every patient it names is fictitious.
type SyntheticStudy struct {
	PatientID         string
	PatientName       string
	StudyInstanceUID  string
	StudyDate         string
	StudyTime         string
	AccessionNumber   string
	SeriesInstanceUID string
	SOPInstanceUID    string
}

// SyntheticEpoch is the first StudyDate of the synthetic archive; dates
// spread over SyntheticDays days from it.
var SyntheticEpoch = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)

// SyntheticDays is the span of the synthetic StudyDates (about ten years).
const SyntheticDays = 3650

// syntheticUIDRoot is under the 2.25 root (PS3.5 §B.2), which needs no
// registration.
const syntheticUIDRoot = "2.25.5555"

// SyntheticStudyAt returns study i (0 ≤ i < studies) of a synthetic
// archive of the given size. The archive has studies/2 patients with two
// studies each; surnames are three letters spread evenly over AAA–ZZZ, so
// a two-letter PatientName prefix matches about studies/676 studies and a
// three-letter one about studies/17576. StudyDates step 31 days per study
// modulo SyntheticDays, so any date range matches in proportion to its
// length.
func SyntheticStudyAt(i, studies int) SyntheticStudy {
	patients := max(studies/2, 1)
	p := i % patients
	// A multiplicative scramble spreads neighbouring patients over the
	// alphabet (7919 is prime, so coprime with 26³).
	k := (p * 7919) % 17576
	surname := string([]byte{'A' + byte(k/676), 'A' + byte(k/26%26), 'A' + byte(k%26)})
	uid := fmt.Sprintf("%s.%d", syntheticUIDRoot, i)
	return SyntheticStudy{
		PatientID:         fmt.Sprintf("BENCH-%07d", p),
		PatientName:       fmt.Sprintf("%sSYN^PATIENT^%d", surname, p),
		StudyInstanceUID:  uid,
		StudyDate:         SyntheticEpoch.AddDate(0, 0, (i*31)%SyntheticDays).Format("20060102"),
		StudyTime:         fmt.Sprintf("%02d%02d%02d", i%24, i%60, (i/60)%60),
		AccessionNumber:   fmt.Sprintf("BACC%07d", i),
		SeriesInstanceUID: uid + ".1",
		SOPInstanceUID:    uid + ".1.1",
	}
}

// BulkLoadSynthetic fills an empty catalog with the synthetic archive of
// SyntheticStudyAt: studies studies of one CT series with one instance
// each, written straight into the tables in large transactions, with no
// outbox rows and no files behind the instances' blob keys. It is for
// benchmarks of search, where StoreInstance per instance would take far
// too long for 100,000 studies; retrieving those instances fails.
//
// The catalog must have no patients or studies yet (ErrInvalid otherwise),
// since the rows are written with their ids.
func (c *Catalog) BulkLoadSynthetic(ctx context.Context, studies int) error {
	if studies <= 0 {
		return fmt.Errorf("%w: BulkLoadSynthetic of %d studies", ErrInvalid, studies)
	}
	for _, table := range []string{"patients", "studies"} {
		var n int64
		if err := c.writer.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			return fmt.Errorf("catalog: bulk load: %w", c.d.wrap(err))
		}
		if n > 0 {
			return fmt.Errorf("%w: bulk load into a catalog with %d %s", ErrInvalid, n, table)
		}
	}
	now := c.d.timeArg(time.Now())
	overriding := ""
	if c.d.name == "postgres" {
		// Identity columns are GENERATED ALWAYS; explicit ids need this.
		overriding = " OVERRIDING SYSTEM VALUE"
	}
	patients := max(studies/2, 1)
	insert := func(table, columns string, ncol, rows int, row func(i int) []any) error {
		// 500 rows a statement stays under SQLite's 32,766 bound
		// parameters and PostgreSQL's 65,535 for every table here.
		const batch = 500
		tx, err := c.writer.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("catalog: bulk load %s: %w", table, c.d.wrap(err))
		}
		defer tx.Rollback()
		for start := 0; start < rows; start += batch {
			end := min(start+batch, rows)
			q := fmt.Appendf(nil, "INSERT INTO %s (%s)%s VALUES ", table, columns, overriding)
			args := make([]any, 0, (end-start)*ncol)
			for i := start; i < end; i++ {
				if i > start {
					q = append(q, ',')
				}
				q = append(q, '(')
				for j := range ncol {
					if j > 0 {
						q = append(q, ',')
					}
					q = append(q, '?')
				}
				q = append(q, ')')
				args = append(args, row(i)...)
			}
			if _, err := tx.ExecContext(ctx, c.d.rebind(string(q)), args...); err != nil {
				return fmt.Errorf("catalog: bulk load %s: %w", table, c.d.wrap(err))
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("catalog: bulk load %s: %w", table, c.d.wrap(err))
		}
		return nil
	}
	// Patient p is the patient of studies p and p+patients, so study p
	// gives its attributes.
	if err := insert("patients", "id, patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, created_at, updated_at", 8, patients,
		func(p int) []any {
			s := SyntheticStudyAt(p, studies)
			return []any{p + 1, s.PatientID, "SYNTH", s.PatientName, "19700101", "O", now, now}
		}); err != nil {
		return err
	}
	if err := insert("studies", "id, study_instance_uid, patient_ref, study_date, study_time, accession_number, study_description, modalities_in_study, number_of_study_related_series, number_of_study_related_instances, created_at, updated_at, last_received", 13, studies,
		func(i int) []any {
			s := SyntheticStudyAt(i, studies)
			return []any{i + 1, s.StudyInstanceUID, i%patients + 1, s.StudyDate, s.StudyTime, s.AccessionNumber,
				"BENCH STUDY", "CT", 1, 1, now, now, now}
		}); err != nil {
		return err
	}
	if err := insert("series", "id, series_instance_uid, study_ref, modality, series_number, series_description, series_date, series_time, number_of_series_related_instances, created_at, updated_at", 11, studies,
		func(i int) []any {
			s := SyntheticStudyAt(i, studies)
			return []any{i + 1, s.SeriesInstanceUID, i + 1, "CT", 1, "BENCH SERIES", s.StudyDate, s.StudyTime, 1, now, now}
		}); err != nil {
		return err
	}
	if err := insert("instances", "id, sop_instance_uid, series_ref, sop_class_uid, instance_number, transfer_syntax_uid, number_of_frames, \"rows\", \"columns\", blob_key, size_bytes, received_at", 12, studies,
		func(i int) []any {
			s := SyntheticStudyAt(i, studies)
			// CT Image Storage (PS3.4 §B.5), Implicit VR Little Endian.
			return []any{i + 1, s.SOPInstanceUID, i + 1, "1.2.840.10008.5.1.4.1.1.2", 1, "1.2.840.10008.1.2", 1, 64, 64,
				"bulk/" + s.SOPInstanceUID, 8192, now}
		}); err != nil {
		return err
	}
	if c.d.name == "postgres" {
		// Rows written with their ids leave the identity sequences
		// behind; move them past the ids used so that StoreInstance
		// can add rows afterwards.
		for _, table := range []string{"patients", "studies", "series", "instances"} {
			q := fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT max(id) FROM %s))", table, table)
			if _, err := c.writer.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("catalog: bulk load %s: %w", table, c.d.wrap(err))
			}
		}
		// Production PostgreSQL has statistics from autovacuum; give the
		// planner the same now rather than waiting for it.
		if _, err := c.writer.ExecContext(ctx, "ANALYZE"); err != nil {
			return fmt.Errorf("catalog: bulk load: analyze: %w", c.d.wrap(err))
		}
	}
	return nil
}
