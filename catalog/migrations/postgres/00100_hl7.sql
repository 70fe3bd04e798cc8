-- HL7 v2 intake and the bridges' registers for PostgreSQL: messages already
-- processed (exactly-once effect of repeated MSH-10s), messages rejected with
-- AR/AE, the patient registry fed by ADT (his-bridge) and the orders, steps
-- and reports fed by ORM/OMI/ORU (ris-bridge). Timestamps the hub keeps are
-- timestamptz, as in 00001; clinical times as received
-- are normalised to RFC 3339 text.

-- +goose Up
CREATE TABLE hl7_processed (
    message_key  text PRIMARY KEY,
    consumer     text NOT NULL,
    message_type text NOT NULL DEFAULT '',
    processed_at timestamptz NOT NULL
);

CREATE TABLE hl7_rejected (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at           timestamptz NOT NULL,
    ack_code              text NOT NULL,
    error_code            bigint NOT NULL DEFAULT 0,
    error_location        text NOT NULL DEFAULT '',
    reason                text NOT NULL DEFAULT '',
    message_type          text NOT NULL DEFAULT '',
    sending_application   text NOT NULL DEFAULT '',
    sending_facility      text NOT NULL DEFAULT '',
    message_control_id    text NOT NULL DEFAULT '',
    raw                   bytea NOT NULL,
    replayed_at           timestamptz
);
CREATE INDEX hl7_rejected_received_at ON hl7_rejected (received_at);

CREATE TABLE registry_patients (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    family_name         text NOT NULL DEFAULT '',
    given_name          text NOT NULL DEFAULT '',
    middle_name         text NOT NULL DEFAULT '',
    name_suffix         text NOT NULL DEFAULT '',
    name_prefix         text NOT NULL DEFAULT '',
    -- family name folded to lower case by the hub, for prefix search
    -- (the same on both backends).
    name_search         text NOT NULL DEFAULT '',
    birth_date          text NOT NULL DEFAULT '',
    sex                 text NOT NULL DEFAULT '',
    address_street      text NOT NULL DEFAULT '',
    address_other       text NOT NULL DEFAULT '',
    address_city        text NOT NULL DEFAULT '',
    address_state       text NOT NULL DEFAULT '',
    address_postal_code text NOT NULL DEFAULT '',
    address_country     text NOT NULL DEFAULT '',
    phone               text NOT NULL DEFAULT '',
    merged_into         bigint REFERENCES registry_patients (id),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX registry_patients_name_search ON registry_patients (name_search text_pattern_ops);

-- PID-3 identifiers (CX): unique per assigning authority (CX.4).
CREATE TABLE registry_patient_identifiers (
    id_number            text NOT NULL,
    assigning_authority  text NOT NULL DEFAULT '',
    identifier_type_code text NOT NULL DEFAULT '',
    patient_ref          bigint NOT NULL REFERENCES registry_patients (id),
    PRIMARY KEY (id_number, assigning_authority)
);
CREATE INDEX registry_patient_identifiers_patient_ref ON registry_patient_identifiers (patient_ref);

CREATE TABLE registry_visits (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_ref       bigint NOT NULL REFERENCES registry_patients (id),
    visit_number      text NOT NULL DEFAULT '',
    patient_class     text NOT NULL DEFAULT '',
    assigned_location text NOT NULL DEFAULT '',
    attending_doctor  text NOT NULL DEFAULT '',
    referring_doctor  text NOT NULL DEFAULT '',
    admit_time        text NOT NULL DEFAULT '',
    discharge_time    text NOT NULL DEFAULT '',
    status            text NOT NULL DEFAULT 'active',
    updated_at        timestamptz NOT NULL,
    UNIQUE (patient_ref, visit_number)
);

CREATE TABLE orders (
    id                                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    placer_order_number               text NOT NULL DEFAULT '',
    filler_order_number               text NOT NULL DEFAULT '',
    accession_number                  text NOT NULL DEFAULT '',
    requested_procedure_id            text NOT NULL DEFAULT '',
    study_instance_uid                text NOT NULL DEFAULT '',
    requested_procedure_code          text NOT NULL DEFAULT '',
    requested_procedure_text          text NOT NULL DEFAULT '',
    requested_procedure_coding_scheme text NOT NULL DEFAULT '',
    priority                          text NOT NULL DEFAULT '',
    ordering_provider                 text NOT NULL DEFAULT '',
    referring_provider                text NOT NULL DEFAULT '',
    reason                            text NOT NULL DEFAULT '',
    order_control                     text NOT NULL DEFAULT '',
    status                            text NOT NULL DEFAULT '',
    patient_id                        text NOT NULL DEFAULT '',
    issuer_of_patient_id              text NOT NULL DEFAULT '',
    patient_name                      text NOT NULL DEFAULT '',
    patient_birth_date                text NOT NULL DEFAULT '',
    patient_sex                       text NOT NULL DEFAULT '',
    visit_number                      text NOT NULL DEFAULT '',
    created_at                        timestamptz NOT NULL,
    updated_at                        timestamptz NOT NULL
);
CREATE INDEX orders_placer ON orders (placer_order_number) WHERE placer_order_number <> '';
CREATE INDEX orders_filler ON orders (filler_order_number) WHERE filler_order_number <> '';
CREATE INDEX orders_accession ON orders (accession_number);
CREATE INDEX orders_patient ON orders (patient_id);
CREATE INDEX orders_status ON orders (status);

-- One row per Scheduled Procedure Step: the worklist serves one item each.
CREATE TABLE order_steps (
    order_ref                         bigint NOT NULL REFERENCES orders (id),
    step_index                        bigint NOT NULL,
    scheduled_procedure_step_id       text NOT NULL DEFAULT '',
    modality                          text NOT NULL DEFAULT '',
    scheduled_station_ae_title        text NOT NULL DEFAULT '',
    scheduled_station_name            text NOT NULL DEFAULT '',
    scheduled_start                   text NOT NULL DEFAULT '',
    protocol_code                     text NOT NULL DEFAULT '',
    protocol_text                     text NOT NULL DEFAULT '',
    protocol_coding_scheme            text NOT NULL DEFAULT '',
    status                            text NOT NULL DEFAULT 'SCHEDULED',
    PRIMARY KEY (order_ref, step_index)
);

CREATE TABLE reports (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_ref           bigint REFERENCES orders (id),
    placer_order_number text NOT NULL DEFAULT '',
    filler_order_number text NOT NULL DEFAULT '',
    accession_number    text NOT NULL DEFAULT '',
    result_status       text NOT NULL,
    report_text         text NOT NULL DEFAULT '',
    observation_time    text NOT NULL DEFAULT '',
    superseded_by       bigint,
    message_key         text NOT NULL,
    received_at         timestamptz NOT NULL
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
