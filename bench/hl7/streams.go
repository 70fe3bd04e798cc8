package main

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
