package main

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
)

// dropStreams deletes the streams this run created on a shared server.
func dropStreams(ctx context.Context, url, prefix string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	names := js.StreamNames(ctx)
	var drop []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) {
			drop = append(drop, n)
		}
	}
	for _, n := range drop {
		js.DeleteStream(ctx, n)
	}
}

// bridgeProgress is how many messages his-bridge has acknowledged so far
// (its consumer's ack floor: it handles them one after another).
func bridgeProgress(ctx context.Context, rt *hub.Runtime) uint64 {
	c, err := rt.Bus.JetStream().Consumer(ctx, rt.Bus.StreamName(hl7intake.StreamName), hisbridge.ConsumerName)
	if err != nil {
		return 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0
	}
	return info.AckFloor.Consumer
}
