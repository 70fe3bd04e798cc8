-- Workflow (reconciliation, billing, reporting) for SQLite: the events each
-- consumer has applied, the link of each study to its order, the queue of
-- studies no order matched, the per-study coercion values served on retrieval,
-- the charges (one per performed procedure), the reading tasks and the
-- per-study audit trail. Timestamps are UTC ISO 8601 text of fixed width.

-- +goose Up
CREATE TABLE workflow_events (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE workflow_links (
    study_instance_uid TEXT PRIMARY KEY,
    order_ref          INTEGER NOT NULL REFERENCES orders (id),
    -- study_instance_uid, accession_number, mpps, heuristic or manual
    matched_by         TEXT NOT NULL,
    -- images-available, then report-preliminary and report-available
    status             TEXT NOT NULL DEFAULT 'images-available',
    linked_at          TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX workflow_links_order ON workflow_links (order_ref);

CREATE TABLE workflow_unmatched (
    study_instance_uid   TEXT PRIMARY KEY,
    accession_number     TEXT NOT NULL DEFAULT '',
    patient_id           TEXT NOT NULL DEFAULT '',
    issuer_of_patient_id TEXT NOT NULL DEFAULT '',
    study_date           TEXT NOT NULL DEFAULT '',
    modalities_in_study  TEXT NOT NULL DEFAULT '',
    queued_at            TEXT NOT NULL
);
CREATE INDEX workflow_unmatched_accession ON workflow_unmatched (accession_number);

-- The values retrievals put in place of the stored ones (IHE PIR): stored
-- files stay as received.
CREATE TABLE workflow_coercions (
    study_instance_uid   TEXT PRIMARY KEY,
    patient_name         TEXT NOT NULL DEFAULT '',
    patient_id           TEXT NOT NULL DEFAULT '',
    issuer_of_patient_id TEXT NOT NULL DEFAULT '',
    patient_birth_date   TEXT NOT NULL DEFAULT '',
    patient_sex          TEXT NOT NULL DEFAULT '',
    accession_number     TEXT NOT NULL DEFAULT '',
    updated_at           TEXT NOT NULL
);
CREATE INDEX workflow_coercions_patient ON workflow_coercions (patient_id, issuer_of_patient_id);

CREATE TABLE charges (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    -- one per performed procedure: mpps:<SOP Instance UID>:<order> or
    -- study:<Study Instance UID>:<order>
    charge_key           TEXT NOT NULL UNIQUE,
    order_ref            INTEGER NOT NULL,
    study_instance_uid   TEXT NOT NULL DEFAULT '',
    mpps_sop_instance_uid TEXT NOT NULL DEFAULT '',
    procedure_code       TEXT NOT NULL DEFAULT '',
    procedure_text       TEXT NOT NULL DEFAULT '',
    procedure_coding_scheme TEXT NOT NULL DEFAULT '',
    quantity             INTEGER NOT NULL DEFAULT 1,
    performed_at         TEXT NOT NULL DEFAULT '',
    performing_station   TEXT NOT NULL DEFAULT '',
    performing_location  TEXT NOT NULL DEFAULT '',
    ordering_provider    TEXT NOT NULL DEFAULT '',
    placer_order_number  TEXT NOT NULL DEFAULT '',
    filler_order_number  TEXT NOT NULL DEFAULT '',
    accession_number     TEXT NOT NULL DEFAULT '',
    patient_id           TEXT NOT NULL DEFAULT '',
    issuer_of_patient_id TEXT NOT NULL DEFAULT '',
    patient_name         TEXT NOT NULL DEFAULT '',
    patient_birth_date   TEXT NOT NULL DEFAULT '',
    patient_sex          TEXT NOT NULL DEFAULT '',
    patient_account      TEXT NOT NULL DEFAULT '',
    visit_number         TEXT NOT NULL DEFAULT '',
    -- posted, reversed
    status               TEXT NOT NULL DEFAULT 'posted',
    posted_at            TEXT NOT NULL,
    reversed_at          TEXT
);
CREATE INDEX charges_order ON charges (order_ref);

CREATE TABLE reading_tasks (
    study_instance_uid  TEXT PRIMARY KEY,
    order_ref           INTEGER NOT NULL,
    priority            TEXT NOT NULL DEFAULT '',
    -- awaiting, preliminary, final
    status              TEXT NOT NULL DEFAULT 'awaiting',
    preliminary_report  INTEGER NOT NULL DEFAULT 0,
    final_report        INTEGER NOT NULL DEFAULT 0,
    requested_at        TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX reading_tasks_status ON reading_tasks (status, requested_at);
CREATE INDEX reading_tasks_order ON reading_tasks (order_ref);

CREATE TABLE workflow_audit (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    study_instance_uid TEXT NOT NULL,
    kind               TEXT NOT NULL,
    event_id           TEXT NOT NULL DEFAULT '',
    detail             TEXT NOT NULL DEFAULT '',
    recorded_at        TEXT NOT NULL,
    UNIQUE (study_instance_uid, kind, event_id)
);

-- +goose Down
DROP TABLE workflow_audit;
DROP TABLE reading_tasks;
DROP TABLE charges;
DROP TABLE workflow_coercions;
DROP TABLE workflow_unmatched;
DROP TABLE workflow_links;
DROP TABLE workflow_events;
