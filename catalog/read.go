package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"time"
)

// query runs a read on the read pool.
func (c *Catalog) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	rows, err := c.reader.QueryContext(ctx, c.d.rebind(q), args...)
	return rows, c.d.wrap(err)
}

func (c *Catalog) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return c.reader.QueryRowContext(ctx, c.d.rebind(q), args...)
}

const instanceColumns = `i.sop_instance_uid, i.sop_class_uid, i.instance_number, i.transfer_syntax_uid,
 i.number_of_frames, i."rows", i."columns", i.blob_key, i.size_bytes, i.calling_ae, i.received_at,
 se.series_instance_uid, st.study_instance_uid`

const instanceJoins = ` FROM instances i
 JOIN series se ON se.id = i.series_ref
 JOIN studies st ON st.id = se.study_ref`

type rowScanner interface{ Scan(dest ...any) error }

func scanInstance(r rowScanner) (Instance, error) {
	var in Instance
	var received dbTime
	err := r.Scan(&in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.TransferSyntaxUID,
		&in.NumberOfFrames, &in.Rows, &in.Columns, &in.BlobKey, &in.SizeBytes, &in.CallingAE, &received,
		&in.SeriesInstanceUID, &in.StudyInstanceUID)
	in.ReceivedAt = received.t
	return in, err
}

// GetInstance returns the instance with the given SOP Instance UID, or an
// error wrapping ErrNotFound.
func (c *Catalog) GetInstance(ctx context.Context, sopInstanceUID string) (Instance, error) {
	in, err := scanInstance(c.queryRow(ctx, `SELECT `+instanceColumns+instanceJoins+` WHERE i.sop_instance_uid = ?`, sopInstanceUID))
	if errors.Is(err, sql.ErrNoRows) {
		return Instance{}, fmt.Errorf("%w: instance %s", ErrNotFound, sopInstanceUID)
	}
	if err != nil {
		return Instance{}, fmt.Errorf("catalog: get instance: %w", c.d.wrap(err))
	}
	return in, nil
}

// ListInstances returns the instances of a study, for retrieval (C-MOVE,
// C-GET, WADO-RS), ordered by series number, Series Instance UID, instance
// number and SOP Instance UID. A study that is not in the catalog is
// ErrNotFound.
func (c *Catalog) ListInstances(ctx context.Context, studyInstanceUID string) ([]Instance, error) {
	rows, err := c.query(ctx, `SELECT `+instanceColumns+instanceJoins+` WHERE st.study_instance_uid = ?
 ORDER BY se.series_number, se.series_instance_uid, i.instance_number, i.sop_instance_uid`, studyInstanceUID)
	if err != nil {
		return nil, fmt.Errorf("catalog: list instances: %w", err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: list instances: %w", c.d.wrap(err))
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: list instances: %w", c.d.wrap(err))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: study %s", ErrNotFound, studyInstanceUID)
	}
	return out, nil
}

// GetStudy returns a study with its patient, counts and modalities, or an
// error wrapping ErrNotFound.
func (c *Catalog) GetStudy(ctx context.Context, studyInstanceUID string) (StudyRecord, error) {
	var r StudyRecord
	var modalities string
	var created, updated, last dbTime
	p, st := &r.Patient, &r.Study
	err := c.queryRow(ctx, `SELECT p.patient_id, p.issuer_of_patient_id, p.patient_name, p.patient_birth_date, p.patient_sex,
 st.study_instance_uid, st.study_date, st.study_time, st.accession_number, st.issuer_of_accession_number,
 st.referring_physician_name, st.study_description, st.study_id, st.modalities_in_study,
 st.number_of_study_related_series, st.number_of_study_related_instances, st.created_at, st.updated_at, st.last_received
 FROM studies st JOIN patients p ON p.id = st.patient_ref
 WHERE st.study_instance_uid = ?`, studyInstanceUID).Scan(
		&p.PatientID, &p.IssuerOfPatientID, &p.PatientName, &p.PatientBirthDate, &p.PatientSex,
		&st.StudyInstanceUID, &st.StudyDate, &st.StudyTime, &st.AccessionNumber, &st.IssuerOfAccessionNumber,
		&st.ReferringPhysicianName, &st.StudyDescription, &st.StudyID, &modalities,
		&st.NumberOfStudyRelatedSeries, &st.NumberOfStudyRelatedInstances, &created, &updated, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return StudyRecord{}, fmt.Errorf("%w: study %s", ErrNotFound, studyInstanceUID)
	}
	if err != nil {
		return StudyRecord{}, fmt.Errorf("catalog: get study: %w", c.d.wrap(err))
	}
	st.ModalitiesInStudy = splitMultiValue(modalities)
	st.CreatedAt, st.UpdatedAt, st.LastReceived = created.t, updated.t, last.t
	return r, nil
}

