package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// StoreInstance files one received instance in a single transaction: it
// inserts or updates the patient (matched on PatientID and
// IssuerOfPatientID), the study and the series, inserts the instance,
// updates NumberOfSeriesRelatedInstances, NumberOfStudyRelatedSeries,
// NumberOfStudyRelatedInstances and ModalitiesInStudy, and appends the
// outbox messages. When it returns nil the change is durable, so the
// caller may answer C-STORE with Success (PS3.4 §B.2.3).
//
// When the SOP Instance UID is already stored, policy decides (see
// DuplicatePolicy); outbox messages are written only if something changed.
//
// Concurrent calls for the same study are serialized on the study row, so
// counts are exact and the first insert of a patient, study or series by
// several associations at once succeeds for all of them.
func (c *Catalog) StoreInstance(ctx context.Context, rec InstanceRecord, policy DuplicatePolicy, outbox ...OutboxMessage) (StoreResult, error) {
	return c.StoreInstanceWhen(ctx, rec, policy, nil, outbox...)
}

// StoreInstanceWhen is StoreInstance with a condition for the commit: ready
// is called inside the transaction after the rows are written and before
// they commit, and an error from it rolls everything back. Ingest passes a
// function that waits for the instance's file to be durable, so that the
// file's fsync and the catalog's work overlap while a row still never
// commits before its file. ready may be called more than once (see InTx).
func (c *Catalog) StoreInstanceWhen(ctx context.Context, rec InstanceRecord, policy DuplicatePolicy, ready func() error, outbox ...OutboxMessage) (StoreResult, error) {
	return c.storeInstance(ctx, rec, policy, txOpts{ready: ready}, outbox)
}

// StoreInstanceJournaled is StoreInstanceWhen for an instance the caller
// keeps recoverable elsewhere (the intake journal): its commit does not
// wait for the disk (see inTxLazy) and becomes durable with the next
// durable commit, such as SyncIntake's. Until then a power loss may take
// it back; the caller replays it from its copy.
func (c *Catalog) StoreInstanceJournaled(ctx context.Context, rec InstanceRecord, policy DuplicatePolicy, ready func() error, outbox ...OutboxMessage) (StoreResult, error) {
	return c.storeInstance(ctx, rec, policy, txOpts{ready: ready, lazy: true}, outbox)
}

