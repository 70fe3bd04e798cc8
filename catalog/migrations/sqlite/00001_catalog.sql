-- Catalog schema for SQLite. Column names are the DICOM keywords (PS3.6
-- §6) in snake case. Dates are DICOM DA strings (YYYYMMDD, PS3.5 §6.2) and
-- times TM strings, so range matching (PS3.4 §C.2.2.2.5) is a string
-- comparison. Timestamps the catalog keeps itself are UTC ISO 8601 text with
-- a fixed width so that they sort as strings.

-- +goose Up
CREATE TABLE patients (
    id                   INTEGER PRIMARY KEY,
    patient_id           TEXT NOT NULL DEFAULT '',
    issuer_of_patient_id TEXT NOT NULL DEFAULT '',
    patient_name         TEXT NOT NULL DEFAULT '',
    patient_birth_date   TEXT NOT NULL DEFAULT '',
    patient_sex          TEXT NOT NULL DEFAULT '',
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
-- Patient ID is type 2 (PS3.3 §C.7.1.1): an empty one identifies no one, so
-- only non-empty identifiers are unique per issuer.
CREATE UNIQUE INDEX patients_patient_id_issuer ON patients (patient_id, issuer_of_patient_id) WHERE patient_id <> '';
CREATE INDEX patients_patient_name ON patients (patient_name);
CREATE INDEX patients_patient_name_nocase ON patients (patient_name COLLATE NOCASE);

CREATE TABLE studies (
    id                                INTEGER PRIMARY KEY,
    study_instance_uid                TEXT NOT NULL UNIQUE,
    patient_ref                       INTEGER NOT NULL REFERENCES patients (id),
    study_date                        TEXT NOT NULL DEFAULT '',
    study_time                        TEXT NOT NULL DEFAULT '',
    accession_number                  TEXT NOT NULL DEFAULT '',
    issuer_of_accession_number        TEXT NOT NULL DEFAULT '',
    referring_physician_name          TEXT NOT NULL DEFAULT '',
    study_description                 TEXT NOT NULL DEFAULT '',
    study_id                          TEXT NOT NULL DEFAULT '',
    modalities_in_study               TEXT NOT NULL DEFAULT '',
    number_of_study_related_series    INTEGER NOT NULL DEFAULT 0,
    number_of_study_related_instances INTEGER NOT NULL DEFAULT 0,
    created_at                        TEXT NOT NULL,
    updated_at                        TEXT NOT NULL,
    last_received                     TEXT NOT NULL
);
CREATE INDEX studies_patient_ref ON studies (patient_ref);
CREATE INDEX studies_study_date ON studies (study_date, study_time);
CREATE INDEX studies_accession_number ON studies (accession_number);
CREATE INDEX studies_last_received ON studies (last_received);

CREATE TABLE series (
    id                                 INTEGER PRIMARY KEY,
    series_instance_uid                TEXT NOT NULL UNIQUE,
    study_ref                          INTEGER NOT NULL REFERENCES studies (id),
    modality                           TEXT NOT NULL DEFAULT '',
    series_number                      INTEGER NOT NULL DEFAULT 0,
    series_description                 TEXT NOT NULL DEFAULT '',
    body_part_examined                 TEXT NOT NULL DEFAULT '',
    laterality                         TEXT NOT NULL DEFAULT '',
    series_date                        TEXT NOT NULL DEFAULT '',
    series_time                        TEXT NOT NULL DEFAULT '',
    station_name                       TEXT NOT NULL DEFAULT '',
    institution_name                   TEXT NOT NULL DEFAULT '',
    number_of_series_related_instances INTEGER NOT NULL DEFAULT 0,
    created_at                         TEXT NOT NULL,
    updated_at                         TEXT NOT NULL
);
CREATE INDEX series_study_ref ON series (study_ref);
CREATE INDEX series_modality ON series (modality);

CREATE TABLE instances (
    id                  INTEGER PRIMARY KEY,
    sop_instance_uid    TEXT NOT NULL UNIQUE,
    series_ref          INTEGER NOT NULL REFERENCES series (id),
    sop_class_uid       TEXT NOT NULL DEFAULT '',
    instance_number     INTEGER NOT NULL DEFAULT 0,
    transfer_syntax_uid TEXT NOT NULL DEFAULT '',
    number_of_frames    INTEGER NOT NULL DEFAULT 0,
    "rows"              INTEGER NOT NULL DEFAULT 0,
    "columns"           INTEGER NOT NULL DEFAULT 0,
    blob_key            TEXT NOT NULL,
    size_bytes          INTEGER NOT NULL DEFAULT 0,
    calling_ae          TEXT NOT NULL DEFAULT '',
    received_at         TEXT NOT NULL
);
CREATE INDEX instances_series_ref ON instances (series_ref, instance_number);
CREATE INDEX instances_sop_class_uid ON instances (sop_class_uid);

-- AUTOINCREMENT so that an id is never reused after old rows are purged:
-- relays and operators may rely on ids growing.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    payload       BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    sent_at       TEXT,
    claimed_until TEXT
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE instances;
DROP TABLE series;
DROP TABLE studies;
DROP TABLE patients;
