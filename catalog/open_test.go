package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenErrors(t *testing.T) {
	// A port nothing listens on: bind, note it, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()

	tests := []struct {
		name     string
		url      string
		opts     Options
		want     error
		contains string
	}{
		{"UnknownScheme", "mysql://user:s3cret@db.example/catalog", Options{}, ErrInvalid, `"mysql"`},
		{"NoDataDir", "", Options{}, ErrInvalid, "DataDir"},
		{"SQLiteURLWithoutPath", "sqlite:", Options{}, ErrInvalid, "without a path"},
		{"BadPostgresURL", "postgres://user:s3cret@host:notaport/db", Options{}, ErrInvalid, "postgres://<unparsable>"},
		{"PostgresRedacted", "postgres://user:s3cret@" + closedAddr + "/db?connect_timeout=2&sslmode=disable", Options{}, ErrUnavailable, "user:xxxxx@"},
		{"PostgresDown", "postgres://user:s3cret@" + closedAddr + "/db?connect_timeout=2", Options{}, ErrUnavailable, closedAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Open(ctx, tt.url, tt.opts)
			if err == nil {
				c.Close()
				t.Fatalf("Open(%q) succeeded", tt.url)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Open: err = %v, want %v", err, tt.want)
			}
			if msg := err.Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, tt.contains) {
				t.Errorf("Open: error %q must name %q and not the password", msg, tt.contains)
			}
		})
	}
}

// TestSQLiteSettings checks the pragmas durability and integrity rest on.
func TestSQLiteSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "cat.db")
	c, err := Open(context.Background(), "sqlite:"+path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	if c.Backend() != "sqlite" {
		t.Errorf("Backend = %q", c.Backend())
	}
	tests := []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{c.writer, "journal_mode", "wal"},
		{c.writer, "synchronous", "2"}, // FULL
		{c.writer, "temp_store", "2"},  // MEMORY: savepoint journals stay in memory
		{c.writer, "foreign_keys", "1"},
		{c.writer, "busy_timeout", "10000"},
		{c.reader, "query_only", "1"},
		{c.reader, "foreign_keys", "1"},
	}
	for _, tt := range tests {
		var got string
		if err := tt.db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
	if _, err := c.reader.Exec(`DELETE FROM outbox`); err == nil {
		t.Errorf("read pool accepted a write")
	}
}

// TestSQLiteBusy: when another process holds the write lock past
// BusyTimeout, a store fails with ErrUnavailable (ingest answers 0xA700)
// instead of hanging.
func TestSQLiteBusy(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(context.Background(), "", Options{DataDir: dir, BusyTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dir, DefaultFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	rec := InstanceRecord{
		Study:    Study{StudyInstanceUID: "2.25.1"},
		Series:   Series{SeriesInstanceUID: "2.25.1.1"},
		Instance: Instance{SOPInstanceUID: "2.25.1.1.1", BlobKey: "k"},
	}
	_, err = c.StoreInstance(context.Background(), rec, KeepFirst)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("StoreInstance under a foreign write lock: err = %v, want ErrUnavailable", err)
	}
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StoreInstance(context.Background(), rec, KeepFirst); err != nil {
		t.Errorf("StoreInstance after the lock is released: %v", err)
	}
}

func TestRebindDollar(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ?", "a = $1"},
		{"(?, ?, ?)", "($1, $2, $3)"},
		{"x IN (" + placeholders(12) + ")", "x IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"},
	}
	for _, tt := range tests {
		if got := rebindDollar(tt.in); got != tt.want {
			t.Errorf("rebindDollar(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestURLScheme(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://h/db", "postgres"},
		{"PostgreSQL://h/db", "postgresql"},
		{"sqlite:/x.db", "sqlite"},
		{"/var/lib/x.db", ""},
		{"C:/data/x.db", "c"},
		{"1abc://x", ""},
	}
	for _, tt := range tests {
		if got := urlScheme(tt.in); got != tt.want {
			t.Errorf("urlScheme(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestUpgradeAppliesLowerNumberedMigration: a database created before a
// migration numbered below its current version existed gets it at the next
// Open.
func TestUpgradeAppliesLowerNumberedMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	c, err := Open(ctx, "sqlite:"+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	// Make it a database from before 00101 and 00012: their changes and
	// their version rows gone, later migrations applied.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE orders DROP COLUMN account_number`,
		`ALTER TABLE orders DROP COLUMN account_assigning_authority`,
		`ALTER TABLE registry_visits DROP COLUMN account_number`,
		`ALTER TABLE registry_visits DROP COLUMN account_assigning_authority`,
		`ALTER TABLE registry_patients DROP COLUMN account_number`,
		`ALTER TABLE registry_patients DROP COLUMN account_assigning_authority`,
		`DELETE FROM catalog_schema_version WHERE version_id IN (101, 12)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := downgradeStableAnnounced(ctx, db); err != nil {
		t.Fatal(err)
	}
	db.Close()

	c, err = Open(ctx, "sqlite:"+path, Options{})
	if err != nil {
		t.Fatalf("Open of a database missing lower-numbered migrations: %v", err)
	}
	defer c.Close()
	var n int
	if err := c.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM catalog_schema_version WHERE version_id IN (101, 12)`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("versions 12 and 101 recorded %d times, %v; want 2", n, err)
	}
	if _, err := c.reader.QueryContext(ctx, `SELECT account_number FROM orders`); err != nil {
		t.Fatalf("00101 not applied: %v", err)
	}
}

// downgradeStableAnnounced undoes 00012 on SQLite.
func downgradeStableAnnounced(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		`DROP INDEX studies_awaiting_stable`,
		`ALTER TABLE studies DROP COLUMN stable_announced`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}
