-- Modality Worklist and MPPS for PostgreSQL: the worklist projection (one row
-- per Scheduled Procedure Step, fed by ih.order.* and ih.patient.* events or
-- entered by hand), the events it has applied, and the Modality Performed
-- Procedure Steps received (PS3.4 Annex F). Clinical dates and times are kept
-- as DICOM DA (YYYYMMDD) and TM (HHMMSS) text so that MWL range matching
-- compares strings; the hub's own timestamps are RFC 3339 UTC text.

-- +goose Up
CREATE TABLE worklist_items (
    id                                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'order' (projected from ris-bridge events) or 'manual' (REST API)
    source                               text NOT NULL,
    order_ref                            bigint NOT NULL DEFAULT 0,
    order_version                        text NOT NULL DEFAULT '',
    placer_order_number                  text NOT NULL DEFAULT '',
    filler_order_number                  text NOT NULL DEFAULT '',
    accession_number                     text NOT NULL DEFAULT '',
    requested_procedure_id               text NOT NULL DEFAULT '',
    requested_procedure_description      text NOT NULL DEFAULT '',
    requested_procedure_code             text NOT NULL DEFAULT '',
    requested_procedure_coding_scheme    text NOT NULL DEFAULT '',
    requested_procedure_priority         text NOT NULL DEFAULT '',
    reason_for_requested_procedure       text NOT NULL DEFAULT '',
    study_instance_uid                   text NOT NULL DEFAULT '',
    referring_physician_name             text NOT NULL DEFAULT '',
    requesting_physician                 text NOT NULL DEFAULT '',
    patient_id                           text NOT NULL DEFAULT '',
    issuer_of_patient_id                 text NOT NULL DEFAULT '',
    patient_name                         text NOT NULL DEFAULT '',
    -- patient_name folded to lower case by the hub, for case-insensitive
    -- PN matching (IHE RAD TF-2 §4.5.4.1.2)
    patient_name_search                  text NOT NULL DEFAULT '',
    patient_birth_date                   text NOT NULL DEFAULT '',
    patient_sex                          text NOT NULL DEFAULT '',
    admission_id                         text NOT NULL DEFAULT '',
    current_patient_location             text NOT NULL DEFAULT '',
    medical_alerts                       text NOT NULL DEFAULT '',
    allergies                            text NOT NULL DEFAULT '',
    scheduled_procedure_step_id          text NOT NULL DEFAULT '',
    modality                             text NOT NULL DEFAULT '',
    scheduled_station_ae_title           text NOT NULL DEFAULT '',
    scheduled_station_name               text NOT NULL DEFAULT '',
    scheduled_procedure_step_location    text NOT NULL DEFAULT '',
    scheduled_start_date                 text NOT NULL DEFAULT '',
    scheduled_start_time                 text NOT NULL DEFAULT '',
    scheduled_performing_physician_name  text NOT NULL DEFAULT '',
    scheduled_procedure_step_description text NOT NULL DEFAULT '',
    scheduled_protocol_code              text NOT NULL DEFAULT '',
    scheduled_protocol_coding_scheme     text NOT NULL DEFAULT '',
    scheduled_protocol_meaning           text NOT NULL DEFAULT '',
    -- Scheduled Procedure Step Status (0040,0020): SCHEDULED, ARRIVED,
    -- READY, STARTED, DEPARTED, COMPLETED, DISCONTINUED, CANCELED
    status                               text NOT NULL DEFAULT 'SCHEDULED',
    created_at                           text NOT NULL,
    updated_at                           text NOT NULL
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
    event_id   text PRIMARY KEY,
    applied_at text NOT NULL
);

CREATE TABLE mpps (
    sop_instance_uid              text PRIMARY KEY,
    -- Performed Procedure Step Status (0040,0252): IN PROGRESS,
    -- COMPLETED, DISCONTINUED
    status                        text NOT NULL,
    calling_ae_title              text NOT NULL DEFAULT '',
    performed_station_ae_title    text NOT NULL DEFAULT '',
    modality                      text NOT NULL DEFAULT '',
    performed_procedure_step_id   text NOT NULL DEFAULT '',
    patient_id                    text NOT NULL DEFAULT '',
    study_instance_uid            text NOT NULL DEFAULT '',
    accession_number              text NOT NULL DEFAULT '',
    -- 1 when no Scheduled Step Attributes item names a known worklist item
    unscheduled                   bigint NOT NULL DEFAULT 0,
    -- the whole attribute set as last set, DICOM JSON (PS3.18 Annex F)
    dataset                       text NOT NULL,
    created_at                    text NOT NULL,
    updated_at                    text NOT NULL
);
CREATE INDEX mpps_study ON mpps (study_instance_uid);

-- The worklist items an MPPS performs (Scheduled Step Attributes Sequence).
CREATE TABLE mpps_items (
    sop_instance_uid text NOT NULL REFERENCES mpps (sop_instance_uid),
    item_ref         bigint NOT NULL REFERENCES worklist_items (id),
    PRIMARY KEY (sop_instance_uid, item_ref)
);
CREATE INDEX mpps_items_item ON mpps_items (item_ref);

-- +goose Down
DROP TABLE mpps_items;
DROP TABLE mpps;
DROP TABLE worklist_events;
DROP TABLE worklist_items;
