package rediscoord_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imaginghub/imaginghub/coord"
	"github.com/imaginghub/imaginghub/coord/driver"
	"github.com/imaginghub/imaginghub/coord/rediscoord"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

func client(t *testing.T) (*redis.Client, string) {
	t.Helper()
	url, prefix := testenv.RedisURL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() {
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("clean up %s: %v", prefix, err)
		}
		rdb.Close()
	})
	return rdb, prefix
}

// TestKeyLayout pins the documented key names: operators inspect them with
// redis-cli, and a Cluster needs both keys of a timer set in one slot.
func TestKeyLayout(t *testing.T) {
	rdb, prefix := client(t)
	ctx := t.Context()
	c := coord.New(rediscoord.New(rdb, rediscoord.Options{KeyPrefix: prefix}))
	now := time.UnixMilli(1_770_000_000_000)
	if err := c.ArmTimer(ctx, "stable", "1.2.840.99.1", now); err != nil {
		t.Fatal(err)
	}
	if err := c.ArmTimer(ctx, "stable", "1.2.840.99.2", now); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClaimDue(ctx, "stable", now, time.Minute, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Remember(ctx, "msg-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.TryLock(ctx, "job", time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{prefix + "d:msg-1", prefix + "l:job", prefix + "t{stable}", prefix + "t{stable}:c"}
	if !slices.Equal(got, want) {
		t.Fatalf("keys = %q, want %q", got, want)
	}
	score, err := rdb.ZScore(ctx, prefix+"t{stable}", "1.2.840.99.2").Result()
	if err != nil || int64(score) != now.UnixMilli() {
		t.Fatalf("score = %v, %v; want fire time in Unix ms %d", score, err, now.UnixMilli())
	}
	if ttl := rdb.PTTL(ctx, prefix+"d:msg-1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("dedupe key PTTL = %v, want within (0, 1m]", ttl)
	}
}

// TestCloseKeepsCallerClient: a client handed to New stays usable after the
// driver is closed.
func TestCloseKeepsCallerClient(t *testing.T) {
	rdb, prefix := client(t)
	c := coord.New(rediscoord.New(rdb, rediscoord.Options{KeyPrefix: prefix}))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("caller's client after Close: %v", err)
	}
}

// TestUnavailable: a peer that accepts and hangs up is reported as
// ErrUnavailable, the error callers back off on, for every operation.
func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	c := coord.New(rediscoord.New(rdb, rediscoord.Options{}))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"ping", func() error { return c.Ping(ctx) }},
		{"arm", func() error { return c.ArmTimer(ctx, "s", "k", time.Now()) }},
		{"claim", func() error { _, err := c.ClaimDue(ctx, "s", time.Now(), time.Second, 1); return err }},
		{"next due", func() error { _, _, err := c.NextDue(ctx, "s"); return err }},
		{"remember", func() error { _, err := c.Remember(ctx, "k", time.Second); return err }},
		{"lock", func() error { _, _, err := c.TryLock(ctx, "k", time.Second); return err }},
	}
	for _, tc := range calls {
		if err := tc.call(); !errors.Is(err, coord.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", tc.name, err)
		}
	}
}

// TestServerErrorNotUnavailable: a reply error that retrying cannot fix
// (the timer set's key holds another type) is not ErrUnavailable.
func TestServerErrorNotUnavailable(t *testing.T) {
	rdb, prefix := client(t)
	ctx := t.Context()
	if err := rdb.Set(ctx, prefix+"t{s}", "not a sorted set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var d driver.Coordinator = rediscoord.New(rdb, rediscoord.Options{KeyPrefix: prefix})
	err := d.ArmTimer(ctx, "s", "k", time.Now())
	if err == nil || errors.Is(err, driver.ErrUnavailable) {
		t.Fatalf("err = %v, want a WRONGTYPE error that is not ErrUnavailable", err)
	}
}
