package outbox

import (
	"encoding/json"
	"fmt"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
)

// Message turns an event into the outbox row that commits with the domain
// change it records; the relay publishes it with Nats-Msg-Id = e.ID.
func Message(e events.Event) (catalog.OutboxMessage, error) {
	if err := e.Validate(); err != nil {
		return catalog.OutboxMessage{}, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return catalog.OutboxMessage{}, fmt.Errorf("outbox: marshal %s: %w", e.Type, err)
	}
	return catalog.OutboxMessage{EventID: e.ID, Subject: e.Type, Payload: b}, nil
}