// GetSeries returns a series with its instance count, or an error wrapping
// ErrNotFound.
func (c *Catalog) GetSeries(ctx context.Context, seriesInstanceUID string) (Series, error) {
	var se Series
	err := c.queryRow(ctx, `SELECT series_instance_uid, modality, series_number, series_description, body_part_examined,
 laterality, series_date, series_time, station_name, institution_name, number_of_series_related_instances
 FROM series WHERE series_instance_uid = ?`, seriesInstanceUID).Scan(
		&se.SeriesInstanceUID, &se.Modality, &se.SeriesNumber, &se.SeriesDescription, &se.BodyPartExamined,
		&se.Laterality, &se.SeriesDate, &se.SeriesTime, &se.StationName, &se.InstitutionName,
		&se.NumberOfSeriesRelatedInstances)
	if errors.Is(err, sql.ErrNoRows) {
		return Series{}, fmt.Errorf("%w: series %s", ErrNotFound, seriesInstanceUID)
	}
	if err != nil {
		return Series{}, fmt.Errorf("catalog: get series: %w", c.d.wrap(err))
	}
	return se, nil
}

// CountInstances returns how many instances the catalog holds.
func (c *Catalog) CountInstances(ctx context.Context) (int64, error) {
	var n int64
	if err := c.queryRow(ctx, `SELECT COUNT(*) FROM instances`).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: count instances: %w", c.d.wrap(err))
	}
	return n, nil
}

// BlobRef names one instance's blob, as InstanceBlobKeys yields it.
type BlobRef struct {
	SOPInstanceUID string
	BlobKey        string
	SizeBytes      int64
}

// BlobRefs returns the blob of each of the given instances the catalog
// holds, by SOP Instance UID; unknown UIDs are left out.
func (c *Catalog) BlobRefs(ctx context.Context, sopInstanceUIDs []string) (map[string]BlobRef, error) {
	out := make(map[string]BlobRef, len(sopInstanceUIDs))
	for lo, hi := range ValuesChunks(len(sopInstanceUIDs)) {
		args := make([]any, hi-lo)
		for i, u := range sopInstanceUIDs[lo:hi] {
			args[i] = u
		}
		refs, err := c.blobRefs(ctx, `WHERE sop_instance_uid IN (`+placeholders(hi-lo)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("catalog: blob refs: %w", err)
		}
		for _, b := range refs {
			out[b.SOPInstanceUID] = b
		}
	}
	return out, nil
}

// InstanceBlobKeys yields every instance's blob key in SOP Instance UID
// order, for consistency checks (every row's blob exists, every blob has
// a row). It reads in pages, so it holds no long transaction and rows
// stored while it runs may or may not be seen. Iteration stops at the
// first error, which is yielded with a zero BlobRef.
func (c *Catalog) InstanceBlobKeys(ctx context.Context) iter.Seq2[BlobRef, error] {
	const page = 1000
	return func(yield func(BlobRef, error) bool) {
		after := ""
		for {
			batch, err := c.blobRefs(ctx, `WHERE sop_instance_uid > ? ORDER BY sop_instance_uid LIMIT ?`, after, page)
			if err != nil {
				yield(BlobRef{}, fmt.Errorf("catalog: instance blob keys: %w", err))
				return
			}
			for _, b := range batch {
				if !yield(b, nil) {
					return
				}
			}
			if len(batch) < page {
				return
			}
			after = batch[len(batch)-1].SOPInstanceUID
		}
	}
}

