-- HL7 v2 intake and the bridges' registers for SQLite: messages already
-- processed (exactly-once effect of repeated MSH-10s), messages rejected with
-- AR/AE, the patient registry fed by ADT (his-bridge) and the orders, steps
-- and reports fed by ORM/OMI/ORU (ris-bridge). Timestamps the hub keeps are
-- UTC ISO 8601 text of fixed width, as in 00001; clinical times as received
-- are normalised to RFC 3339 text.

-- +goose Up
CREATE TABLE hl7_processed (
    message_key  TEXT PRIMARY KEY,
    consumer     TEXT NOT NULL,
    message_type TEXT NOT NULL DEFAULT '',
    processed_at TEXT NOT NULL
);

CREATE TABLE hl7_rejected (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at           TEXT NOT NULL,
    ack_code              TEXT NOT NULL,
    error_code            INTEGER NOT NULL DEFAULT 0,
    error_location        TEXT NOT NULL DEFAULT '',
    reason                TEXT NOT NULL DEFAULT '',
    message_type          TEXT NOT NULL DEFAULT '',
    sending_application   TEXT NOT NULL DEFAULT '',
    sending_facility      TEXT NOT NULL DEFAULT '',
    message_control_id    TEXT NOT NULL DEFAULT '',
    raw                   BLOB NOT NULL,
    replayed_at           TEXT
);
CREATE INDEX hl7_rejected_received_at ON hl7_rejected (received_at);

CREATE TABLE registry_patients (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    family_name         TEXT NOT NULL DEFAULT '',
    given_name          TEXT NOT NULL DEFAULT '',
    middle_name         TEXT NOT NULL DEFAULT '',
    name_suffix         TEXT NOT NULL DEFAULT '',
    name_prefix         TEXT NOT NULL DEFAULT '',
    -- family name folded to lower case by the hub (SQLite's lower() folds
    -- ASCII only), for prefix search.
    name_search         TEXT NOT NULL DEFAULT '',
    birth_date          TEXT NOT NULL DEFAULT '',
    sex                 TEXT NOT NULL DEFAULT '',
    address_street      TEXT NOT NULL DEFAULT '',
    address_other       TEXT NOT NULL DEFAULT '',
    address_city        TEXT NOT NULL DEFAULT '',
    address_state       TEXT NOT NULL DEFAULT '',
    address_postal_code TEXT NOT NULL DEFAULT '',
    address_country     TEXT NOT NULL DEFAULT '',
    phone               TEXT NOT NULL DEFAULT '',
    merged_into         INTEGER REFERENCES registry_patients (id),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX registry_patients_name_search ON registry_patients (name_search);

-- PID-3 identifiers (CX): unique per assigning authority (CX.4).
CREATE TABLE registry_patient_identifiers (
    id_number            TEXT NOT NULL,
    assigning_authority  TEXT NOT NULL DEFAULT '',
    identifier_type_code TEXT NOT NULL DEFAULT '',
    patient_ref          INTEGER NOT NULL REFERENCES registry_patients (id),
    PRIMARY KEY (id_number, assigning_authority)
);
CREATE INDEX registry_patient_identifiers_patient_ref ON registry_patient_identifiers (patient_ref);

CREATE TABLE registry_visits (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_ref       INTEGER NOT NULL REFERENCES registry_patients (id),
    visit_number      TEXT NOT NULL DEFAULT '',
    patient_class     TEXT NOT NULL DEFAULT '',
    assigned_location TEXT NOT NULL DEFAULT '',
    attending_doctor  TEXT NOT NULL DEFAULT '',
    referring_doctor  TEXT NOT NULL DEFAULT '',
    admit_time        TEXT NOT NULL DEFAULT '',
    discharge_time    TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'active',
    updated_at        TEXT NOT NULL,
    UNIQUE (patient_ref, visit_number)
);

CREATE TABLE orders (
    id                                INTEGER PRIMARY KEY AUTOINCREMENT,
    placer_order_number               TEXT NOT NULL DEFAULT '',
    filler_order_number               TEXT NOT NULL DEFAULT '',
    accession_number                  TEXT NOT NULL DEFAULT '',
    requested_procedure_id            TEXT NOT NULL DEFAULT '',
    study_instance_uid                TEXT NOT NULL DEFAULT '',
    requested_procedure_code          TEXT NOT NULL DEFAULT '',
    requested_procedure_text          TEXT NOT NULL DEFAULT '',
    requested_procedure_coding_scheme TEXT NOT NULL DEFAULT '',
    priority                          TEXT NOT NULL DEFAULT '',
    ordering_provider                 TEXT NOT NULL DEFAULT '',
    referring_provider                TEXT NOT NULL DEFAULT '',
    reason                            TEXT NOT NULL DEFAULT '',
    order_control                     TEXT NOT NULL DEFAULT '',
    status                            TEXT NOT NULL DEFAULT '',
    patient_id                        TEXT NOT NULL DEFAULT '',
    issuer_of_patient_id              TEXT NOT NULL DEFAULT '',
    patient_name                      TEXT NOT NULL DEFAULT '',
    patient_birth_date                TEXT NOT NULL DEFAULT '',
    patient_sex                       TEXT NOT NULL DEFAULT '',
    visit_number                      TEXT NOT NULL DEFAULT '',
    created_at                        TEXT NOT NULL,
    updated_at                        TEXT NOT NULL
);
CREATE INDEX orders_placer ON orders (placer_order_number) WHERE placer_order_number <> '';
CREATE INDEX orders_filler ON orders (filler_order_number) WHERE filler_order_number <> '';
CREATE INDEX orders_accession ON orders (accession_number);
CREATE INDEX orders_patient ON orders (patient_id);
CREATE INDEX orders_status ON orders (status);

-- One row per Scheduled Procedure Step: the worklist serves one item each.
CREATE TABLE order_steps (
    order_ref                         INTEGER NOT NULL REFERENCES orders (id),
    step_index                        INTEGER NOT NULL,
    scheduled_procedure_step_id       TEXT NOT NULL DEFAULT '',
    modality                          TEXT NOT NULL DEFAULT '',
    scheduled_station_ae_title        TEXT NOT NULL DEFAULT '',
    scheduled_station_name            TEXT NOT NULL DEFAULT '',
    scheduled_start                   TEXT NOT NULL DEFAULT '',
    protocol_code                     TEXT NOT NULL DEFAULT '',
    protocol_text                     TEXT NOT NULL DEFAULT '',
    protocol_coding_scheme            TEXT NOT NULL DEFAULT '',
    status                            TEXT NOT NULL DEFAULT 'SCHEDULED',
    PRIMARY KEY (order_ref, step_index)
);

CREATE TABLE reports (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    order_ref           INTEGER REFERENCES orders (id),
    placer_order_number TEXT NOT NULL DEFAULT '',
    filler_order_number TEXT NOT NULL DEFAULT '',
    accession_number    TEXT NOT NULL DEFAULT '',
    result_status       TEXT NOT NULL,
    report_text         TEXT NOT NULL DEFAULT '',
    observation_time    TEXT NOT NULL DEFAULT '',
    superseded_by       INTEGER,
    message_key         TEXT NOT NULL,
    received_at         TEXT NOT NULL
);
CREATE INDEX reports_order_ref ON reports (order_ref);
CREATE INDEX reports_accession ON reports (accession_number);

-- +goose Down
DROP TABLE reports;
DROP TABLE order_steps;
DROP TABLE orders;
DROP TABLE registry_visits;
DROP TABLE registry_patient_identifiers;
DROP TABLE registry_patients;
DROP TABLE hl7_rejected;
DROP TABLE hl7_processed;
