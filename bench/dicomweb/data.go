package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
)

// load opens the catalog the hub will serve (applying its migrations) and
// bulk-inserts the synthetic archive.
func load(ctx context.Context, dataDir, database string, studies int, stdout io.Writer) error {
	if database == "" && dataDir == "" {
		return fmt.Errorf("load: -data-dir or -database is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	began := time.Now()
	c, err := catalog.Open(ctx, database, catalog.Options{DataDir: dataDir, Logger: log})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.BulkLoadSynthetic(ctx, studies); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded %d synthetic studies (%d patients) in %.1f s\n", studies, max(studies/2, 1), time.Since(began).Seconds())
	return nil
}

// writeArchive writes the synthetic archive of catalog.SyntheticStudyAt as
// Part 10 files, one small CT instance per study, with the same patients,
// dates and UIDs the bulk loader inserts, so that a peer loaded by C-STORE
// holds exactly what a bulk-loaded hub holds.
func writeArchive(dir string, studies, size int, stdout io.Writer) error {
	if dir == "" || studies <= 0 {
		return fmt.Errorf("synth: -dir and -studies > 0 are required")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for i := range studies {
		s := catalog.SyntheticStudyAt(i, studies)
		o := synth.Options{
			Seed:              int64(i),
			PatientName:       s.PatientName,
			PatientID:         s.PatientID,
			PatientSex:        "O",
			StudyInstanceUID:  s.StudyInstanceUID,
			SeriesInstanceUID: s.SeriesInstanceUID,
			SOPInstanceUID:    s.SOPInstanceUID,
			AccessionNumber:   s.AccessionNumber,
			StudyDate:         s.StudyDate,
			StudyTime:         s.StudyTime,
			StudyDescription:  "BENCH STUDY",
			Rows:              size,
			Columns:           size,
		}
		if err := writeFile(filepath.Join(dir, s.SOPInstanceUID+".dcm"), o); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %d synthetic studies of one %dx%d instance to %s\n", studies, size, size, dir)
	return nil
}

func writeFile(path string, o synth.Options) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if _, err := synth.CT(w, o); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// synthStudyUID is the Study Instance UID "imaginghub dicom synth --seed"
// gives its study.
func synthStudyUID(seed int64) string { return synth.DerivedUID(seed, "study") }

// createDB makes a fresh database on the server of base and prints a URL
// of it (base with the database name replaced).
func createDB(ctx context.Context, base string, stdout io.Writer) error {
	u, err := url.Parse(base)
	if err != nil || base == "" {
		return fmt.Errorf("createdb: bad -url %q", base)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	name := "ih_bench_dicomweb_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("createdb: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("createdb: %w", err)
	}
	u.Path = "/" + name
	fmt.Fprintln(stdout, u.String())
	return nil
}

// dropDB drops a database made by createDB, closing its sessions.
func dropDB(ctx context.Context, base, name string) error {
	if name == "" {
		return fmt.Errorf("dropdb: -name is required")
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return fmt.Errorf("dropdb: %w", err)
	}
	defer conn.Close(context.Background())
	// WITH (FORCE) (PostgreSQL 13+) ends sessions a killed hub left behind.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropdb: %w", err)
	}
	return nil
}
