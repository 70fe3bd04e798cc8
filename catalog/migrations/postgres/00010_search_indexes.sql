-- Indexes for Catalog.Search (C-FIND, QIDO-RS).

-- +goose Up
-- Studies are returned newest first (StudyDate, StudyTime descending, then
-- Study Instance UID); this index yields them in that order, so a search
-- with a limit reads only the rows it returns instead of sorting the table.
-- Bytewise ("C") ordering, as Search sorts, whatever the database collation.
CREATE INDEX studies_search_order ON studies (study_date COLLATE "C" DESC, study_time COLLATE "C" DESC, study_instance_uid COLLATE "C");
-- Single value and prefix wildcard matching on Patient ID (PS3.4
-- §C.2.2.2.1, §C.2.2.2.4) whatever the issuer; the unique index is partial
-- and cannot serve "patient_id = $1" with a parameter.
CREATE INDEX patients_patient_id ON patients (patient_id text_pattern_ops);
-- Wildcard matching on Accession Number (LIKE 'prefix%').
CREATE INDEX studies_accession_number_pattern ON studies (accession_number text_pattern_ops);

-- +goose Down
DROP INDEX studies_accession_number_pattern;
DROP INDEX patients_patient_id;
DROP INDEX studies_search_order;
