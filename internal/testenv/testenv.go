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
	return u, "ihtest:" + Unique() + ":"
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
	return u, "t" + tok + ".", "T" + strings.ToUpper(tok) + "_"
}
