// Command dicomweb is the client side of bench/dicomweb.sh: it bulk-loads a
// synthetic archive into a catalog, writes the same archive as DICOM files
// for peers that cannot be bulk-loaded, creates and drops the PostgreSQL
// database of a run, and times QIDO-RS searches, WADO-RS metadata and
// WADO-RS retrieval against any DICOMweb origin (the hub, Orthanc), keeping
// each measurement as a JSON line that "report" turns into the summary.
//
//	dicomweb load     -data-dir DIR [-database URL] -studies N
//	dicomweb synth    -studies N -dir DIR [-size 64]
//	dicomweb studyuid -seed S
//	dicomweb createdb -url POSTGRES_URL        (prints the new database's URL)
//	dicomweb dropdb   -url POSTGRES_URL -name DB
//	dicomweb qido     -target SYSTEM=URL... -studies N [-queries 300] -results FILE -section S
//	dicomweb metadata -target SYSTEM=URL... -study UID -instances N [-warm 20] -results FILE -section S
//	dicomweb retrieve -target SYSTEM=URL... -study UID -instances N [-repeat 5] -results FILE -section S
//	dicomweb report   -results FILE
//
// With several -target flags every request goes to each target in turn, so
// that all of them meet the same load on the machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dicomweb bench:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: dicomweb load|synth|studyuid|createdb|dropdb|qido|metadata|retrieve|report [flags]")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	m := measureFlags{}
	switch args[0] {
	case "load":
		dataDir := fs.String("data-dir", "", "the hub's data directory (SQLite catalog there when -database is empty)")
		database := fs.String("database", "", "PostgreSQL URL of the catalog; empty: SQLite in -data-dir")
		studies := fs.Int("studies", 100_000, "synthetic studies to insert")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return load(ctx, *dataDir, *database, *studies, stdout)
	case "synth":
		studies := fs.Int("studies", 2000, "synthetic studies to write, one instance each")
		dir := fs.String("dir", "", "directory of the files")
		size := fs.Int("size", 64, "rows and columns of each image")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return writeArchive(*dir, *studies, *size, stdout)
	case "studyuid":
		seed := fs.Int64("seed", 0, "seed given to imaginghub dicom synth")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		fmt.Fprintln(stdout, synthStudyUID(*seed))
		return nil
	case "createdb":
		u := fs.String("url", "", "PostgreSQL URL of a database to connect to (trust or password in the URL)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return createDB(ctx, *u, stdout)
	case "dropdb":
		u := fs.String("url", "", "PostgreSQL URL of a database to connect to")
		name := fs.String("name", "", "database to drop")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return dropDB(ctx, *u, *name)
	case "qido":
		m.register(fs)
		studies := fs.Int("studies", 100_000, "size of the synthetic archive behind base (queries are drawn from it and results checked against it)")
		queries := fs.Int("queries", 300, "requests of each kind, to each target")
		seed := fs.Int64("seed", 1, "seed of the query values (same seed, same queries)")
		limit := fs.Int("limit", 100, "the limit parameter of every request")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return m.qido(ctx, *studies, *queries, *limit, *seed, stdout)
	case "metadata":
		m.register(fs)
		study := fs.String("study", "", "Study Instance UID")
		instances := fs.Int("instances", 1000, "instances the study has (checked)")
		warm := fs.Int("warm", 20, "requests after the first")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return m.metadata(ctx, *study, *instances, *warm, stdout)
	case "retrieve":
		m.register(fs)
		study := fs.String("study", "", "Study Instance UID")
		repeat := fs.Int("repeat", 5, "retrievals of the whole study")
		instances := fs.Int("instances", 100, "instances the study has (checked)")
		syntax := fs.String("transfer-syntax", "*", `transfer-syntax of the Accept header: "*" as stored, "" the origin's default, or a UID`)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return m.retrieve(ctx, *study, *syntax, *repeat, *instances, stdout)
	case "report":
		results := fs.String("results", "", "JSON lines written by qido, metadata and retrieve")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return report(*results, stdout)
	}
	return errUsage
}
