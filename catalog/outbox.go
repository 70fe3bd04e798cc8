package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The outbox is the write side of the transactional outbox pattern: a
// change and the events announcing it commit together, and a relay
// publishes committed rows afterwards. Delivery is at least once; the
// EventID, sent as Nats-Msg-Id, lets JetStream drop re-publishes.
//
// Two ways to read it:
//
//   - PendingOutbox: a plain read of unsent rows. Right for a single relay
//     (the embedded default), or for inspection.
//   - ClaimOutbox: marks the rows it returns as claimed for a lease, and
//     skips rows another relay holds a live claim on (on PostgreSQL with
//     FOR UPDATE SKIP LOCKED, so relays never wait on each other). Right
//     when several relay processes share one PostgreSQL. Rows of a relay
//     that dies before MarkOutboxSent are claimable again when the lease
//     runs out.

const outboxColumns = `id, event_id, subject, payload, created_at`

func (c *Catalog) scanOutbox(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}) ([]OutboxMessage, error) {
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		var m OutboxMessage
		var created dbTime
		if err := rows.Scan(&m.ID, &m.EventID, &m.Subject, &m.Payload, &created); err != nil {
			return nil, c.d.wrap(err)
		}
		m.CreatedAt = created.t
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, c.d.wrap(err)
	}
	return out, nil
}

// PendingOutbox returns up to limit unsent messages, oldest first,
// including claimed ones.
func (c *Catalog) PendingOutbox(ctx context.Context, limit int) ([]OutboxMessage, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: outbox limit %d", ErrInvalid, limit)
	}
	rows, err := c.reader.QueryContext(ctx, c.d.rebind(`SELECT `+outboxColumns+` FROM outbox
 WHERE sent_at IS NULL ORDER BY id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: pending outbox: %w", c.d.wrap(err))
	}
	msgs, err := c.scanOutbox(rows)
	if err != nil {
		return nil, fmt.Errorf("catalog: pending outbox: %w", err)
	}
	return msgs, nil
}

// ClaimOutbox returns up to limit unsent messages that no one holds a live
// claim on, oldest first, and claims them for lease. The caller publishes
// them and calls MarkOutboxSent before the lease ends; otherwise another
// relay may claim and publish them too.
func (c *Catalog) ClaimOutbox(ctx context.Context, lease time.Duration, limit int) ([]OutboxMessage, error) {
	if limit <= 0 || lease <= 0 {
		return nil, fmt.Errorf("%w: outbox claim limit %d lease %v", ErrInvalid, limit, lease)
	}
	var msgs []OutboxMessage
	err := c.inTxLazy(ctx, func(tx *Tx) error {
		now := time.Now()
		rows, err := tx.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox
 WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?)
 ORDER BY id LIMIT ?`+c.d.lockRows, tx.Time(now), limit)
		if err != nil {
			return err
		}
		msgs, err = c.scanOutbox(rows)
		if err != nil || len(msgs) == 0 {
			return err
		}
		ids := make([]any, 0, len(msgs)+1)
		ids = append(ids, tx.Time(now.Add(lease)))
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		_, err = tx.ExecContext(ctx, `UPDATE outbox SET claimed_until = ? WHERE id IN (`+placeholders(len(msgs))+`)`, ids...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: claim outbox: %w", err)
	}
	return msgs, nil
}

// MarkOutboxSent records that the messages were published. Marking a
// message twice is harmless.
func (c *Catalog) MarkOutboxSent(ctx context.Context, ids ...int64) error {
	const chunk = 500 // stays far below both backends' bound-parameter limits
	now := c.d.timeArg(time.Now())
	// A lost mark costs a repeated publish, which JetStream drops by the
	// event id (or consumers as already processed): no need to wait for
	// the disk.
	err := c.inTxLazy(ctx, func(tx *Tx) error {
		for part := range slices.Chunk(ids, chunk) {
			args := make([]any, 0, len(part)+1)
			args = append(args, now)
			for _, id := range part {
				args = append(args, id)
			}
			_, err := tx.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, claimed_until = NULL
 WHERE sent_at IS NULL AND id IN (`+placeholders(len(part))+`)`, args...)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: mark outbox sent: %w", err)
	}
	return nil
}

// PurgeSentOutbox deletes messages sent more than olderThan ago and
// returns how many it deleted. Unsent messages are never purged.
func (c *Catalog) PurgeSentOutbox(ctx context.Context, olderThan time.Duration) (int64, error) {
	if olderThan < 0 {
		return 0, fmt.Errorf("%w: negative outbox retention %v", ErrInvalid, olderThan)
	}
	res, err := c.writer.ExecContext(ctx, c.d.rebind(`DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at <= ?`),
		c.d.timeArg(time.Now().Add(-olderThan)))
	if err != nil {
		return 0, fmt.Errorf("catalog: purge outbox: %w", c.d.wrap(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("catalog: purge outbox: %w", c.d.wrap(err))
	}
	return n, nil
}

// OutboxBacklog returns how many messages are not yet sent.
func (c *Catalog) OutboxBacklog(ctx context.Context) (int64, error) {
	var n int64
	if err := c.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: outbox backlog: %w", c.d.wrap(err))
	}
	return n, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
