-- Router for PostgreSQL: what each destination has acknowledged, so that a job
-- repeated after a crash, a redelivered event or a second matching rule never
-- forwards the same stored file twice, and the destinations an operator
-- paused. Timestamps the hub keeps are timestamptz, as in 00001.

-- +goose Up
CREATE TABLE router_forwarded (
    destination      text NOT NULL,
    sop_instance_uid text NOT NULL,
    -- the stored file that was sent: a replaced instance is a new file and
    -- is forwarded again
    blob_key         text NOT NULL,
    forwarded_at     timestamptz NOT NULL,
    PRIMARY KEY (destination, sop_instance_uid, blob_key)
);

CREATE TABLE router_webhook_delivered (
    destination  text NOT NULL,
    event_id     text NOT NULL,
    delivered_at timestamptz NOT NULL,
    PRIMARY KEY (destination, event_id)
);

CREATE TABLE router_paused (
    destination text PRIMARY KEY,
    paused_at   timestamptz NOT NULL
);

-- +goose Down
DROP TABLE router_paused;
DROP TABLE router_webhook_delivered;
DROP TABLE router_forwarded;
