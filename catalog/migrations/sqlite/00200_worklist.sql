-- Modality Worklist and MPPS for SQLite: the worklist projection (one row
-- per Scheduled Procedure Step, fed by ih.order.* and ih.patient.* events or
-- entered by hand), the events it has applied, and the Modality Performed
-- Procedure Steps received (PS3.4 Annex F). Clinical dates and times are kept
-- as DICOM DA (YYYYMMDD) and TM (HHMMSS) text so that MWL range matching
-- compares strings; the hub's own timestamps are RFC 3339 UTC text.

-- +goose Up
CREATE TABLE worklist_items (
    id                                   INTEGER PRIMARY KEY AUTOINCREMENT,
    -- 'order' (projected from ris-bridge events) or 'manual' (REST API)
    source                               TEXT NOT NULL,
    order_ref                            INTEGER NOT NULL DEFAULT 0,
    order_version                        TEXT NOT NULL DEFAULT '',
    placer_order_number                  TEXT NOT NULL DEFAULT '',
    filler_order_number                  TEXT NOT NULL DEFAULT '',
    accession_number                     TEXT NOT NULL DEFAULT '',
    requested_procedure_id               TEXT NOT NULL DEFAULT '',
    requested_procedure_description      TEXT NOT NULL DEFAULT '',
    requested_procedure_code             TEXT NOT NULL DEFAULT '',
    requested_procedure_coding_scheme    TEXT NOT NULL DEFAULT '',
    requested_procedure_priority         TEXT NOT NULL DEFAULT '',
    reason_for_requested_procedure       TEXT NOT NULL DEFAULT '',
    study_instance_uid                   TEXT NOT NULL DEFAULT '',
    referring_physician_name             TEXT NOT NULL DEFAULT '',
    requesting_physician                 TEXT NOT NULL DEFAULT '',
    patient_id                           TEXT NOT NULL DEFAULT '',
    issuer_of_patient_id                 TEXT NOT NULL DEFAULT '',
    patient_name                         TEXT NOT NULL DEFAULT '',
    -- patient_name folded to lower case by the hub, for case-insensitive
    -- PN matching (IHE RAD TF-2 §4.5.4.1.2)
    patient_name_search                  TEXT NOT NULL DEFAULT '',
    patient_birth_date                   TEXT NOT NULL DEFAULT '',
    patient_sex                          TEXT NOT NULL DEFAULT '',
    admission_id                         TEXT NOT NULL DEFAULT '',
    current_patient_location             TEXT NOT NULL DEFAULT '',
    medical_alerts                       TEXT NOT NULL DEFAULT '',
    allergies                            TEXT NOT NULL DEFAULT '',
    scheduled_procedure_step_id          TEXT NOT NULL DEFAULT '',
    modality                             TEXT NOT NULL DEFAULT '',
    scheduled_station_ae_title           TEXT NOT NULL DEFAULT '',
    scheduled_station_name               TEXT NOT NULL DEFAULT '',
    scheduled_procedure_step_location    TEXT NOT NULL DEFAULT '',
    scheduled_start_date                 TEXT NOT NULL DEFAULT '',
    scheduled_start_time                 TEXT NOT NULL DEFAULT '',
    scheduled_performing_physician_name  TEXT NOT NULL DEFAULT '',
    scheduled_procedure_step_description TEXT NOT NULL DEFAULT '',
    scheduled_protocol_code              TEXT NOT NULL DEFAULT '',
    scheduled_protocol_coding_scheme     TEXT NOT NULL DEFAULT '',
    scheduled_protocol_meaning           TEXT NOT NULL DEFAULT '',
    -- Scheduled Procedure Step Status (0040,0020): SCHEDULED, ARRIVED,
    -- READY, STARTED, DEPARTED, COMPLETED, DISCONTINUED, CANCELED
    status                               TEXT NOT NULL DEFAULT 'SCHEDULED',
    created_at                           TEXT NOT NULL,
    updated_at                           TEXT NOT NULL
);
CREATE UNIQUE INDEX worklist_items_order_step ON worklist_items (order_ref, scheduled_procedure_step_id) WHERE source = 'order';
CREATE INDEX worklist_items_station_date ON worklist_items (scheduled_station_ae_title, scheduled_start_date);
CREATE INDEX worklist_items_date ON worklist_items (scheduled_start_date);
CREATE INDEX worklist_items_accession ON worklist_items (accession_number);
CREATE INDEX worklist_items_patient ON worklist_items (patient_id);
CREATE INDEX worklist_items_name ON worklist_items (patient_name_search);
CREATE INDEX worklist_items_study ON worklist_items (study_instance_uid);

-- Events the projection has applied: a redelivered event changes nothing.
CREATE TABLE worklist_events (
    event_id   TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL
);

CREATE TABLE mpps (
    sop_instance_uid              TEXT PRIMARY KEY,
    -- Performed Procedure Step Status (0040,0252): IN PROGRESS,
    -- COMPLETED, DISCONTINUED
    status                        TEXT NOT NULL,
    calling_ae_title              TEXT NOT NULL DEFAULT '',
    performed_station_ae_title    TEXT NOT NULL DEFAULT '',
    modality                      TEXT NOT NULL DEFAULT '',
    performed_procedure_step_id   TEXT NOT NULL DEFAULT '',
    patient_id                    TEXT NOT NULL DEFAULT '',
    study_instance_uid            TEXT NOT NULL DEFAULT '',
    accession_number              TEXT NOT NULL DEFAULT '',
    -- 1 when no Scheduled Step Attributes item names a known worklist item
    unscheduled                   INTEGER NOT NULL DEFAULT 0,
    -- the whole attribute set as last set, DICOM JSON (PS3.18 Annex F)
    dataset                       TEXT NOT NULL,
    created_at                    TEXT NOT NULL,
    updated_at                    TEXT NOT NULL
);
CREATE INDEX mpps_study ON mpps (study_instance_uid);

-- The worklist items an MPPS performs (Scheduled Step Attributes Sequence).
CREATE TABLE mpps_items (
    sop_instance_uid TEXT NOT NULL REFERENCES mpps (sop_instance_uid),
    item_ref         INTEGER NOT NULL REFERENCES worklist_items (id),
    PRIMARY KEY (sop_instance_uid, item_ref)
);
CREATE INDEX mpps_items_item ON mpps_items (item_ref);

-- +goose Down
DROP TABLE mpps_items;
DROP TABLE mpps;
DROP TABLE worklist_events;
DROP TABLE worklist_items;
