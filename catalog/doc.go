// Package catalog is the hub's database: patients, studies, series and
// instances as the DICOM information model has them (PS3.3 §A.1.2), and a
// transactional outbox from which events are relayed to NATS.
//
// One portable type, [Catalog], runs on two backends chosen by URL at [Open]:
//
//   - "" (or "sqlite:<path>"): SQLite through modernc.org/sqlite, the
//     embedded default, in WAL mode with synchronous=FULL. Writes go through
//     a single connection that begins transactions with BEGIN IMMEDIATE, so
//     writers queue in the process instead of failing with SQLITE_BUSY;
//     the writers that queue behind a running transaction commit together
//     (group commit, each in its own savepoint); reads use a separate pool.
//   - "postgres://…" or "postgresql://…": PostgreSQL through a pgx/v5 pool.
//
// Both backends share one SQL implementation over database/sql; what differs
// (placeholder style, timestamp encoding, row locking, error codes,
// migrations) lives in a small unexported dialect. The schema is applied
// with goose from SQL files embedded per dialect under migrations/; a new
// table is a new numbered file in both folders. On PostgreSQL goose holds
// an advisory lock while it migrates, so several processes may start at
// once.
//
// Every write that must be announced commits its outbox rows in the same
// transaction ([Catalog.StoreInstance], [Catalog.InTx] with
// [Tx.AppendOutbox]). A relay reads them with [Catalog.PendingOutbox] (one
// relay) or [Catalog.ClaimOutbox] (several relays), publishes with
// Nats-Msg-Id set to the event id, and calls [Catalog.MarkOutboxSent].
//
// Errors: [ErrNotFound] for a missing row, [ErrUnavailable] when the database
// cannot be reached or is out of resources (ingest answers C-STORE with
// 0xA700, PS3.4 §B.2.3), [ErrDuplicate] for a rejected duplicate SOP
// Instance, [ErrConflict] for a SOP Instance UID already filed in another
// study, [ErrInvalid] for bad arguments.
package catalog