// blobRefs reads the instances' blob references that the clause (WHERE …)
// selects.
func (c *Catalog) blobRefs(ctx context.Context, clause string, args ...any) ([]BlobRef, error) {
	rows, err := c.query(ctx, `SELECT sop_instance_uid, blob_key, size_bytes FROM instances `+clause, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BlobRef
	for rows.Next() {
		var b BlobRef
		if err := rows.Scan(&b.SOPInstanceUID, &b.BlobKey, &b.SizeBytes); err != nil {
			return nil, c.d.wrap(err)
		}
		out = append(out, b)
	}
	return out, c.d.wrap(rows.Err())
}

// Querier runs reads with "?" placeholders; both *Tx and *ReadTx are one,
// so a helper that only reads serves write and read transactions alike.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	Backend() string
}

// ReadTx is a read-only transaction on the read pool: a consistent
// snapshot that never waits for writers (on SQLite, WAL readers run beside
// the single writer).
type ReadTx struct {
	c  *Catalog
	tx *sql.Tx
}

// Backend names the database: "sqlite" or "postgres".
func (r *ReadTx) Backend() string { return r.c.d.name }

// QueryContext runs a query in the transaction.
func (r *ReadTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := r.tx.QueryContext(ctx, r.c.d.rebind(query), args...)
	return rows, r.c.d.wrap(err)
}

// QueryRowContext runs a query expected to return at most one row.
func (r *ReadTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.tx.QueryRowContext(ctx, r.c.d.rebind(query), args...)
}

// InReadTx runs fn in a read-only transaction on the read pool, for
// reads of several statements (admin APIs, searches) that must not queue
// behind writes.
func (c *Catalog) InReadTx(ctx context.Context, fn func(tx *ReadTx) error) error {
	tx, err := c.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("catalog: begin read: %w", c.d.wrap(err))
	}
	defer tx.Rollback()
	return fn(&ReadTx{c: c, tx: tx})
}

var (
	_ Querier = (*Tx)(nil)
	_ Querier = (*ReadTx)(nil)
)

// StudyReceipt is when a study last received an instance.
type StudyReceipt struct {
	StudyInstanceUID string
	LastReceived     time.Time
}

// StudiesAwaitingStable lists the studies that received an instance after
// their last study-stable announcement (or never had one), oldest first:
// the stability timers ingest re-arms when coordination lost them (an
// in-process coordinator across a restart).
func (c *Catalog) StudiesAwaitingStable(ctx context.Context) ([]StudyReceipt, error) {
	rows, err := c.query(ctx, `SELECT study_instance_uid, last_received FROM studies
 WHERE stable_announced IS NULL OR stable_announced < last_received ORDER BY last_received`)
	if err != nil {
		return nil, fmt.Errorf("catalog: studies awaiting stable: %w", err)
	}
	defer rows.Close()
	var out []StudyReceipt
	for rows.Next() {
		var r StudyReceipt
		var t dbTime
		if err := rows.Scan(&r.StudyInstanceUID, &t); err != nil {
			return nil, fmt.Errorf("catalog: studies awaiting stable: %w", err)
		}
		r.LastReceived = t.t
		out = append(out, r)
	}
	return out, c.d.wrap(rows.Err())
}

// MarkStableAnnounced records, in tx, that the study-stable event of a
// study as of lastReceived is committed.
func (tx *Tx) MarkStableAnnounced(ctx context.Context, studyInstanceUID string, lastReceived time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE studies SET stable_announced = ? WHERE study_instance_uid = ?`, tx.Time(lastReceived), studyInstanceUID)
	return err
}

// Scanner is a row being read (*sql.Row, *sql.Rows).
type Scanner interface{ Scan(dest ...any) error }

// Collect runs a query and scans every row with scan.
func Collect[T any](ctx context.Context, q Querier, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
