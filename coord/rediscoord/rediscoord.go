// Package rediscoord is the Redis coordination driver: every hub process
// pointed at the same Redis (or Redis Cluster) shares timers, dedupe keys
// and locks.
//
// Key layout under the key prefix P:
//
//	P t{set}     sorted set: member = timer key, score = fire time (Unix ms)
//	P t{set}:c   hash: timer key -> claim token of its current claim
//	P d:key      dedupe key (SET NX PX)
//	P l:key      lock key, value = holder token (SET NX PX)
//
// The two keys of a timer set share the hash tag {set}, so the Lua scripts
// that touch both run on one Cluster slot. Every read-modify-write is one
// Lua script, which Redis runs atomically; that is what makes ClaimDue
// exclusive and CompleteTimer and Unlock compare-and-delete across
// processes. Lock and dedupe expiry use the Redis server's clock.
package rediscoord

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imaginghub/imaginghub/coord/driver"
)

// DefaultKeyPrefix is used when Options.KeyPrefix is empty.
const DefaultKeyPrefix = "ih:"

// Options configures a Driver.
type Options struct {
	// KeyPrefix is prepended to every key; DefaultKeyPrefix if empty. Give
	// each hub deployment sharing one Redis its own.
	KeyPrefix string
}

// Driver implements driver.Coordinator on Redis.
type Driver struct {
	rdb       redis.UniversalClient
	prefix    string
	ownClient bool
}

var _ driver.Coordinator = (*Driver)(nil)

// New returns a driver using rdb. Close leaves rdb open; it stays the
// caller's.
func New(rdb redis.UniversalClient, opts Options) *Driver {
	p := opts.KeyPrefix
	if p == "" {
		p = DefaultKeyPrefix
	}
	return &Driver{rdb: rdb, prefix: p}
}

// OpenURL connects to the Redis named by a redis:// or rediss:// URL (the
// form go-redis's ParseURL accepts) and pings it. Errors never contain the
// URL's password. Close closes the connection.
func OpenURL(ctx context.Context, rawURL string, opts Options) (*Driver, error) {
	ro, err := redis.ParseURL(rawURL)
	if err != nil {
		// url.Error.Error() repeats the whole URL, password included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("rediscoord: URL: %v: %w", err, driver.ErrInvalid)
	}
	d := New(redis.NewClient(ro), opts)
	d.ownClient = true
	if err := d.Ping(ctx); err != nil {
		d.rdb.Close()
		return nil, err
	}
	return d, nil
}

func (d *Driver) timerKeys(set string) []string {
	z := d.prefix + "t{" + set + "}"
	return []string{z, z + ":c"}
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// wrap classifies err: server replies that retrying elsewhere cannot fix
// (WRONGTYPE, script errors) pass through; context ends pass through;
// everything else — dial failures, timeouts, LOADING, READONLY,
// CLUSTERDOWN, TRYAGAIN, MASTERDOWN — is ErrUnavailable.
func wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("rediscoord: %s: %w", op, context.Cause(ctx))
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !transient(err) {
		return fmt.Errorf("rediscoord: %s: %w", op, err)
	}
	return fmt.Errorf("rediscoord: %s: %w: %w", op, driver.ErrUnavailable, err)
}

func transient(err error) bool {
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) ||
		redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) || redis.IsMaxClientsError(err)
}

// armScript sets the score and voids any claim, so a claimer's complete
// fails after a re-arm. KEYS: zset, claims. ARGV: fire ms, member.
var armScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
`)

// cancelScript. KEYS: zset, claims. ARGV: member.
var cancelScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

// claimScript leases due members. ZRANGEBYSCORE rather than ZRANGE BYSCORE
// keeps Redis before 6.2 working. KEYS: zset, claims. ARGV: now ms, lease
// end ms, limit, claim token.
var claimScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], m)
  redis.call('HSET', KEYS[2], m, ARGV[4])
end
return due
`)

