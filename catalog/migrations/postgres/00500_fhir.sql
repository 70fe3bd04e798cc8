-- FHIR R4 facade for PostgreSQL: the resources the hub serves and pushes, each
-- with its current version (FHIR R4 §3.1.0.1.2 resource metadata), the
-- versions before it (vread, §3.1.0.4), the values its search parameters
-- take, and what each push target has acknowledged. Timestamps here are
-- FHIR instants (UTC ISO 8601 text of fixed width), the form meta.lastUpdated
-- and search compare, so they stay text on both backends.

-- +goose Up
CREATE TABLE fhir_resources (
    resource_type text NOT NULL,
    id            text NOT NULL,
    version_id    bigint NOT NULL,
    last_updated  text COLLATE "C" NOT NULL,
    -- SHA-256 of the resource without meta, to tell a real change from a
    -- rebuild that produced the same content
    content_hash  text NOT NULL,
    content       text NOT NULL,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX fhir_resources_last_updated ON fhir_resources (resource_type, last_updated, id);

CREATE TABLE fhir_history (
    resource_type text NOT NULL,
    id            text NOT NULL,
    version_id    bigint NOT NULL,
    last_updated  text NOT NULL,
    content       text NOT NULL,
    PRIMARY KEY (resource_type, id, version_id)
);

-- One row per value of a search parameter (FHIR R4 §3.1.1.5): tokens as
-- "system|code" and as the bare code, references as "Type/id", dates as
-- ISO 8601 text so that ranges compare as strings, strings folded to lower
-- case for prefix matching.
CREATE TABLE fhir_search (
    resource_type text NOT NULL,
    param         text NOT NULL,
    -- byte order, so that ranges and prefixes compare as on SQLite
    value         text COLLATE "C" NOT NULL,
    id            text NOT NULL,
    PRIMARY KEY (resource_type, param, value, id)
);
CREATE INDEX fhir_search_id ON fhir_search (resource_type, id, param, value);

CREATE TABLE fhir_pushed (
    target        text NOT NULL,
    resource_type text NOT NULL,
    id            text NOT NULL,
    version_id    bigint NOT NULL,
    pushed_at     text NOT NULL,
    PRIMARY KEY (target, resource_type, id)
);

-- Links workflow reconciliation made (ih.study.reconciled): the order and
-- patient a study belongs to when the DICOM header alone does not say.
CREATE TABLE fhir_study_links (
    study_instance_uid text PRIMARY KEY,
    order_id           bigint,
    patient_reference  text NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE fhir_study_links;
DROP TABLE fhir_pushed;
DROP TABLE fhir_search;
DROP TABLE fhir_history;
DROP TABLE fhir_resources;