// SyncIntake records that the intake journal named journal (its host and
// path) has been checkpointed up to seq, with a durable commit: it returns once that row
// and every commit before it, lazy ones included, are on disk.
func (c *Catalog) SyncIntake(ctx context.Context, journal string, seq uint64) error {
	err := c.InTx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO intake_checkpoints (journal, seq, checkpointed_at) VALUES (?, ?, ?)
 ON CONFLICT (journal) DO UPDATE SET seq = excluded.seq, checkpointed_at = excluded.checkpointed_at`,
			journal, int64(seq), tx.Time(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: intake checkpoint: %w", err)
	}
	return nil
}

func (c *Catalog) storeInstance(ctx context.Context, rec InstanceRecord, policy DuplicatePolicy, o txOpts, outbox []OutboxMessage) (StoreResult, error) {
	if err := validateRecord(&rec); err != nil {
		return StoreResult{}, err
	}
	if err := validateOutbox(outbox); err != nil {
		return StoreResult{}, err
	}
	if policy < KeepFirst || policy > Reject {
		return StoreResult{}, fmt.Errorf("%w: DuplicatePolicy %d", ErrInvalid, policy)
	}
	var res StoreResult
	err := c.inTx(ctx, o, func(tx *Tx) error {
		res = StoreResult{}
		r, err := tx.storeInstance(ctx, &rec, policy)
		if err != nil {
			return err
		}
		res = r
		if res.Duplicate && policy != Replace {
			// Roll back the patient and study updates made on the way:
			// a kept duplicate changes nothing.
			return errKeepDuplicate
		}
		tx.AppendOutbox(outbox...)
		return nil
	})
	switch {
	case errors.Is(err, errKeepDuplicate):
		if policy == Reject {
			return res, fmt.Errorf("%w: %s", ErrDuplicate, rec.Instance.SOPInstanceUID)
		}
		return res, nil
	case err != nil:
		return StoreResult{}, fmt.Errorf("catalog: store instance: %w", err)
	}
	return res, nil
}

// errKeepDuplicate rolls back the transaction of a duplicate that is kept.
var errKeepDuplicate = errors.New("duplicate kept")

func validateRecord(rec *InstanceRecord) error {
	var missing []string
	if rec.Study.StudyInstanceUID == "" {
		missing = append(missing, "StudyInstanceUID")
	}
	if rec.Series.SeriesInstanceUID == "" {
		missing = append(missing, "SeriesInstanceUID")
	}
	if rec.Instance.SOPInstanceUID == "" {
		missing = append(missing, "SOPInstanceUID")
	}
	if rec.Instance.BlobKey == "" {
		missing = append(missing, "BlobKey")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: instance record without %s", ErrInvalid, strings.Join(missing, ", "))
	}
	// Both backends must store the same strings; PostgreSQL text holds
	// neither NUL nor invalid UTF-8. Callers convert values from their
	// Specific Character Set (PS3.5 §6.1) to UTF-8 before filing them.
	p, st, se, in := &rec.Patient, &rec.Study, &rec.Series, &rec.Instance
	for _, f := range []struct{ name, v string }{
		{"PatientID", p.PatientID}, {"IssuerOfPatientID", p.IssuerOfPatientID}, {"PatientName", p.PatientName},
		{"PatientBirthDate", p.PatientBirthDate}, {"PatientSex", p.PatientSex},
		{"StudyInstanceUID", st.StudyInstanceUID}, {"StudyDate", st.StudyDate}, {"StudyTime", st.StudyTime},
		{"AccessionNumber", st.AccessionNumber}, {"IssuerOfAccessionNumber", st.IssuerOfAccessionNumber},
		{"ReferringPhysicianName", st.ReferringPhysicianName}, {"StudyDescription", st.StudyDescription},
		{"StudyID", st.StudyID},
		{"SeriesInstanceUID", se.SeriesInstanceUID}, {"Modality", se.Modality},
		{"SeriesDescription", se.SeriesDescription}, {"BodyPartExamined", se.BodyPartExamined},
		{"Laterality", se.Laterality}, {"SeriesDate", se.SeriesDate}, {"SeriesTime", se.SeriesTime},
		{"StationName", se.StationName}, {"InstitutionName", se.InstitutionName},
		{"SOPInstanceUID", in.SOPInstanceUID}, {"SOPClassUID", in.SOPClassUID},
		{"TransferSyntaxUID", in.TransferSyntaxUID}, {"BlobKey", in.BlobKey}, {"CallingAE", in.CallingAE},
	} {
		if !utf8.ValidString(f.v) || strings.IndexByte(f.v, 0) >= 0 {
			return fmt.Errorf("%w: %s is not UTF-8 text without NUL", ErrInvalid, f.name)
		}
	}
	if strings.Contains(se.Modality, `\`) {
		return fmt.Errorf("%w: Modality holds more than one value", ErrInvalid)
	}
	return nil
}

// The upserts below leave an existing row as it is but for a no-op
// assignment of its unindexed updated_at (study: its last_received), which
// takes the row lock on PostgreSQL and lets RETURNING hand back what is
// stored. fill then writes only the attributes first received empty that
// this instance carries: a value once stored is not overwritten by a
// different one (reconciliation, not ingest, corrects demographics), and a
// row that needs nothing costs no index writes (SQLite rewrites every index
// on a column an UPDATE assigns, whatever the value).

var (
	patientFill = []string{"patient_name", "patient_birth_date", "patient_sex"}
	studyFill   = []string{"study_date", "study_time", "accession_number", "issuer_of_accession_number",
		"referring_physician_name", "study_description", "study_id"}
	seriesFill = []string{"modality", "series_description", "body_part_examined", "laterality",
		"series_date", "series_time", "station_name", "institution_name"}

	upsertPatientSQL = `INSERT INTO patients
 (patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, created_at, updated_at)
 VALUES (?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (patient_id, issuer_of_patient_id) WHERE patient_id <> '' DO UPDATE SET updated_at = patients.updated_at
 RETURNING id, ` + strings.Join(patientFill, ", ")

	insertAnonPatientSQL = `INSERT INTO patients
 (patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, created_at, updated_at)
 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`

	// The study and series upserts count the instance being stored
	// (NumberOfStudyRelatedInstances, NumberOfSeriesRelatedInstances) and
	// return the new count: 1 for a study or series that had none. The
	// study's DO UPDATE always writes, so the statement takes the study's
	// row lock even when the study exists; every later step of the
	// transaction runs while holding it. A duplicate kept rolls the counts
	// back with the rest; a duplicate replacing its instance takes them
	// back (uncount).
	upsertStudySQL = `INSERT INTO studies
 (study_instance_uid, patient_ref, study_date, study_time, accession_number, issuer_of_accession_number,
  referring_physician_name, study_description, study_id, created_at, updated_at, last_received,
  number_of_study_related_instances)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
 ON CONFLICT (study_instance_uid) DO UPDATE SET last_received = excluded.last_received,
  number_of_study_related_instances = studies.number_of_study_related_instances + 1, updated_at = excluded.updated_at
 RETURNING id, patient_ref, number_of_study_related_instances, ` + strings.Join(studyFill, ", ")

	upsertSeriesSQL = `INSERT INTO series
 (series_instance_uid, study_ref, modality, series_number, series_description, body_part_examined,
  laterality, series_date, series_time, station_name, institution_name, created_at, updated_at,
  number_of_series_related_instances)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
 ON CONFLICT (series_instance_uid) DO UPDATE SET
  number_of_series_related_instances = series.number_of_series_related_instances + 1, updated_at = excluded.updated_at
 RETURNING id, study_ref, number_of_series_related_instances, series_number, ` + strings.Join(seriesFill, ", ")
)

// assignment is one "col = value" of an UPDATE.
type assignment struct {
	col string
	v   any
}

// fill sets the columns of row id whose stored value is empty to the
// incoming one, where that is not empty, plus the assignments the caller
// decided on. It writes nothing when there is nothing to set.
func (tx *Tx) fill(ctx context.Context, table string, id int64, cols, stored, incoming []string, extra ...assignment) error {
	var set []string
	var args []any
	for i, col := range cols {
		if stored[i] == "" && incoming[i] != "" {
			set = append(set, col+" = ?")
			args = append(args, incoming[i])
		}
	}
	for _, a := range extra {
		set = append(set, a.col+" = ?")
		args = append(args, a.v)
	}
	if len(set) == 0 {
		return nil
	}
	args = append(args, id)
	if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET `+strings.Join(set, ", ")+` WHERE id = ?`, args...); err != nil {
		return fmt.Errorf("fill %s: %w", table, tx.c.d.wrap(err))
	}
	return nil
}

