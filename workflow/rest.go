package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/imaginghub/imaginghub/catalog"
)

func (w *Workflow) routes() {
	mux := w.rt.Server.Mux
	mux.HandleFunc("GET /api/reconciliation/unmatched", w.getUnmatched)
	mux.HandleFunc("POST /api/reconciliation/unmatched/{study}/link", w.postLink)
	mux.HandleFunc("GET /api/reports/worklist", w.getReadingWorklist)
	mux.HandleFunc("GET /api/studies/{study}/timeline", w.getTimeline)
}

func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(v)
}

func writeError(rw http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	writeJSON(rw, code, map[string]string{"error": msg})
}

// Unmatched lists the reconciliation queue, oldest first.
func (w *Workflow) Unmatched(ctx context.Context) ([]Unmatched, error) {
	out := []Unmatched{}
	err := w.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT study_instance_uid, accession_number, patient_id, issuer_of_patient_id,
 study_date, modalities_in_study, queued_at FROM workflow_unmatched ORDER BY queued_at, study_instance_uid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u Unmatched
			var mods string
			var at scanTime
			if err := rows.Scan(&u.StudyInstanceUID, &u.AccessionNumber, &u.PatientID, &u.IssuerOfPatientID,
				&u.StudyDate, &mods, &at); err != nil {
				return err
			}
			u.ModalitiesInStudy = []string{}
			if mods != "" {
				u.ModalitiesInStudy = strings.Split(mods, `\`)
			}
			u.QueuedAt = at.t
			out = append(out, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("workflow: unmatched: %w", err)
	}
	return out, nil
}

func (w *Workflow) getUnmatched(rw http.ResponseWriter, r *http.Request) {
	u, err := w.Unmatched(r.Context())
	if err != nil {
		writeError(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, u)
}

func (w *Workflow) postLink(rw http.ResponseWriter, r *http.Request) {
	var body struct {
		OrderID int64 `json:"orderId"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 4096)).Decode(&body); err != nil {
		writeError(rw, fmt.Errorf("%w: body must be {\"orderId\": n}", ErrInvalid))
		return
	}
	study := r.PathValue("study")
	if err := w.Link(r.Context(), study, body.OrderID); err != nil {
		writeError(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"studyInstanceUID": study, "orderId": body.OrderID})
}

// priorityRank orders HL7 priorities (ORC-7.6 / TQ1-9, table 0027): stat
// first, then ASAP and timing critical, then routine and the rest.
func priorityRank(p string) int {
	switch strings.ToUpper(p) {
	case "S":
		return 0
	case "A", "T":
		return 1
	case "P", "C":
		return 2
	case "R":
		return 3
	}
	return 4
}

// ReadingWorklist lists studies awaiting a final report, by priority and
// then age (oldest first).
func (w *Workflow) ReadingWorklist(ctx context.Context) ([]ReadingTask, error) {
	out := []ReadingTask{}
	now := w.opts.Now()
	err := w.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT study_instance_uid, order_ref, priority, status, preliminary_report,
 final_report, requested_at FROM reading_tasks WHERE status <> 'final' ORDER BY requested_at, study_instance_uid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t ReadingTask
			var at scanTime
			if err := rows.Scan(&t.StudyInstanceUID, &t.OrderID, &t.Priority, &t.Status, &t.PreliminaryReport,
				&t.FinalReport, &at); err != nil {
				return err
			}
			t.RequestedAt = at.t
			t.AgeSeconds = int64(now.Sub(at.t).Seconds())
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("workflow: reading worklist: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return priorityRank(out[i].Priority) < priorityRank(out[j].Priority) })
	return out, nil
}

func (w *Workflow) getReadingWorklist(rw http.ResponseWriter, r *http.Request) {
	t, err := w.ReadingWorklist(r.Context())
	if err != nil {
		writeError(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, t)
}

// Timeline returns the audit trail of a study in time order.
func (w *Workflow) Timeline(ctx context.Context, studyUID string) ([]TimelineEntry, error) {
	out := []TimelineEntry{}
	err := w.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		rows, err := tx.QueryContext(ctx, `SELECT kind, event_id, detail, recorded_at FROM workflow_audit
 WHERE study_instance_uid = ? ORDER BY recorded_at, id`, studyUID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e TimelineEntry
			var at scanTime
			if err := rows.Scan(&e.Kind, &e.EventID, &e.Detail, &at); err != nil {
				return err
			}
			e.At = at.t
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("workflow: timeline: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: study %s", ErrNotFound, studyUID)
	}
	return out, nil
}

func (w *Workflow) getTimeline(rw http.ResponseWriter, r *http.Request) {
	t, err := w.Timeline(r.Context(), r.PathValue("study"))
	if err != nil {
		writeError(rw, err)
		return
	}
	writeJSON(rw, http.StatusOK, t)
}
