-- Patient account number (PID-18, CX) for PostgreSQL: the ID (CX.1) and its
-- assigning authority (CX.4, HD sub-components joined by '&') as the HIS
-- sent them with a visit (account per encounter) and, the last one any ADT
-- named, with the patient; and as the RIS sent them with an order. Billing
-- takes the account of a charge from these (DFT^P03 PID-18).

-- +goose Up
ALTER TABLE registry_visits ADD COLUMN account_number text NOT NULL DEFAULT '';
ALTER TABLE registry_visits ADD COLUMN account_assigning_authority text NOT NULL DEFAULT '';
ALTER TABLE registry_patients ADD COLUMN account_number text NOT NULL DEFAULT '';
ALTER TABLE registry_patients ADD COLUMN account_assigning_authority text NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN account_number text NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN account_assigning_authority text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE orders DROP COLUMN account_assigning_authority;
ALTER TABLE orders DROP COLUMN account_number;
ALTER TABLE registry_patients DROP COLUMN account_assigning_authority;
ALTER TABLE registry_patients DROP COLUMN account_number;
ALTER TABLE registry_visits DROP COLUMN account_assigning_authority;
ALTER TABLE registry_visits DROP COLUMN account_number;
