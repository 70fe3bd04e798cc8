package worklist

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
)

// Store keeps worklist items and MPPS in the catalog's tables
// worklist_items, worklist_events, mpps and mpps_items.
type Store struct {
	Catalog *catalog.Catalog
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// read runs a read in a read-only transaction, beside the writers.
func (s *Store) read(ctx context.Context, fn func(tx catalog.Querier) error) error {
	return s.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error { return fn(tx) })
}

// Get returns one item.
func (s *Store) Get(ctx context.Context, id int64) (Item, error) {
	var it Item
	err := s.read(ctx, func(tx catalog.Querier) error {
		var err error
		it, err = getItem(ctx, tx, id)
		return err
	})
	return it, err
}

// ListOptions select items for List.
type ListOptions struct {
	// Station is a Scheduled Station AE Title; "" any.
	Station string
	// Date is a Scheduled Procedure Step Start Date (YYYYMMDD); "" any.
	Date string
	// Status is a Scheduled Procedure Step Status; "" any.
	Status string
	// Limit bounds the result (default 100, at most 1000); Offset skips.
	Limit, Offset int
}

// List returns items in scheduled order.
func (s *Store) List(ctx context.Context, o ListOptions) ([]Item, error) {
	if o.Limit <= 0 {
		o.Limit = 100
	}
	if o.Limit > 1000 || o.Offset < 0 {
		return nil, fmt.Errorf("%w: limit 1 to 1000, offset not negative", ErrInvalid)
	}
	q := `SELECT ` + itemColumns + ` FROM worklist_items`
	var where []string
	var args []any
	for col, v := range map[string]string{"scheduled_station_ae_title": o.Station, "scheduled_start_date": o.Date, "status": o.Status} {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY scheduled_start_date, scheduled_start_time, id LIMIT ? OFFSET ?`
	args = append(args, o.Limit, o.Offset)
	items := []Item{}
	err := s.read(ctx, func(tx catalog.Querier) error {
		items = items[:0]
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("worklist: list: %w", err)
	}
	return items, nil
}

// Validate checks a hand-entered item: the keys a modality needs and the
// formats of PS3.5 §6.2 for the dates, times, UID and status.
func (it *Item) Validate() error {
	var errs []string
	if it.PatientID == "" {
		errs = append(errs, "patientID is required")
	}
	if it.ScheduledStationAETitle == "" && it.Modality == "" {
		errs = append(errs, "scheduledStationAETitle or modality is required")
	}
	if len(it.ScheduledStationAETitle) > 16 {
		errs = append(errs, "scheduledStationAETitle exceeds 16 characters")
	}
	if d := it.ScheduledProcedureStepStartDate; d != "" {
		if _, err := time.Parse("20060102", d); err != nil {
			errs = append(errs, "scheduledProcedureStepStartDate must be YYYYMMDD")
		}
	}
	if t := it.ScheduledProcedureStepStartTime; t != "" && (!isDigits(t) || len(t)%2 == 1 || len(t) > 6) {
		errs = append(errs, "scheduledProcedureStepStartTime must be HH, HHMM or HHMMSS")
	}
	if d := it.PatientBirthDate; d != "" {
		if _, err := time.Parse("20060102", d); err != nil {
			errs = append(errs, "patientBirthDate must be YYYYMMDD")
		}
	}
	if u := it.StudyInstanceUID; u != "" && !dicomfile.ValidUID(u) {
		errs = append(errs, "studyInstanceUID is not a valid UID")
	}
	switch it.ScheduledProcedureStepStatus {
	case "", StatusScheduled, StatusArrived, StatusReady, StatusStarted, StatusDeparted, StatusCompleted, StatusDiscontinued, StatusCanceled:
	default:
		errs = append(errs, "scheduledProcedureStepStatus is not a defined term")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// Create adds a hand-entered item. A Study Instance UID and Scheduled
// Procedure Step ID are assigned when not given.
func (s *Store) Create(ctx context.Context, it Item) (Item, error) {
	it.ID, it.Source, it.OrderID = 0, SourceManual, 0
	if it.ScheduledProcedureStepStatus == "" {
		it.ScheduledProcedureStepStatus = StatusScheduled
	}
	if err := it.Validate(); err != nil {
		return it, err
	}
	if it.StudyInstanceUID == "" {
		it.StudyInstanceUID = dicomfile.NewUID()
	}
	now := s.now()
	err := s.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		if err := insertItem(ctx, tx, &it, "", now); err != nil {
			return err
		}
		if it.ScheduledProcedureStepID == "" {
			it.ScheduledProcedureStepID = fmt.Sprintf("M%d", it.ID)
			if _, err := tx.ExecContext(ctx, `UPDATE worklist_items SET scheduled_procedure_step_id = ? WHERE id = ?`, it.ScheduledProcedureStepID, it.ID); err != nil {
				return err
			}
		}
		if it.RequestedProcedureID == "" {
			it.RequestedProcedureID = it.ScheduledProcedureStepID
			_, err := tx.ExecContext(ctx, `UPDATE worklist_items SET requested_procedure_id = ? WHERE id = ?`, it.RequestedProcedureID, it.ID)
			return err
		}
		return nil
	})
	return it, err
}

// Update replaces a hand-entered item's fields.
func (s *Store) Update(ctx context.Context, id int64, it Item) (Item, error) {
	if err := it.Validate(); err != nil {
		return it, err
	}
	now := s.now()
	err := s.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		old, err := getItem(ctx, tx, id)
		if err != nil {
			return err
		}
		if old.Source != SourceManual {
			return ErrNotEditable
		}
		it.ID, it.Source, it.CreatedAt = id, SourceManual, old.CreatedAt
		if it.StudyInstanceUID == "" {
			it.StudyInstanceUID = old.StudyInstanceUID
		}
		if it.ScheduledProcedureStepID == "" {
			it.ScheduledProcedureStepID = old.ScheduledProcedureStepID
		}
		if it.RequestedProcedureID == "" {
			it.RequestedProcedureID = old.RequestedProcedureID
		}
		if it.ScheduledProcedureStepStatus == "" {
			it.ScheduledProcedureStepStatus = old.ScheduledProcedureStepStatus
		}
		return updateItem(ctx, tx, &it, "", now)
	})
	return it, err
}

// Cancel sets a hand-entered item's step to CANCELED; it is no longer
// served (unless Options.IncludeFinalSteps).
func (s *Store) Cancel(ctx context.Context, id int64) (Item, error) {
	var it Item
	now := s.now()
	err := s.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		var err error
		if it, err = getItem(ctx, tx, id); err != nil {
			return err
		}
		if it.Source != SourceManual {
			return ErrNotEditable
		}
		if Final(it.ScheduledProcedureStepStatus) {
			return nil
		}
		it.ScheduledProcedureStepStatus = StatusCanceled
		it.UpdatedAt = now
		return setStatus(ctx, tx, []int64{id}, StatusCanceled, now)
	})
	return it, err
}
