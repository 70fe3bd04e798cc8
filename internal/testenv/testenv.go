// Package testenv gives tests their own slice of the shared services named by
// IMAGINGHUB_TEST_DATABASE_URL, IMAGINGHUB_TEST_REDIS_URL and
// IMAGINGHUB_TEST_NATS_URL: a fresh PostgreSQL database, a Redis key prefix,
// a NATS stream/subject prefix. Each is removed when the test ends.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// Env var names of the shared test services.
const (
	EnvDatabaseURL = "IMAGINGHUB_TEST_DATABASE_URL"
	EnvRedisURL    = "IMAGINGHUB_TEST_REDIS_URL"
	EnvNATSURL     = "IMAGINGHUB_TEST_NATS_URL"
)

// Unique returns a short random lower-case token for names that must not
// collide between concurrent test runs on the same services.
func Unique() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// PostgresURL creates a new, empty database on the server named by
// IMAGINGHUB_TEST_DATABASE_URL and returns its URL; the database is dropped
// when the test ends. The test is skipped when the variable is unset.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		tb.Skipf("PostgreSQL: %s not set", EnvDatabaseURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("PostgreSQL: connect %s: %v", EnvDatabaseURL, err)
	}
	defer admin.Close(context.Background())
	name := "ih_test_" + Unique()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("PostgreSQL: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Logf("PostgreSQL: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Logf("PostgreSQL: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("PostgreSQL: parse %s: %v", EnvDatabaseURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// RedisURL returns the Redis URL from IMAGINGHUB_TEST_REDIS_URL and a fresh
// key prefix ending in ":"; keys under the prefix are the test's to clean
// up. The test is skipped when the variable is unset.
func RedisURL(tb testing.TB) (redisURL, keyPrefix string) {
	tb.Helper()
	u := os.Getenv(EnvRedisURL)
	if u == "" {
		tb.Skipf("Redis: %s not set", EnvRedisURL)
	}
	prefix := "ihtest:" + Unique() + ":"
	// Registered first, so it runs after the test's own cleanups (which
	// stop the hub using these keys).
	tb.Cleanup(func() { deleteRedisPrefix(tb, u, prefix) })
	return u, prefix
}

func deleteRedisPrefix(tb testing.TB, u, prefix string) {
	opt, err := redis.ParseURL(u)
	if err != nil {
		tb.Logf("Redis cleanup: %v", err)
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

// NATSURL returns the external NATS URL from IMAGINGHUB_TEST_NATS_URL and a
// fresh prefix for subjects ("t<token>.") and stream names ("T<TOKEN>_").
// The test is skipped when the variable is unset.
func NATSURL(tb testing.TB) (natsURL, subjectPrefix, streamPrefix string) {
	tb.Helper()
	u := os.Getenv(EnvNATSURL)
	if u == "" {
		tb.Skipf("NATS: %s not set", EnvNATSURL)
	}
	tok := Unique()
	streamPrefix = "T" + strings.ToUpper(tok) + "_"
	tb.Cleanup(func() { deleteStreams(tb, u, streamPrefix) })
	return u, "t" + tok + ".", streamPrefix
}

func deleteStreams(tb testing.TB, u, prefix string) {
	nc, err := nats.Connect(u)
	if err != nil {
		tb.Logf("NATS cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var mine []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) {
			mine = append(mine, n)
		}
	}
	for _, n := range mine {
		if err := js.DeleteStream(ctx, n); err != nil {
			tb.Logf("NATS cleanup: delete stream %s: %v", n, err)
		}
	}
}

// Backends names the shared services a test should use: each is empty
// (the embedded default) unless its IMAGINGHUB_TEST_* variable is set, in
// which case the test gets its own database, key prefix and NATS prefixes.
type Backends struct {
	DatabaseURL    string
	RedisURL       string
	RedisKeyPrefix string
	NATSURL        string
	SubjectPrefix  string
	StreamPrefix   string
}

// External returns the external services configured for this run, each
// isolated for this test.
func External(tb testing.TB) Backends {
	tb.Helper()
	var b Backends
	if os.Getenv(EnvDatabaseURL) != "" {
		b.DatabaseURL = PostgresURL(tb)
	}
	if os.Getenv(EnvRedisURL) != "" {
		b.RedisURL, b.RedisKeyPrefix = RedisURL(tb)
	}
	if os.Getenv(EnvNATSURL) != "" {
		b.NATSURL, b.SubjectPrefix, b.StreamPrefix = NATSURL(tb)
	}
	return b
}

// String says which backends are in use, for test logs.
func (b Backends) String() string {
	s := []string{"catalog=sqlite", "coordination=memory", "nats=embedded"}
	if b.DatabaseURL != "" {
		s[0] = "catalog=postgres"
	}
	if b.RedisURL != "" {
		s[1] = "coordination=redis"
	}
	if b.NATSURL != "" {
		s[2] = "nats=external"
	}
	return strings.Join(s, " ")
}
