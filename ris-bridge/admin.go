package risbridge

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/imaginghub/imaginghub/internal/rest"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/hl7intake"
)

var errNotFound = errors.New("ris-bridge: order not found")

const orderColumns = `id, order_control, status, placer_order_number, filler_order_number, accession_number, requested_procedure_id,
	study_instance_uid, requested_procedure_code, requested_procedure_text, requested_procedure_coding_scheme, priority,
	ordering_provider, referring_provider, reason, patient_id, issuer_of_patient_id, patient_name, patient_birth_date,
	patient_sex, account_number, account_assigning_authority, visit_number, created_at, updated_at`

func scanOrder(r catalog.Scanner) (Order, error) {
	var o Order
	var created, updated any
	err := r.Scan(&o.ID, &o.OrderControl, &o.Status, &o.PlacerOrderNumber, &o.FillerOrderNumber, &o.AccessionNumber,
		&o.RequestedProcedureID, &o.StudyInstanceUID, &o.RequestedProcedure.Code, &o.RequestedProcedure.Text,
		&o.RequestedProcedure.CodingScheme, &o.Priority, &o.OrderingProvider, &o.ReferringProvider, &o.Reason,
		&o.Patient.PatientID, &o.Patient.IssuerOfPatientID, &o.Patient.PatientName, &o.Patient.PatientBirthDate,
		&o.Patient.PatientSex, &o.Patient.AccountNumber, &o.Patient.AccountAssigningAuthority, &o.VisitNumber, &created, &updated)
	o.CreatedAt, o.UpdatedAt = hl7intake.ScanTime(created), hl7intake.ScanTime(updated)
	return o, err
}

func loadSteps(ctx context.Context, tx catalog.Querier, o *Order) error {
	rows, err := tx.QueryContext(ctx, `SELECT scheduled_procedure_step_id, modality, scheduled_station_ae_title, scheduled_station_name,
		scheduled_start, protocol_code, protocol_text, protocol_coding_scheme, status FROM order_steps WHERE order_ref = ? ORDER BY step_index`, o.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	o.Steps = []Step{}
	for rows.Next() {
		var s Step
		if err := rows.Scan(&s.ScheduledProcedureStepID, &s.Modality, &s.ScheduledStationAETitle, &s.ScheduledStationName,
			&s.ScheduledStart, &s.Protocol.Code, &s.Protocol.Text, &s.Protocol.CodingScheme, &s.Status); err != nil {
			return err
		}
		o.Steps = append(o.Steps, s)
	}
	return rows.Err()
}

func loadOrder(ctx context.Context, tx catalog.Querier, id int64) (Order, error) {
	o, err := scanOrder(tx.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, errNotFound
	}
	if err != nil {
		return Order{}, err
	}
	return o, loadSteps(ctx, tx, &o)
}

// OrderDetail is GET /api/orders/{id}: the order with its reports.
type OrderDetail struct {
	Order
	Reports []Report `json:"reports"`
}

// listOrders serves GET /api/orders: ?accession=, ?patient= (PID-3.1),
// ?status= (ORC-5), limit (1–1000, default 100), offset.
func (b *Bridge) listOrders(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	limit, offset := 100, 0
	var err error
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			rest.Error(w, http.StatusBadRequest, "limit must be 1 to 1000")
			return
		}
	}
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			rest.Error(w, http.StatusBadRequest, "offset must be a non-negative integer")
			return
		}
	}
	where := []string{"1 = 1"}
	var args []any
	for param, col := range map[string]string{"accession": "accession_number", "patient": "patient_id", "status": "status"} {
		if v := q.Get(param); v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	args = append(args, limit, offset)
	out := []Order{}
	err = b.RT.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		var err error
		out, err = catalog.Collect(ctx, tx, scanOrder, `SELECT `+orderColumns+` FROM orders WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ? OFFSET ?`, args...)
		if err != nil {
			return err
		}
		for i := range out {
			if err := loadSteps(ctx, tx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Log.Error("list orders", "err", err)
		rest.Error(w, http.StatusServiceUnavailable, "catalog unavailable")
		return
	}
	rest.JSON(w, http.StatusOK, out)
}

// getOrder serves GET /api/orders/{id}.
func (b *Bridge) getOrder(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		rest.Error(w, http.StatusBadRequest, "order id must be a positive integer")
		return
	}
	var d OrderDetail
	err = b.RT.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		o, err := loadOrder(ctx, tx, id)
		if err != nil {
			return err
		}
		d = OrderDetail{Order: o, Reports: []Report{}}
		rows, err := tx.QueryContext(ctx, `SELECT id, placer_order_number, filler_order_number, accession_number, result_status, report_text,
			observation_time, superseded_by FROM reports WHERE order_ref = ? ORDER BY id`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var rp Report
			var sup sql.NullInt64
			if err := rows.Scan(&rp.ID, &rp.PlacerOrderNumber, &rp.FillerOrderNumber, &rp.AccessionNumber, &rp.ResultStatus, &rp.Text, &rp.ObservationTime, &sup); err != nil {
				return err
			}
			rp.OrderID = id
			rp.SupersededBy = sup.Int64
			rp.Patient = o.Patient
			d.Reports = append(d.Reports, rp)
		}
		return rows.Err()
	})
	switch {
	case errors.Is(err, errNotFound):
		rest.Error(w, http.StatusNotFound, "order not found")
	case err != nil:
		b.Log.Error("get order", "err", err)
		rest.Error(w, http.StatusServiceUnavailable, "catalog unavailable")
	default:
		rest.JSON(w, http.StatusOK, d)
	}
}
