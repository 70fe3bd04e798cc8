package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/imaginghub/imaginghub/events"
)

// StartConsumer ensures the streams a consumer reads, starts it with
// exactly one of h (CloudEvents envelopes) or raw (any payload), and adds a
// readiness check that fails once it has stopped. Stop it with
// StopConsumer from the component's Shutdown.
func (rt *Runtime) StartConsumer(ctx context.Context, spec events.ConsumerSpec, h events.Handler, raw events.RawHandler, streams ...events.StreamSpec) (*events.Consumer, error) {
	for _, s := range streams {
		if _, err := rt.Bus.EnsureStream(ctx, s); err != nil {
			return nil, fmt.Errorf("%s: stream %s: %w", spec.Name, s.Name, err)
		}
	}
	var cons *events.Consumer
	var err error
	switch {
	case h != nil && raw == nil:
		cons, err = rt.Bus.Consume(ctx, spec, h)
	case raw != nil && h == nil:
		cons, err = rt.Bus.ConsumeRaw(ctx, spec, raw)
	default:
		return nil, fmt.Errorf("%s: give exactly one handler", spec.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	rt.AddConsumerCheck(spec.Name, cons)
	return cons, nil
}

// AddConsumerCheck adds a readiness check named "<name> consumer" that
// fails once c has stopped.
func (rt *Runtime) AddConsumerCheck(name string, c *events.Consumer) {
	rt.Server.AddCheck(name+" consumer", func(context.Context) error {
		select {
		case <-c.Done():
			return errors.New("stopped")
		default:
			return nil
		}
	})
}

// StopConsumer stops c, letting the event in hand finish, until ctx ends.
// A nil c is already stopped.
func StopConsumer(ctx context.Context, c *events.Consumer) error {
	if c == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { c.Stop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
