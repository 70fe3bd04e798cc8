package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/ingest"
)

const archiveUsage = `usage: imaginghub archive check [--remove-orphans] [--min-age 1h] [--list 20]
  Compares the catalog's instance rows with the files under data.dir/blobs,
  both ways: rows whose file is missing or has another size than stored, and
  files no row names (left by a crash between a file's commit and its row's).
  --remove-orphans deletes such files once older than --min-age; files whose
  names ingest did not give are reported, never removed. Safe while the hub
  runs. Exit status 1 when something is left inconsistent (files younger than
  --min-age count as stores in progress).`

// archiveCmd is "imaginghub archive check": the consistency check of the
// catalog and the blob store. It opens both alone, without hub.Open (which
// would clean the temporary files of a running hub's transfers).
func archiveCmd(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	remove := fs.Bool("remove-orphans", false, "delete files no catalog row names (older than --min-age)")
	minAge := fs.Duration("min-age", time.Hour, "leave orphaned files younger than this (stores in progress)")
	list := fs.Int("list", 20, "list at most this many keys of each finding")
	fs.Usage = func() { fmt.Fprintln(stderr, archiveUsage) }
	if len(args) == 0 || args[0] != "check" {
		fs.Usage()
		return errors.New("archive: want \"check\"")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 || *minAge <= 0 || *list < 0 {
		fs.Usage()
		return errors.New("archive check: bad arguments")
	}
	// A check of a data directory that is not there would create an empty
	// archive and find it consistent: refuse instead.
	root := hub.BlobsDir(cfg)
	if _, err := os.Stat(filepath.Join(root, "objects")); err != nil {
		return &config.Error{Key: "data.dir", Env: "IMAGINGHUB_DATA_DIR", Err: fmt.Errorf("no blob store here: %w", err)}
	}
	if cfg.Database.URL == "" {
		if _, err := os.Stat(filepath.Join(cfg.Data.Dir, catalog.DefaultFileName)); err != nil {
			return &config.Error{Key: "data.dir", Env: "IMAGINGHUB_DATA_DIR", Err: fmt.Errorf("no catalog here: %w", err)}
		}
	}
	log := slog.New(slog.DiscardHandler)
	blobs, err := hub.OpenBlobs(cfg, log)
	if err != nil {
		return err
	}
	defer blobs.Close()
	cat, err := hub.OpenCatalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cat.Close()

	r, err := ingest.CheckArchive(ctx, cat, blobs, ingest.CheckOptions{RemoveOrphans: *remove, MinAge: *minAge, Examples: max(*list, 1)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "catalog %s: %d instance rows; blob store %s: %d files\n", cat.Backend(), r.Rows, root, r.Blobs)
	show := func(keys []string, n int) {
		for _, k := range keys[:min(len(keys), *list)] {
			fmt.Fprintf(stdout, "    %s\n", k)
		}
		if n > *list {
			fmt.Fprintf(stdout, "    … and %d more\n", n-*list)
		}
	}
	fmt.Fprintf(stdout, "  rows without their file:       %d\n", r.Missing)
	show(r.MissingKeys, r.Missing)
	fmt.Fprintf(stdout, "  rows whose file size differs:  %d\n", r.Mismatched)
	show(r.MismatchedKeys, r.Mismatched)
	fmt.Fprintf(stdout, "  files without a row:           %d (%d younger than %s, %d not named by ingest, %d removed)\n",
		r.Orphans, r.Recent, *minAge, r.Foreign, r.Removed)
	show(r.OrphanKeys, r.Orphans)
	if !r.Consistent() {
		return errors.New("archive check: inconsistencies left (see above)")
	}
	fmt.Fprintln(stdout, "consistent")
	return nil
}
