-- Router for SQLite: what each destination has acknowledged, so that a job
-- repeated after a crash, a redelivered event or a second matching rule never
-- forwards the same stored file twice, and the destinations an operator
-- paused. Timestamps the hub keeps are UTC ISO 8601 text, as in 00001.

-- +goose Up
CREATE TABLE router_forwarded (
    destination      TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    -- the stored file that was sent: a replaced instance is a new file and
    -- is forwarded again
    blob_key         TEXT NOT NULL,
    forwarded_at     TEXT NOT NULL,
    PRIMARY KEY (destination, sop_instance_uid, blob_key)
);

CREATE TABLE router_webhook_delivered (
    destination  TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (destination, event_id)
);

CREATE TABLE router_paused (
    destination TEXT PRIMARY KEY,
    paused_at   TEXT NOT NULL
);

-- +goose Down
DROP TABLE router_paused;
DROP TABLE router_webhook_delivered;
DROP TABLE router_forwarded;
