package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/events"
)

// eventsCmd is "imaginghub events dlq list|replay|discard": it connects to
// the configured NATS (or to the embedded server of a running hub through
// nats.listen).
func eventsCmd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	if len(args) < 2 || args[0] != "dlq" {
		return errors.New("usage: imaginghub events dlq list [--consumer NAME] | replay SEQ | discard SEQ")
	}
	url := cfg.NATS.URL
	if url == "" {
		if cfg.NATS.Listen == "" {
			return errors.New("the hub runs NATS in-process only (nats.listen is empty): set IMAGINGHUB_NATS_LISTEN to reach its dead letters")
		}
		url = "nats://" + cfg.NATS.Listen
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	bus, err := events.Connect(cctx, url, events.Options{
		Name: "imaginghub-cli", SubjectPrefix: cfg.Events.SubjectPrefix, StreamPrefix: cfg.Events.StreamPrefix,
	})
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", config.Redact(url), err)
	}
	defer bus.Close()

	switch args[1] {
	case "list":
		fs := flag.NewFlagSet("dlq list", flag.ContinueOnError)
		consumer := fs.String("consumer", "", "only dead letters of this consumer")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		dls, err := bus.ListDeadLetters(cctx, events.DeadLetterFilter{Consumer: *consumer})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tCONSUMER\tSUBJECT\tEVENT ID\tDELIVERIES\tERROR")
		for _, d := range dls {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", d.Sequence, d.Time.Format(time.RFC3339), d.Consumer,
				d.Subject, d.EventID, d.Deliveries, d.Error)
		}
		return tw.Flush()
	case "replay", "discard":
		if len(args) != 3 {
			return fmt.Errorf("usage: imaginghub events dlq %s SEQ", args[1])
		}
		seq, err := strconv.ParseUint(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("bad sequence number %q", args[2])
		}
		if args[1] == "replay" {
			err = bus.ReplayDeadLetter(cctx, seq)
		} else {
			err = bus.DiscardDeadLetter(cctx, seq)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "dead letter %d %s\n", seq, map[string]string{"replay": "replayed", "discard": "discarded"}[args[1]])
		return nil
	}
	return fmt.Errorf("unknown dlq command %q", args[1])
}
