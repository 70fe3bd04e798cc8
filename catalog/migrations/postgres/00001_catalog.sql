-- Catalog schema for PostgreSQL. Column names are the DICOM keywords (PS3.6
-- §6) in snake case. Dates are DICOM DA strings (YYYYMMDD, PS3.5 §6.2) and
-- times TM strings, so range matching (PS3.4 §C.2.2.2.5) is a string
-- comparison. Timestamps the catalog keeps itself are timestamptz.

-- +goose Up
CREATE TABLE patients (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id           text NOT NULL DEFAULT '',
    issuer_of_patient_id text NOT NULL DEFAULT '',
    patient_name         text NOT NULL DEFAULT '',
    patient_birth_date   text NOT NULL DEFAULT '',
    patient_sex          text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
-- Patient ID is type 2 (PS3.3 §C.7.1.1): an empty one identifies no one, so
-- only non-empty identifiers are unique per issuer.
CREATE UNIQUE INDEX patients_patient_id_issuer ON patients (patient_id, issuer_of_patient_id) WHERE patient_id <> '';
-- text_pattern_ops lets LIKE 'prefix%' (C-FIND wildcard matching,
-- PS3.4 §C.2.2.2.4) use the index whatever the database collation.
CREATE INDEX patients_patient_name ON patients (patient_name text_pattern_ops);
CREATE INDEX patients_patient_name_lower ON patients (lower(patient_name) text_pattern_ops);

CREATE TABLE studies (
    id                                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_instance_uid                text NOT NULL UNIQUE,
    patient_ref                       bigint NOT NULL REFERENCES patients (id),
    study_date                        text NOT NULL DEFAULT '',
    study_time                        text NOT NULL DEFAULT '',
    accession_number                  text NOT NULL DEFAULT '',
    issuer_of_accession_number        text NOT NULL DEFAULT '',
    referring_physician_name          text NOT NULL DEFAULT '',
    study_description                 text NOT NULL DEFAULT '',
    study_id                          text NOT NULL DEFAULT '',
    modalities_in_study               text NOT NULL DEFAULT '',
    number_of_study_related_series    integer NOT NULL DEFAULT 0,
    number_of_study_related_instances integer NOT NULL DEFAULT 0,
    created_at                        timestamptz NOT NULL,
    updated_at                        timestamptz NOT NULL,
    last_received                     timestamptz NOT NULL
);
CREATE INDEX studies_patient_ref ON studies (patient_ref);
CREATE INDEX studies_study_date ON studies (study_date, study_time);
CREATE INDEX studies_accession_number ON studies (accession_number);
CREATE INDEX studies_last_received ON studies (last_received);

CREATE TABLE series (
    id                                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_instance_uid                text NOT NULL UNIQUE,
    study_ref                          bigint NOT NULL REFERENCES studies (id),
    modality                           text NOT NULL DEFAULT '',
    series_number                      integer NOT NULL DEFAULT 0,
    series_description                 text NOT NULL DEFAULT '',
    body_part_examined                 text NOT NULL DEFAULT '',
    laterality                         text NOT NULL DEFAULT '',
    series_date                        text NOT NULL DEFAULT '',
    series_time                        text NOT NULL DEFAULT '',
    station_name                       text NOT NULL DEFAULT '',
    institution_name                   text NOT NULL DEFAULT '',
    number_of_series_related_instances integer NOT NULL DEFAULT 0,
    created_at                         timestamptz NOT NULL,
    updated_at                         timestamptz NOT NULL
);
CREATE INDEX series_study_ref ON series (study_ref);
CREATE INDEX series_modality ON series (modality);

CREATE TABLE instances (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sop_instance_uid    text NOT NULL UNIQUE,
    series_ref          bigint NOT NULL REFERENCES series (id),
    sop_class_uid       text NOT NULL DEFAULT '',
    instance_number     integer NOT NULL DEFAULT 0,
    transfer_syntax_uid text NOT NULL DEFAULT '',
    number_of_frames    integer NOT NULL DEFAULT 0,
    "rows"              integer NOT NULL DEFAULT 0,
    "columns"           integer NOT NULL DEFAULT 0,
    blob_key            text NOT NULL,
    size_bytes          bigint NOT NULL DEFAULT 0,
    calling_ae          text NOT NULL DEFAULT '',
    received_at         timestamptz NOT NULL
);
CREATE INDEX instances_series_ref ON instances (series_ref, instance_number);
CREATE INDEX instances_sop_class_uid ON instances (sop_class_uid);

CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id      text NOT NULL,
    subject       text NOT NULL,
    payload       bytea NOT NULL,
    created_at    timestamptz NOT NULL,
    sent_at       timestamptz,
    claimed_until timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE instances;
DROP TABLE series;
DROP TABLE studies;
DROP TABLE patients;
