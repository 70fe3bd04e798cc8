-- When each study's study-stable event was last committed (as of which
-- last_received), so that a hub whose coordination forgot its timers (the
-- in-process coordinator across a restart) re-arms exactly the studies
-- still awaiting one.

-- +goose Up
ALTER TABLE studies ADD COLUMN stable_announced TEXT;
CREATE INDEX studies_awaiting_stable ON studies (last_received)
    WHERE stable_announced IS NULL OR stable_announced < last_received;

-- +goose Down
DROP INDEX studies_awaiting_stable;
ALTER TABLE studies DROP COLUMN stable_announced;