// scanTargets returns pointers to vs for Scan.
func scanTargets(vs []string) []any {
	out := make([]any, len(vs))
	for i := range vs {
		out[i] = &vs[i]
	}
	return out
}

func (tx *Tx) storeInstance(ctx context.Context, rec *InstanceRecord, policy DuplicatePolicy) (StoreResult, error) {
	var res StoreResult
	now := time.Now()
	nowArg := tx.Time(now)
	received := rec.Instance.ReceivedAt
	if received.IsZero() {
		received = now
	}
	p, st, se, in := &rec.Patient, &rec.Study, &rec.Series, &rec.Instance

	// Patient. An empty Patient ID matches no one: such a study gets a
	// patient row of its own (or keeps the one it has).
	var patientRef int64
	if p.PatientID != "" {
		stored := make([]string, len(patientFill))
		err := tx.QueryRowContext(ctx, upsertPatientSQL, p.PatientID, p.IssuerOfPatientID, p.PatientName,
			p.PatientBirthDate, p.PatientSex, nowArg, nowArg).Scan(append([]any{&patientRef}, scanTargets(stored)...)...)
		if err != nil {
			return res, fmt.Errorf("upsert patient: %w", tx.c.d.wrap(err))
		}
		incoming := []string{p.PatientName, p.PatientBirthDate, p.PatientSex}
		if err := tx.fill(ctx, "patients", patientRef, patientFill, stored, incoming); err != nil {
			return res, err
		}
	} else {
		err := tx.QueryRowContext(ctx, `SELECT patient_ref FROM studies WHERE study_instance_uid = ?`,
			st.StudyInstanceUID).Scan(&patientRef)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRowContext(ctx, insertAnonPatientSQL, "", "", p.PatientName,
				p.PatientBirthDate, p.PatientSex, nowArg, nowArg).Scan(&patientRef)
		}
		if err != nil {
			return res, fmt.Errorf("patient without Patient ID: %w", tx.c.d.wrap(err))
		}
	}

	// Study (takes the study row lock).
	var studyRef, studyPatientRef int64
	var studyInstances int
	studyStored := make([]string, len(studyFill))
	err := tx.QueryRowContext(ctx, upsertStudySQL, st.StudyInstanceUID, patientRef, st.StudyDate, st.StudyTime,
		st.AccessionNumber, st.IssuerOfAccessionNumber, st.ReferringPhysicianName, st.StudyDescription,
		st.StudyID, nowArg, nowArg, tx.Time(received)).Scan(append([]any{&studyRef, &studyPatientRef, &studyInstances}, scanTargets(studyStored)...)...)
	if err != nil {
		return res, fmt.Errorf("upsert study: %w", tx.c.d.wrap(err))
	}
	if err := tx.fill(ctx, "studies", studyRef, studyFill, studyStored, []string{st.StudyDate, st.StudyTime,
		st.AccessionNumber, st.IssuerOfAccessionNumber, st.ReferringPhysicianName, st.StudyDescription, st.StudyID}); err != nil {
		return res, err
	}
	if studyPatientRef != patientRef && p.PatientID == "" {
		// Another transaction created the study first with its own
		// anonymous patient; drop ours.
		if _, err := tx.ExecContext(ctx, `DELETE FROM patients WHERE id = ?`, patientRef); err != nil {
			return res, fmt.Errorf("drop unused patient: %w", err)
		}
	}
	res.NewStudy = studyInstances == 1

	// Series.
	var seriesRef, seriesStudyRef int64
	var seriesInstances, seriesNumber int
	seriesStored := make([]string, len(seriesFill))
	err = tx.QueryRowContext(ctx, upsertSeriesSQL, se.SeriesInstanceUID, studyRef, se.Modality, se.SeriesNumber,
		se.SeriesDescription, se.BodyPartExamined, se.Laterality, se.SeriesDate, se.SeriesTime, se.StationName,
		se.InstitutionName, nowArg, nowArg).Scan(append([]any{&seriesRef, &seriesStudyRef, &seriesInstances, &seriesNumber}, scanTargets(seriesStored)...)...)
	if err != nil {
		return res, fmt.Errorf("upsert series: %w", tx.c.d.wrap(err))
	}
	if seriesStudyRef != studyRef {
		// A Series Instance UID belongs to one study (PS3.3 §C.7.3.1);
		// filing it under a second one would corrupt both.
		return res, fmt.Errorf("%w: series %s already filed under another study", ErrConflict, se.SeriesInstanceUID)
	}
	var number []assignment
	if seriesNumber == 0 && se.SeriesNumber != 0 {
		number = append(number, assignment{"series_number", se.SeriesNumber})
	}
	if err := tx.fill(ctx, "series", seriesRef, seriesFill, seriesStored, []string{se.Modality, se.SeriesDescription,
		se.BodyPartExamined, se.Laterality, se.SeriesDate, se.SeriesTime, se.StationName, se.InstitutionName}, number...); err != nil {
		return res, err
	}
	res.NewSeries = seriesInstances == 1

	// Instance. ON CONFLICT DO NOTHING: a concurrent first store of the
	// same SOP Instance UID in another study must not fail with a
	// unique violation.
	var instanceRef int64
	err = tx.QueryRowContext(ctx, `INSERT INTO instances
 (sop_instance_uid, series_ref, sop_class_uid, instance_number, transfer_syntax_uid, number_of_frames,
  "rows", "columns", blob_key, size_bytes, calling_ae, received_at)
 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
 ON CONFLICT (sop_instance_uid) DO NOTHING
 RETURNING id`,
		in.SOPInstanceUID, seriesRef, in.SOPClassUID, in.InstanceNumber, in.TransferSyntaxUID, in.NumberOfFrames,
		in.Rows, in.Columns, in.BlobKey, in.SizeBytes, in.CallingAE, tx.Time(received)).Scan(&instanceRef)
	if errors.Is(err, sql.ErrNoRows) {
		return tx.duplicate(ctx, rec, policy, studyRef, seriesRef, received, nowArg)
	}
	if err != nil {
		return res, fmt.Errorf("insert instance: %w", tx.c.d.wrap(err))
	}
	if !res.NewSeries {
		// The study's series and their modalities are as they were.
		return res, nil
	}
	// The study row lock is held, so the series rows read here are every
	// committed one of the study and no concurrent one.
	if err := tx.refreshStudy(ctx, studyRef, 0, nowArg); err != nil {
		return res, err
	}
	return res, nil
}

