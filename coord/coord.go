// Package coord coordinates several hub processes that share work: keyed
// timers (a study is stable once no instance arrived for a while), dedupe
// keys with a time to live, and leased locks.
//
// A *Coordinator is the portable type applications use. It wraps a driver
// (package coord/driver): memcoord keeps everything in this process and is
// the embedded default; rediscoord shares state through Redis so any number
// of processes cooperate. Open picks one from a URL.
//
// Timers are the building block for "emit once, even with several
// pollers": every event that should postpone a deadline re-arms the key's
// timer; pollers call ClaimDue, act, then CompleteTimer. A claim leases the
// timer rather than removing it, so a poller that dies between claim and
// complete only delays the action by the lease; a re-arm after the claim
// makes CompleteTimer report false and the timer stays armed.
package coord

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/imaginghub/imaginghub/coord/driver"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrLockLost: the lock expired or was taken by another holder.
	ErrLockLost = driver.ErrLockLost
	// ErrUnavailable wraps failures to reach the backing service.
	ErrUnavailable = driver.ErrUnavailable
	// ErrClosed: the Coordinator was closed.
	ErrClosed = errors.New("coord: coordinator closed")
	// ErrInvalid: an argument is out of range (empty key, ttl under 1 ms, ...).
	ErrInvalid = driver.ErrInvalid
)

// DefaultClaimLimit is the number of timers ClaimDue takes when limit <= 0.
const DefaultClaimLimit = 100

// Timer is a keyed timer claimed by ClaimDue. FireAt is the leased fire
// time: if the timer is not completed it becomes due again then.
type Timer struct {
	Key    string
	FireAt time.Time

	claim string // token of the ClaimDue call; see CompleteTimer
}

// Coordinator is the portable coordination handle. It is safe for
// concurrent use.
type Coordinator struct {
	drv    driver.Coordinator
	closed atomic.Bool
}

// New wraps a driver. Applications usually call Open instead.
func New(d driver.Coordinator) *Coordinator {
	return &Coordinator{drv: d}
}

// ms truncates t to the millisecond resolution every backend keeps.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()) }

func (c *Coordinator) check(op string, names ...string) error {
	if c.closed.Load() {
		return fmt.Errorf("coord: %s: %w", op, ErrClosed)
	}
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("coord: %s: empty name: %w", op, ErrInvalid)
		}
	}
	return nil
}

func checkDuration(op, what string, d time.Duration) error {
	if d < time.Millisecond {
		return fmt.Errorf("coord: %s: %s %v below 1ms: %w", op, what, d, ErrInvalid)
	}
	return nil
}

// ArmTimer sets the timer key of set to fire at fireAt, creating it or
// replacing its previous fire time (earlier or later) and voiding any
// outstanding claim, so a poller that claimed it before cannot complete it.
func (c *Coordinator) ArmTimer(ctx context.Context, set, key string, fireAt time.Time) error {
	if err := c.check("arm timer", set, key); err != nil {
		return err
	}
	return c.drv.ArmTimer(ctx, set, key, ms(fireAt))
}

// CancelTimer removes the timer key of set; an absent timer is no error.
func (c *Coordinator) CancelTimer(ctx context.Context, set, key string) error {
	if err := c.check("cancel timer", set, key); err != nil {
		return err
	}
	return c.drv.CancelTimer(ctx, set, key)
}

// ClaimDue takes up to limit timers of set whose fire time is at or before
// now (DefaultClaimLimit if limit <= 0), earliest first. Taking is atomic
// across processes: a timer is returned to one caller only, and its fire
// time moves to now+lease, so if the caller never completes it, it is due
// again after the lease. now is the caller's clock, the same clock used to
// arm timers.
func (c *Coordinator) ClaimDue(ctx context.Context, set string, now time.Time, lease time.Duration, limit int) ([]Timer, error) {
	if err := c.check("claim timers", set); err != nil {
		return nil, err
	}
	if err := checkDuration("claim timers", "lease", lease); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultClaimLimit
	}
	claim := token()
	got, err := c.drv.ClaimDue(ctx, set, ms(now), lease.Truncate(time.Millisecond), limit, claim)
	if err != nil {
		return nil, err
	}
	out := make([]Timer, len(got))
	for i, t := range got {
		out[i] = Timer{Key: t.Key, FireAt: t.FireAt, claim: t.Claim}
	}
	return out, nil
}

