package router

import (
	"context"
	"sync"
)

// exclusive lets one delivery of a job run at a time in this process.
// JetStream delivers at least once, and may hand the same message to two
// handlers at once (a redelivery racing the original, seen with NATS
// 2.9 after a restart): both would find no ledger record and both would
// send. The second waits here for the first and then finds its record.
type exclusive struct {
	mu      sync.Mutex
	running map[string]chan struct{}
}

// acquire waits until no delivery of key runs, marks one running and
// returns its release; or returns ctx's error.
func (x *exclusive) acquire(ctx context.Context, key string) (release func(), err error) {
	for {
		x.mu.Lock()
		if x.running == nil {
			x.running = map[string]chan struct{}{}
		}
		wait, busy := x.running[key]
		if !busy {
			done := make(chan struct{})
			x.running[key] = done
			x.mu.Unlock()
			return func() {
				x.mu.Lock()
				delete(x.running, key)
				x.mu.Unlock()
				close(done)
			}, nil
		}
		x.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
