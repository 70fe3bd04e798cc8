package coord

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// PollOptions configures PollTimers. The zero value is ready to use.
type PollOptions struct {
	// Lease keeps a claimed timer from other pollers while fire runs;
	// 30 s if zero. Make it longer than fire's slowest run, or another
	// poller fires the same timer too.
	Lease time.Duration
	// Limit is the number of timers claimed at once; DefaultClaimLimit if
	// <= 0.
	Limit int
	// MaxWait caps the sleep between polls; 1 s if zero. Another process
	// may arm a timer earlier than the one this poller waits for, and it
	// is noticed within MaxWait.
	MaxWait time.Duration
	// Now is the clock timers are claimed by; time.Now if nil. It must be
	// the clock the ArmTimer callers use.
	Now func() time.Time
	// Logger receives failures of fire and of the backend; slog.Default()
	// if nil. Timer keys are logged at debug level only: they may be
	// identifiers (a Study Instance UID, an accession number).
	Logger *slog.Logger
}

// PollTimers fires the timers of set as they fall due, until ctx ends
// (then it returns nil) or the Coordinator is closed (ErrClosed).
//
// Each due timer is claimed, passed to fire, and completed if fire returns
// nil. If fire fails, or this process dies, the timer fires again once its
// lease ends, so fire may see a timer more than once and must be
// idempotent; across any number of pollers in any number of processes a
// timer nobody re-arms is completed once. If the timer is re-armed while
// fire runs, completion is refused and it fires again at its new time —
// for study stability that is a study that received more instances.
func (c *Coordinator) PollTimers(ctx context.Context, set string, opts PollOptions, fire func(context.Context, Timer) error) error {
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = time.Second
	}
	if opts.Limit <= 0 {
		opts.Limit = DefaultClaimLimit
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("set", set)

	for ctx.Err() == nil {
		due, err := c.ClaimDue(ctx, set, now(), opts.Lease, opts.Limit)
		if err != nil {
			if errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalid) {
				return err
			}
			if ctx.Err() == nil {
				log.Warn("coord: claiming due timers failed", "err", err)
			}
			sleep(ctx, opts.MaxWait)
			continue
		}
		for _, t := range due {
			if err := fire(ctx, t); err != nil {
				log.Warn("coord: timer action failed; it fires again after its lease", "err", err, "lease", opts.Lease)
				log.Debug("coord: failed timer", "key", t.Key)
				continue
			}
			ok, err := c.CompleteTimer(ctx, set, t)
			switch {
			case err != nil:
				log.Warn("coord: completing timer failed; it fires again after its lease", "err", err)
			case !ok:
				log.Debug("coord: timer re-armed or re-claimed while firing", "key", t.Key)
			}
		}
		if len(due) == opts.Limit {
			continue // probably more due right now
		}
		wait := opts.MaxWait
		if next, ok, err := c.NextDue(ctx, set); err == nil && ok {
			wait = min(wait, max(next.Sub(now()), 0))
		}
		sleep(ctx, wait)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
