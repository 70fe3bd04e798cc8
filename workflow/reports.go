package workflow

import (
	"context"
	"fmt"
	"strconv"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// Reading task statuses.
const (
	TaskAwaiting    = "awaiting"
	TaskPreliminary = "preliminary"
	TaskFinal       = "final"
)

// handleReport completes the reading tasks of the order a report is for.
// OBX-11 (HL7 table 0085) P keeps the task open as preliminary; F and C
// complete it, a corrected report superseding the final one; a late
// preliminary never reopens a final task.
func (w *Workflow) handleReport(ctx context.Context, e events.Event, _ events.Delivery) error {
	var r risbridge.ReportEvent
	if err := e.DecodeData(&r); err != nil {
		return events.Permanent(fmt.Errorf("workflow: report data: %v", err))
	}
	now := w.opts.Now()
	return w.inTx(ctx, func(ctx context.Context, tx *catalog.Tx) error {
		if ok, err := markApplied(ctx, tx, ReportsConsumer, e.ID, now); err != nil || !ok {
			return err
		}
		uids, err := queryStrings(ctx, tx, `SELECT study_instance_uid FROM reading_tasks WHERE (order_ref = ? AND ? <> 0)
 OR (study_instance_uid = ? AND ? <> '') ORDER BY study_instance_uid`, r.OrderID, r.OrderID, r.StudyInstanceUID, r.StudyInstanceUID)
		if err != nil {
			return fmt.Errorf("workflow: reading tasks: %w", err)
		}
		nowArg := tx.Time(now)
		for _, uid := range uids {
			switch r.ResultStatus {
			case "P":
				if _, err := tx.ExecContext(ctx, `UPDATE reading_tasks SET status = 'preliminary', preliminary_report = ?, updated_at = ?
 WHERE study_instance_uid = ? AND status <> 'final'`, r.ID, nowArg, uid); err != nil {
					return fmt.Errorf("workflow: reading task: %w", err)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE workflow_links SET status = 'report-preliminary', updated_at = ?
 WHERE study_instance_uid = ? AND status = 'images-available'`, nowArg, uid); err != nil {
					return fmt.Errorf("workflow: link status: %w", err)
				}
			case "F", "C":
				if _, err := tx.ExecContext(ctx, `UPDATE reading_tasks SET status = 'final', final_report = ?, updated_at = ?
 WHERE study_instance_uid = ?`, r.ID, nowArg, uid); err != nil {
					return fmt.Errorf("workflow: reading task: %w", err)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE workflow_links SET status = 'report-available', updated_at = ?
 WHERE study_instance_uid = ?`, nowArg, uid); err != nil {
					return fmt.Errorf("workflow: link status: %w", err)
				}
			default:
				continue
			}
			if err := audit(ctx, tx, uid, "reported", e.ID, r.ResultStatus+" report "+strconv.FormatInt(r.ID, 10), now); err != nil {
				return err
			}
		}
		return nil
	})
}
