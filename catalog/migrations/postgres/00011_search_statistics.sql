-- Finer statistics on patient names. With the default statistics target
-- PostgreSQL guesses that a two-letter name prefix matches about 1% of
-- patients (it is nearer 0.1% in a large archive) and, for a search with a
-- limit, walks studies in date order checking each patient — tens of
-- thousands of rows — instead of starting from the few matching patients.
-- The expression index of case-insensitive (fuzzy) matching gets the same.

-- +goose Up
ALTER TABLE patients ALTER COLUMN patient_name SET STATISTICS 1000;
ALTER INDEX patients_patient_name_lower ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE patients;

-- +goose Down
ALTER INDEX patients_patient_name_lower ALTER COLUMN 1 SET STATISTICS -1;
ALTER TABLE patients ALTER COLUMN patient_name SET STATISTICS -1;
