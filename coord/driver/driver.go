// Package driver defines the interface a coordination backend implements.
//
// Application code uses the portable type in package coord; this package is
// for backend authors. The portable layer validates arguments, truncates
// times to milliseconds, generates lock and claim tokens and maps closed
// coordinators to coord.ErrClosed, so a driver may assume well-formed input.
package driver

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors shared by drivers and re-exported by package coord.
var (
	// ErrLockLost reports that a lock is no longer held by the caller's
	// token: it expired or someone else took it.
	ErrLockLost = errors.New("coord: lock not held")
	// ErrUnavailable wraps failures to reach the backing service.
	ErrUnavailable = errors.New("coord: backend unavailable")
	// ErrInvalid reports an argument or configuration out of range.
	ErrInvalid = errors.New("coord: invalid argument")
)

// Timer is one keyed timer of a set, as returned by ClaimDue.
type Timer struct {
	Key    string
	FireAt time.Time
	// Claim is the opaque token of the ClaimDue call that returned the
	// timer; CompleteTimer removes the timer only while it still holds it.
	Claim string
}

// Coordinator is the contract every backend satisfies. Times carry
// millisecond resolution; durations are at least one millisecond.
type Coordinator interface {
	// ArmTimer sets the fire time of set/key, replacing any earlier arming
	// and any claim on it.
	ArmTimer(ctx context.Context, set, key string, fireAt time.Time) error
	// CancelTimer removes set/key; removing an absent timer is not an error.
	CancelTimer(ctx context.Context, set, key string) error
	// ClaimDue atomically takes up to limit timers of set with FireAt <= now,
	// sets each one's fire time to now+lease and records claim on it.
	ClaimDue(ctx context.Context, set string, now time.Time, lease time.Duration, limit int, claim string) ([]Timer, error)
	// CompleteTimer removes t if its stored claim is still t.Claim.
	CompleteTimer(ctx context.Context, set string, t Timer) (bool, error)
	// NextDue reports the earliest fire time in set.
	NextDue(ctx context.Context, set string) (time.Time, bool, error)

	// Remember records key for ttl unless it is already recorded; first
	// reports whether this call recorded it.
	Remember(ctx context.Context, key string, ttl time.Duration) (first bool, err error)
	// Forget removes key.
	Forget(ctx context.Context, key string) error

	// TryLock takes key for ttl with token if nobody holds it.
	TryLock(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	// RefreshLock extends key's hold to ttl from now if token holds it,
	// else returns ErrLockLost.
	RefreshLock(ctx context.Context, key, token string, ttl time.Duration) error
	// Unlock releases key if token holds it, else returns ErrLockLost.
	Unlock(ctx context.Context, key, token string) error

	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the driver's resources.
	Close() error
}
