package catalog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// dialect holds what differs between the backends. The SQL in this package
// is written once, with "?" placeholders, in the subset both databases
// share (INSERT … ON CONFLICT, RETURNING).
type dialect struct {
	name  string
	goose goose.Dialect
	// rebind turns "?" placeholders into the backend's style.
	rebind func(string) string
	// lockRows is appended to a SELECT whose rows the transaction will
	// update and that concurrent transactions should skip.
	lockRows string
	// forUpdate is appended to a SELECT of a row the transaction will
	// update.
	forUpdate string
	// timeArg encodes a timestamp column value.
	timeArg func(time.Time) any
	// unavailable reports whether err means the database cannot serve now.
	unavailable func(error) bool
	// retryable reports whether a transaction failed only because of a
	// concurrent one and may be run again.
	retryable func(error) bool
}

// wrap adds ErrUnavailable or ErrClosed to driver errors that mean so.
func (d *dialect) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case strings.Contains(err.Error(), "sql: database is closed"):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), d.unavailable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// sqliteTimeLayout is fixed width (always six fractional digits, always
// "Z") so that timestamps stored as text compare correctly as strings.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

var sqliteDialect = &dialect{
	name:   "sqlite",
	goose:  goose.DialectSQLite3,
	rebind: func(q string) string { return q },
	// A SQLite write transaction already excludes every other writer.
	lockRows:  "",
	forUpdate: "",
	timeArg:   func(t time.Time) any { return t.UTC().Format(sqliteTimeLayout) },
	unavailable: func(err error) bool {
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return false
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM,
			sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL:
			return true
		}
		return false
	},
	retryable: func(error) bool { return false },
}

var postgresDialect = &dialect{
	name:      "postgres",
	goose:     goose.DialectPostgres,
	rebind:    rebindDollar,
	lockRows:  " FOR UPDATE SKIP LOCKED",
	forUpdate: " FOR UPDATE",
	timeArg:   func(t time.Time) any { return t.UTC() },
	unavailable: func(err error) bool {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			// Class 08 connection exception, 53 insufficient resources,
			// 57P01..57P03 shutdown / cannot connect now (PostgreSQL
			// Appendix A, "Error Codes").
			return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53") ||
				pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
		}
		var ce *pgconn.ConnectError
		var ne net.Error
		return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
	},
	retryable: func(err error) bool {
		var pe *pgconn.PgError
		// 40001 serialization_failure, 40P01 deadlock_detected.
		return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
	},
}

// rebindDollar rewrites "?" placeholders as $1, $2, … . The package's SQL
// has no "?" inside string literals.
func rebindDollar(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// isBusy reports an SQLite "database is locked" error.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// openSQLite opens the file at path with one writer connection and a read
// pool.
func openSQLite(ctx context.Context, path string, opts Options) (*Catalog, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("catalog: create data dir: %w", err)
		}
	}
	// Pragmas (https://sqlite.org/pragma.html):
	//   journal_mode=WAL    readers never block the writer and vice versa;
	//   synchronous=FULL    a commit is on disk when it returns, so a
	//                       C-STORE Success follows a durable commit;
	//   foreign_keys=ON     enforce the patient/study/series/instance refs;
	//   busy_timeout        wait, not fail, while another process writes.
	busy := strconv.FormatInt(opts.BusyTimeout.Milliseconds(), 10)
	base := "file:" + path + "?_pragma=busy_timeout(" + busy + ")" +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)"
	// BEGIN IMMEDIATE takes the write lock at the start of the
	// transaction; a deferred transaction that later upgrades can fail
	// with SQLITE_BUSY regardless of busy_timeout. temp_store=MEMORY on
	// the writer keeps the statement journal of each savepoint (one per
	// job of a group commit) in memory: past 64 KiB SQLite would spill it
	// to a temporary file, a write per page, although it only serves to
	// roll back one job.
	writer, err := sql.Open("sqlite", base+"&_txlock=immediate&_pragma=temp_store(MEMORY)")
	if err != nil {
		return nil, fmt.Errorf("catalog: open SQLite %s: %w", path, err)
	}
	// One connection: writes are serialized in the process, in order of
	// arrival, without lock contention inside SQLite.
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// Opening the first connection switches the file to WAL, which needs
	// the lock for a moment; a process opening the same file at that
	// instant can get SQLITE_BUSY without the busy handler being asked, so
	// a busy first connection is tried again.
	err = writer.PingContext(ctx)
	for attempt := 1; err != nil && isBusy(err) && attempt < 10 && ctx.Err() == nil; attempt++ {
		time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
		err = writer.PingContext(ctx)
	}
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("catalog: open SQLite %s: %w", path, sqliteDialect.wrap(err))
	}
	reader, err := sql.Open("sqlite", base+"&_pragma=query_only(ON)")
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("catalog: open SQLite %s: %w", path, err)
	}
	reader.SetMaxOpenConns(opts.MaxConns)
	reader.SetMaxIdleConns(opts.MaxConns)
	c := &Catalog{
		d:      sqliteDialect,
		writer: writer,
		reader: reader,
		log:    opts.Logger,
		closer: func() error { return errors.Join(reader.Close(), writer.Close()) },
	}
	c.startGroup()
	return c, nil
}

// openPostgres opens a pgx pool and serves it through database/sql so the
// same SQL code runs on both backends.
func openPostgres(ctx context.Context, rawURL string, opts Options) (*Catalog, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx's parse errors may quote the connection string; report only
		// the redacted URL.
		return nil, fmt.Errorf("%w: PostgreSQL URL %s does not parse", ErrInvalid, redact(rawURL))
	}
	cfg.MaxConns = int32(opts.MaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog: open PostgreSQL %s: %w", redact(rawURL), postgresDialect.wrap(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: connect PostgreSQL %s: %w", redact(rawURL), postgresDialect.wrap(err))
	}
	db := stdlib.OpenDBFromPool(pool)
	c := &Catalog{
		d:      postgresDialect,
		writer: db,
		reader: db,
		log:    opts.Logger,
		closer: func() error {
			err := db.Close()
			pool.Close()
			return err
		},
	}
	return c, nil
}

// dbTime scans a timestamp column written with dialect.timeArg: a
// time.Time from PostgreSQL, fixed-layout text from SQLite. NULL scans as
// the zero time.
type dbTime struct{ t time.Time }

func (d *dbTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		d.t = time.Time{}
	case time.Time:
		d.t = v.UTC()
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("catalog: cannot scan %T as a timestamp", v)
	}
	return nil
}

func (d *dbTime) parse(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("catalog: timestamp %q: %w", s, err)
	}
	d.t = t.UTC()
	return nil
}