// CompleteTimer removes a timer returned by ClaimDue and reports true, but
// only if nothing happened to it since the claim. It reports false, leaving
// the timer as it is, if the timer was re-armed, cancelled, or claimed again
// after its lease ran out. A Timer not obtained from ClaimDue never
// completes.
func (c *Coordinator) CompleteTimer(ctx context.Context, set string, t Timer) (bool, error) {
	if err := c.check("complete timer", set, t.Key); err != nil {
		return false, err
	}
	if t.claim == "" {
		return false, nil
	}
	return c.drv.CompleteTimer(ctx, set, driver.Timer{Key: t.Key, FireAt: t.FireAt, Claim: t.claim})
}

// NextDue reports the earliest fire time in set (leased timers included, at
// their lease end) and false if the set is empty. Pollers use it to sleep
// until there is work.
func (c *Coordinator) NextDue(ctx context.Context, set string) (time.Time, bool, error) {
	if err := c.check("next due", set); err != nil {
		return time.Time{}, false, err
	}
	return c.drv.NextDue(ctx, set)
}

// Remember records key for ttl and reports true if it was not already
// recorded; a second call within ttl reports false. Use it to drop repeated
// messages (an HL7 MSH-10 seen twice, a redelivered event).
func (c *Coordinator) Remember(ctx context.Context, key string, ttl time.Duration) (first bool, err error) {
	if err := c.check("remember", key); err != nil {
		return false, err
	}
	if err := checkDuration("remember", "ttl", ttl); err != nil {
		return false, err
	}
	return c.drv.Remember(ctx, key, ttl.Truncate(time.Millisecond))
}

// Forget removes a remembered key so the next Remember reports true again.
func (c *Coordinator) Forget(ctx context.Context, key string) error {
	if err := c.check("forget", key); err != nil {
		return err
	}
	return c.drv.Forget(ctx, key)
}

// Lock is a held lock. It expires at the end of its ttl unless refreshed.
type Lock struct {
	c     *Coordinator
	key   string
	token string
}

// Key returns the locked key.
func (l *Lock) Key() string { return l.key }

// Refresh extends the hold to ttl from now. It returns ErrLockLost if the
// lock expired or another holder took it; the caller must then stop the
// work the lock protected.
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := l.c.check("refresh lock"); err != nil {
		return err
	}
	if err := checkDuration("refresh lock", "ttl", ttl); err != nil {
		return err
	}
	return l.c.drv.RefreshLock(ctx, l.key, l.token, ttl.Truncate(time.Millisecond))
}

// Unlock releases the lock. It returns ErrLockLost, and changes nothing, if
// the lock is no longer this holder's.
func (l *Lock) Unlock(ctx context.Context) error {
	if err := l.c.check("unlock"); err != nil {
		return err
	}
	return l.c.drv.Unlock(ctx, l.key, l.token)
}

// TryLock takes key for ttl if nobody holds it; ok is false if someone does.
func (c *Coordinator) TryLock(ctx context.Context, key string, ttl time.Duration) (l *Lock, ok bool, err error) {
	if err := c.check("lock", key); err != nil {
		return nil, false, err
	}
	if err := checkDuration("lock", "ttl", ttl); err != nil {
		return nil, false, err
	}
	tok := token()
	ok, err = c.drv.TryLock(ctx, key, tok, ttl.Truncate(time.Millisecond))
	if err != nil || !ok {
		return nil, false, err
	}
	return &Lock{c: c, key: key, token: tok}, true, nil
}

// Lock takes key for ttl, waiting until it is free or ctx ends. It retries
// with jittered exponential backoff from 5 ms up to a quarter of ttl (at
// most 500 ms), so waiters neither hammer the backend nor sleep far past
// the holder's release.
func (c *Coordinator) Lock(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	wait := 5 * time.Millisecond
	maxWait := min(max(ttl/4, wait), 500*time.Millisecond)
	for {
		l, ok, err := c.TryLock(ctx, key, ttl)
		if err != nil || ok {
			return l, err
		}
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("coord: lock: %w", context.Cause(ctx))
		case <-t.C:
		}
		wait = min(wait*2, maxWait)
	}
}

// Ping checks that the backend is reachable.
func (c *Coordinator) Ping(ctx context.Context) error {
	if err := c.check("ping"); err != nil {
		return err
	}
	return c.drv.Ping(ctx)
}

// Close releases the backend. Later calls return ErrClosed; closing twice
// is not an error.
func (c *Coordinator) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.drv.Close()
}

// token returns a random 128-bit token; locks and claims are told apart
// by it, so it must not repeat across processes.
func token() string {
	var b [16]byte
	if _, err := cryptorand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}