// completeScript removes the member only under the caller's claim.
// KEYS: zset, claims. ARGV: member, claim token.
var completeScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
`)

// refreshScript extends a lock held by the token. KEYS: lock. ARGV: token, ttl ms.
var refreshScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// unlockScript deletes a lock held by the token. KEYS: lock. ARGV: token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// ArmTimer implements driver.Coordinator.
func (d *Driver) ArmTimer(ctx context.Context, set, key string, fireAt time.Time) error {
	err := armScript.Run(ctx, d.rdb, d.timerKeys(set), ms(fireAt), key).Err()
	return wrap(ctx, "arm timer", err)
}

// CancelTimer implements driver.Coordinator.
func (d *Driver) CancelTimer(ctx context.Context, set, key string) error {
	err := cancelScript.Run(ctx, d.rdb, d.timerKeys(set), key).Err()
	return wrap(ctx, "cancel timer", err)
}

// ClaimDue implements driver.Coordinator.
func (d *Driver) ClaimDue(ctx context.Context, set string, now time.Time, lease time.Duration, limit int, claim string) ([]driver.Timer, error) {
	until := now.Add(lease)
	keys, err := claimScript.Run(ctx, d.rdb, d.timerKeys(set), ms(now), ms(until), limit, claim).StringSlice()
	if err != nil {
		return nil, wrap(ctx, "claim timers", err)
	}
	out := make([]driver.Timer, len(keys))
	for i, k := range keys {
		out[i] = driver.Timer{Key: k, FireAt: until, Claim: claim}
	}
	return out, nil
}

// CompleteTimer implements driver.Coordinator.
func (d *Driver) CompleteTimer(ctx context.Context, set string, t driver.Timer) (bool, error) {
	n, err := completeScript.Run(ctx, d.rdb, d.timerKeys(set), t.Key, t.Claim).Int()
	if err != nil {
		return false, wrap(ctx, "complete timer", err)
	}
	return n == 1, nil
}

// NextDue implements driver.Coordinator.
func (d *Driver) NextDue(ctx context.Context, set string) (time.Time, bool, error) {
	zs, err := d.rdb.ZRangeWithScores(ctx, d.timerKeys(set)[0], 0, 0).Result()
	if err != nil {
		return time.Time{}, false, wrap(ctx, "next due", err)
	}
	if len(zs) == 0 {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(int64(zs[0].Score)), true, nil
}

// Remember implements driver.Coordinator.
func (d *Driver) Remember(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := d.rdb.SetNX(ctx, d.prefix+"d:"+key, 1, ttl).Result()
	return ok, wrap(ctx, "remember", err)
}

// Forget implements driver.Coordinator.
func (d *Driver) Forget(ctx context.Context, key string) error {
	return wrap(ctx, "forget", d.rdb.Del(ctx, d.prefix+"d:"+key).Err())
}

// TryLock implements driver.Coordinator.
func (d *Driver) TryLock(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	ok, err := d.rdb.SetNX(ctx, d.prefix+"l:"+key, token, ttl).Result()
	return ok, wrap(ctx, "lock", err)
}

// RefreshLock implements driver.Coordinator.
func (d *Driver) RefreshLock(ctx context.Context, key, token string, ttl time.Duration) error {
	n, err := refreshScript.Run(ctx, d.rdb, []string{d.prefix + "l:" + key}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return wrap(ctx, "refresh lock", err)
	}
	if n != 1 {
		return driver.ErrLockLost
	}
	return nil
}

// Unlock implements driver.Coordinator.
func (d *Driver) Unlock(ctx context.Context, key, token string) error {
	n, err := unlockScript.Run(ctx, d.rdb, []string{d.prefix + "l:" + key}, token).Int()
	if err != nil {
		return wrap(ctx, "unlock", err)
	}
	if n != 1 {
		return driver.ErrLockLost
	}
	return nil
}

// Ping implements driver.Coordinator.
func (d *Driver) Ping(ctx context.Context) error {
	return wrap(ctx, "ping", d.rdb.Ping(ctx).Err())
}

// Close implements driver.Coordinator.
func (d *Driver) Close() error {
	if !d.ownClient {
		return nil
	}
	return d.rdb.Close()
}
