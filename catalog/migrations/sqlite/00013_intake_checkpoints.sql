-- How far each intake journal has been checkpointed: the last sequence
-- number whose instances the catalog holds durably. Written by the
-- checkpoint's one durable commit, which also makes every lazily
-- committed instance before it durable.

-- +goose Up
CREATE TABLE intake_checkpoints (
    journal TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    checkpointed_at TEXT NOT NULL
);

-- +goose Down
DROP TABLE intake_checkpoints;
