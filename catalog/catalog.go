package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Sentinel errors. Errors returned by the package wrap one of these where
// one applies; test with errors.Is.
var (
	// ErrNotFound: no row matches the key asked for.
	ErrNotFound = errors.New("catalog: not found")
	// ErrUnavailable: the database cannot be reached, is shutting down or
	// is out of resources. The operation may succeed later.
	ErrUnavailable = errors.New("catalog: database unavailable")
	// ErrDuplicate: the SOP Instance is already stored and the
	// DuplicatePolicy is Reject.
	ErrDuplicate = errors.New("catalog: duplicate SOP instance")
	// ErrConflict: the SOP Instance UID is already filed under another
	// series, so a Replace would move it between studies.
	ErrConflict = errors.New("catalog: SOP instance filed under another series")
	// ErrInvalid: an argument is missing or malformed.
	ErrInvalid = errors.New("catalog: invalid argument")
	// ErrClosed: the Catalog has been closed.
	ErrClosed = errors.New("catalog: closed")
)

// DefaultFileName is the SQLite file name under Options.DataDir.
const DefaultFileName = "catalog.db"

// Options configure Open. The zero value is valid for PostgreSQL; SQLite
// needs DataDir unless the URL names the file.
type Options struct {
	// DataDir is the directory of the SQLite file when the URL is empty.
	// It is created if missing.
	DataDir string
	// MaxConns bounds the PostgreSQL pool and the SQLite read pool.
	// Zero means 16.
	MaxConns int
	// BusyTimeout is how long SQLite waits for a lock held by another
	// process before failing with ErrUnavailable. Zero means 10s.
	BusyTimeout time.Duration
	// Logger receives operational messages (never patient data above
	// debug level). Nil means slog.Default().
	Logger *slog.Logger
}

// Catalog is the hub's catalog database. It is safe for concurrent use.
type Catalog struct {
	d      *dialect
	writer *sql.DB // writes; on SQLite a single connection
	reader *sql.DB // reads; the same pool as writer on PostgreSQL
	log    *slog.Logger
	closer func() error

	closeOnce sync.Once
	closeErr  error

	stmts  sync.Map // SQLite: query → *sql.Stmt prepared on the writer
	nstmts atomic.Int64

	group group // SQLite: the group commit queue of the writer
}

// Open connects to the catalog named by rawURL, applies pending schema
// migrations and returns it ready for use.
//
//	""                          SQLite file opts.DataDir/catalog.db
//	"sqlite:/path/to/file.db"   SQLite file at that path
//	"postgres://…", "postgresql://…"  PostgreSQL (pgx connection string)
//
// Any other scheme is an error wrapping ErrInvalid. Errors never contain the
// URL's password.
func Open(ctx context.Context, rawURL string, opts Options) (*Catalog, error) {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var (
		c   *Catalog
		err error
	)
	switch scheme := urlScheme(rawURL); scheme {
	case "":
		if opts.DataDir == "" {
			return nil, fmt.Errorf("%w: SQLite catalog needs Options.DataDir or a sqlite: URL", ErrInvalid)
		}
		c, err = openSQLite(ctx, filepath.Join(opts.DataDir, DefaultFileName), opts)
	case "sqlite", "sqlite3", "file":
		path := strings.TrimPrefix(rawURL[len(scheme)+1:], "//")
		if path == "" {
			return nil, fmt.Errorf("%w: %s URL without a path", ErrInvalid, scheme)
		}
		c, err = openSQLite(ctx, path, opts)
	case "postgres", "postgresql":
		c, err = openPostgres(ctx, rawURL, opts)
	default:
		return nil, fmt.Errorf("%w: unsupported catalog URL scheme %q (want postgres://, postgresql://, sqlite: or empty for the embedded SQLite)", ErrInvalid, scheme)
	}
	if err != nil {
		return nil, err
	}
	if err := c.migrate(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// urlScheme returns the lower-cased scheme of s, or "" when s has none.
// It does not use url.Parse so that a malformed URL cannot echo its
// password back in an error.
func urlScheme(s string) string {
	i := strings.Index(s, ":")
	if i <= 0 {
		return ""
	}
	scheme := s[:i]
	for j, r := range scheme {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
			j > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')
		if !ok {
			return ""
		}
	}
	return strings.ToLower(scheme)
}

// redact returns rawURL with any password replaced, for error messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return urlScheme(rawURL) + "://<unparsable>"
	}
	return u.Redacted()
}

// migrationLockID is the PostgreSQL advisory lock key goose holds while it
// migrates the catalog ("ihcatalg" in ASCII), distinct from goose's default
// so that other schemas migrated with goose in the same database do not
// wait on it.
const migrationLockID int64 = 0x6968636174616c67

func (c *Catalog) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrationFS, "migrations/"+c.d.name)
	if err != nil {
		return fmt.Errorf("catalog: migrations: %w", err)
	}
	popts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName("catalog_schema_version"),
		goose.WithSlog(c.log),
		// Each domain numbers its migrations in its own range (catalog
		// 000xx, HL7 001xx, worklist 002xx, …), so a release can bring a
		// migration numbered below one a database already has; it is
		// applied, not refused. Migrations in different ranges touch
		// different tables and never depend on a later number.
		goose.WithAllowOutofOrder(true),
	}
	if c.d.name == "postgres" {
		// A session advisory lock makes concurrent starts safe: the second
		// process waits, then finds nothing left to apply.
		l, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
		if err != nil {
			return fmt.Errorf("catalog: migration lock: %w", err)
		}
		popts = append(popts, goose.WithSessionLocker(l))
	}
	p, err := goose.NewProvider(c.d.goose, c.writer, fsys, popts...)
	if err != nil {
		return fmt.Errorf("catalog: migrations: %w", err)
	}
	res, err := p.Up(ctx)
	for attempt := 1; err != nil && c.d.name == "sqlite" && attempt < 5 && ctx.Err() == nil; attempt++ {
		// goose has no lock for SQLite. Each migration runs in a BEGIN
		// IMMEDIATE transaction, so two processes opening a new file at
		// once serialize there, and the later one fails on tables the
		// earlier created. Running Up again finds the version recorded
		// and has nothing left to do; a real error fails again.
		time.Sleep(time.Duration(attempt) * 50 * time.Millisecond)
		res, err = p.Up(ctx)
	}
	if err != nil {
		return fmt.Errorf("catalog: apply migrations: %w", c.d.wrap(err))
	}
	for _, r := range res {
		c.log.InfoContext(ctx, "catalog migration applied", "backend", c.d.name, "version", r.Source.Version, "duration", r.Duration)
	}
	return nil
}

// Backend names the database in use: "sqlite" or "postgres".
func (c *Catalog) Backend() string { return c.d.name }

// Ping checks that the database answers.
func (c *Catalog) Ping(ctx context.Context) error {
	if err := c.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("catalog: ping: %w", c.d.wrap(err))
	}
	if c.reader != c.writer {
		if err := c.reader.PingContext(ctx); err != nil {
			return fmt.Errorf("catalog: ping: %w", c.d.wrap(err))
		}
	}
	return nil
}

// Close releases the connections. Operations after Close fail.
func (c *Catalog) Close() error {
	c.closeOnce.Do(func() {
		c.stopGroup()
		c.closeErr = c.closer()
	})
	return c.closeErr
}
