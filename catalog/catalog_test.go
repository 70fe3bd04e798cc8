package catalog_test

import (
	"log/slog"
	"testing"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/catalog/catalogtest"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func sqliteDB(t *testing.T) (string, catalog.Options) {
	return "", catalog.Options{DataDir: t.TempDir(), Logger: testLogger(t)}
}

func postgresDB(t *testing.T) (string, catalog.Options) {
	return testenv.PostgresURL(t), catalog.Options{MaxConns: 8, Logger: testLogger(t)}
}

// TestConformance runs the one suite against every backend: SQLite always,
// PostgreSQL when IMAGINGHUB_TEST_DATABASE_URL is set.
func TestConformance(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { catalogtest.Run(t, sqliteDB) })
	t.Run("postgres", func(t *testing.T) {
		testenv.PostgresURL(t) // skip the whole backend, visibly, when unset
		catalogtest.Run(t, postgresDB)
	})
}