// refreshStudy adds delta to NumberOfStudyRelatedInstances and recomputes
// NumberOfStudyRelatedSeries and ModalitiesInStudy from the series rows.
func (tx *Tx) refreshStudy(ctx context.Context, studyRef int64, delta int, nowArg any) error {
	rows, err := tx.QueryContext(ctx, `SELECT modality FROM series WHERE study_ref = ? AND number_of_series_related_instances > 0`, studyRef)
	if err != nil {
		return fmt.Errorf("read study series: %w", err)
	}
	var modalities []string
	nSeries := 0
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return fmt.Errorf("read study series: %w", tx.c.d.wrap(err))
		}
		nSeries++
		if m != "" {
			modalities = append(modalities, m)
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read study series: %w", tx.c.d.wrap(err))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read study series: %w", tx.c.d.wrap(err))
	}
	slices.Sort(modalities)
	modalities = slices.Compact(modalities)
	_, err = tx.ExecContext(ctx, `UPDATE studies SET number_of_study_related_instances = number_of_study_related_instances + ?,
 number_of_study_related_series = ?, modalities_in_study = ?, updated_at = ? WHERE id = ?`,
		delta, nSeries, joinMultiValue(modalities), nowArg, studyRef)
	if err != nil {
		return fmt.Errorf("update study counts: %w", err)
	}
	return nil
}

