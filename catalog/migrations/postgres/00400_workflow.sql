-- Workflow (reconciliation, billing, reporting) for PostgreSQL: the events each
-- consumer has applied, the link of each study to its order, the queue of
-- studies no order matched, the per-study coercion values served on retrieval,
-- the charges (one per performed procedure), the reading tasks and the
-- per-study audit trail. Timestamps are timestamptz.

-- +goose Up
CREATE TABLE workflow_events (
    consumer   text NOT NULL,
    event_id   text NOT NULL,
    applied_at timestamptz NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE workflow_links (
    study_instance_uid text PRIMARY KEY,
    order_ref          bigint NOT NULL REFERENCES orders (id),
    -- study_instance_uid, accession_number, mpps, heuristic or manual
    matched_by         text NOT NULL,
    -- images-available, then report-preliminary and report-available
    status             text NOT NULL DEFAULT 'images-available',
    linked_at          timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX workflow_links_order ON workflow_links (order_ref);

CREATE TABLE workflow_unmatched (
    study_instance_uid   text PRIMARY KEY,
    accession_number     text NOT NULL DEFAULT '',
    patient_id           text NOT NULL DEFAULT '',
    issuer_of_patient_id text NOT NULL DEFAULT '',
    study_date           text NOT NULL DEFAULT '',
    modalities_in_study  text NOT NULL DEFAULT '',
    queued_at            timestamptz NOT NULL
);
CREATE INDEX workflow_unmatched_accession ON workflow_unmatched (accession_number);

-- The values retrievals put in place of the stored ones (IHE PIR): stored
-- files stay as received.
CREATE TABLE workflow_coercions (
    study_instance_uid   text PRIMARY KEY,
    patient_name         text NOT NULL DEFAULT '',
    patient_id           text NOT NULL DEFAULT '',
    issuer_of_patient_id text NOT NULL DEFAULT '',
    patient_birth_date   text NOT NULL DEFAULT '',
    patient_sex          text NOT NULL DEFAULT '',
    accession_number     text NOT NULL DEFAULT '',
    updated_at           timestamptz NOT NULL
);
CREATE INDEX workflow_coercions_patient ON workflow_coercions (patient_id, issuer_of_patient_id);

CREATE TABLE charges (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- one per performed procedure: mpps:<SOP Instance UID>:<order> or
    -- study:<Study Instance UID>:<order>
    charge_key           text NOT NULL UNIQUE,
    order_ref            bigint NOT NULL,
    study_instance_uid   text NOT NULL DEFAULT '',
    mpps_sop_instance_uid text NOT NULL DEFAULT '',
    procedure_code       text NOT NULL DEFAULT '',
    procedure_text       text NOT NULL DEFAULT '',
    procedure_coding_scheme text NOT NULL DEFAULT '',
    quantity             bigint NOT NULL DEFAULT 1,
    performed_at         text NOT NULL DEFAULT '',
    performing_station   text NOT NULL DEFAULT '',
    performing_location  text NOT NULL DEFAULT '',
    ordering_provider    text NOT NULL DEFAULT '',
    placer_order_number  text NOT NULL DEFAULT '',
    filler_order_number  text NOT NULL DEFAULT '',
    accession_number     text NOT NULL DEFAULT '',
    patient_id           text NOT NULL DEFAULT '',
    issuer_of_patient_id text NOT NULL DEFAULT '',
    patient_name         text NOT NULL DEFAULT '',
    patient_birth_date   text NOT NULL DEFAULT '',
    patient_sex          text NOT NULL DEFAULT '',
    patient_account      text NOT NULL DEFAULT '',
    visit_number         text NOT NULL DEFAULT '',
    -- posted, reversed
    status               text NOT NULL DEFAULT 'posted',
    posted_at            timestamptz NOT NULL,
    reversed_at          timestamptz
);
CREATE INDEX charges_order ON charges (order_ref);

CREATE TABLE reading_tasks (
    study_instance_uid  text PRIMARY KEY,
    order_ref           bigint NOT NULL,
    priority            text NOT NULL DEFAULT '',
    -- awaiting, preliminary, final
    status              text NOT NULL DEFAULT 'awaiting',
    preliminary_report  bigint NOT NULL DEFAULT 0,
    final_report        bigint NOT NULL DEFAULT 0,
    requested_at        timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX reading_tasks_status ON reading_tasks (status, requested_at);
CREATE INDEX reading_tasks_order ON reading_tasks (order_ref);

CREATE TABLE workflow_audit (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_instance_uid text NOT NULL,
    kind               text NOT NULL,
    event_id           text NOT NULL DEFAULT '',
    detail             text NOT NULL DEFAULT '',
    recorded_at        timestamptz NOT NULL,
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
