-- Indexes for Catalog.Search (C-FIND, QIDO-RS).

-- +goose Up
-- Studies are returned newest first (StudyDate, StudyTime descending, then
-- Study Instance UID); this index yields them in that order, so a search
-- with a limit reads only the rows it returns instead of sorting the table.
CREATE INDEX studies_search_order ON studies (study_date DESC, study_time DESC, study_instance_uid);
-- Single value matching on Patient ID (PS3.4 §C.2.2.2.1) whatever the
-- issuer; the unique index is partial and cannot serve "patient_id = ?".
CREATE INDEX patients_patient_id ON patients (patient_id);

-- +goose Down
DROP INDEX patients_patient_id;
DROP INDEX studies_search_order;
