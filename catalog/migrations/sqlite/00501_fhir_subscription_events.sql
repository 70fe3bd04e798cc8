-- Event numbers of topic-based subscriptions (Subscriptions R5 Backport IG:
-- events-since-subscription-start and notification-event.event-number), so
-- that a notification retried after a crash keeps its number and a
-- subscriber can tell a gap from a repeat.

-- +goose Up
CREATE TABLE fhir_subscription_events (
    subscription_id TEXT PRIMARY KEY,
    events          INTEGER NOT NULL
);

CREATE TABLE fhir_notification_numbers (
    subscription_id TEXT NOT NULL,
    -- the notification job: resource type, id and version
    job_key         TEXT NOT NULL,
    event_number    INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, job_key)
);

-- +goose Down
DROP TABLE fhir_notification_numbers;
DROP TABLE fhir_subscription_events;
