package coord_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imaginghub/imaginghub/coord"
	"github.com/imaginghub/imaginghub/coord/coordtest"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

func newMemory(tb testing.TB) *coord.Coordinator {
	c, err := coord.Open(context.Background(), "", coord.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// newRedis opens a Coordinator on its own key prefix of the shared test
// Redis and deletes every key under the prefix when the test ends.
func newRedis(tb testing.TB) *coord.Coordinator {
	url, prefix := testenv.RedisURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := coord.Open(ctx, url, coord.Options{KeyPrefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Close()
		if err := deletePrefix(url, prefix); err != nil {
			tb.Errorf("clean up Redis prefix %s: %v", prefix, err)
		}
	})
	return c
}

func deletePrefix(url, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Unlink(ctx, batch...).Err()
	}
	return nil
}

func TestConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		coordtest.Run(t, newMemory)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		testenv.RedisURL(t) // skips, saying why, when no Redis is configured
		coordtest.Run(t, newRedis)
	})
}

func BenchmarkCoordinator(b *testing.B) {
	b.Run("memory", func(b *testing.B) { coordtest.RunBenchmarks(b, newMemory) })
	b.Run("redis", func(b *testing.B) {
		testenv.RedisURL(b)
		coordtest.RunBenchmarks(b, newRedis)
	})
}

func TestOpenErrors(t *testing.T) {
	const secret = "s3cr3t-pw"
	tests := []struct {
		name    string
		url     string
		wantIs  error
		wantMsg string
	}{
		{"unknown scheme", "memcached://user:" + secret + "@127.0.0.1:11211", coord.ErrInvalid, `"memcached"`},
		{"no scheme", "localhost:6379", coord.ErrInvalid, "scheme"},
		{"unparsable", "redis://user:" + secret + "@[::1", coord.ErrInvalid, "invalid URL"},
		{"bad database", "redis://:" + secret + "@127.0.0.1:6379/notanumber", coord.ErrInvalid, "database"},
		// Port 1 on loopback refuses at once: unreachable, not misconfigured.
		{"unreachable", "redis://:" + secret + "@127.0.0.1:1/0?dial_timeout=2s&max_retries=-1", coord.ErrUnavailable, "127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := coord.Open(ctx, tc.url, coord.Options{})
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to mention %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("err leaks the password: %q", err)
			}
		})
	}
}

func TestOpenRedisPing(t *testing.T) {
	url, prefix := testenv.RedisURL(t)
	c, err := coord.Open(t.Context(), url, coord.Options{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