// joinMultiValue joins values with the DICOM value delimiter "\"
// (PS3.5 §6.4), as ModalitiesInStudy (CS, VM 1-n) is encoded.
func joinMultiValue(vs []string) string { return strings.Join(vs, `\`) }

func splitMultiValue(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, `\`)
}

// duplicate handles a SOP Instance UID that is already stored. The study
// and series upserts before it counted the instance; a duplicate kept is
// rolled back whole by the caller, one replacing its instance takes the
// counts back here.
func (tx *Tx) duplicate(ctx context.Context, rec *InstanceRecord, policy DuplicatePolicy, studyRef, seriesRef int64, received time.Time, nowArg any) (StoreResult, error) {
	res := StoreResult{Duplicate: true}
	var oldSeriesRef int64
	err := tx.QueryRowContext(ctx, `SELECT series_ref, blob_key FROM instances WHERE sop_instance_uid = ?`+tx.c.d.forUpdate,
		rec.Instance.SOPInstanceUID).Scan(&oldSeriesRef, &res.ExistingBlobKey)
	if err != nil {
		return res, fmt.Errorf("read duplicate instance: %w", tx.c.d.wrap(err))
	}
	if policy != Replace {
		if res.ExistingBlobKey != rec.Instance.BlobKey {
			res.UnusedBlobKey = rec.Instance.BlobKey
		}
		return res, nil
	}
	if oldSeriesRef != seriesRef {
		return res, fmt.Errorf("%w: %s", ErrConflict, rec.Instance.SOPInstanceUID)
	}
	in := &rec.Instance
	_, err = tx.ExecContext(ctx, `UPDATE instances SET sop_class_uid = ?, instance_number = ?, transfer_syntax_uid = ?,
 number_of_frames = ?, "rows" = ?, "columns" = ?, blob_key = ?, size_bytes = ?, calling_ae = ?, received_at = ?
 WHERE sop_instance_uid = ?`,
		in.SOPClassUID, in.InstanceNumber, in.TransferSyntaxUID, in.NumberOfFrames, in.Rows, in.Columns,
		in.BlobKey, in.SizeBytes, in.CallingAE, tx.Time(received), in.SOPInstanceUID)
	if err != nil {
		return res, fmt.Errorf("replace instance: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE series SET number_of_series_related_instances = number_of_series_related_instances - 1,
 updated_at = ? WHERE id = ?`, nowArg, seriesRef); err != nil {
		return res, fmt.Errorf("uncount replaced instance: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE studies SET number_of_study_related_instances = number_of_study_related_instances - 1,
 updated_at = ? WHERE id = ?`, nowArg, studyRef); err != nil {
		return res, fmt.Errorf("uncount replaced instance: %w", err)
	}
	if res.ExistingBlobKey != in.BlobKey {
		res.UnusedBlobKey = res.ExistingBlobKey
	}
	return res, nil
}
