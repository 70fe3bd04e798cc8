package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/catalog"
)

// BlobKey is the key an instance received at t is filed under:
// <study>/<series>/<sop>.<t in base-36 nanoseconds>.dcm. Each received
// copy gets its own key, so that a duplicate never overwrites the file a
// catalog row points at.
func BlobKey(study, series, sop string, t time.Time) string {
	return study + "/" + series + "/" + sop + "." + strconv.FormatInt(t.UnixNano(), 36) + ".dcm"
}

// parseBlobKey returns the SOP Instance UID of a key made by BlobKey.
func parseBlobKey(key string) (sop string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 {
		return "", false
	}
	name, found := strings.CutSuffix(parts[2], ".dcm")
	if !found {
		return "", false
	}
	i := strings.LastIndexByte(name, '.')
	if i <= 0 {
		return "", false
	}
	if _, err := strconv.ParseInt(name[i+1:], 36, 64); err != nil {
		return "", false
	}
	return name[:i], true
}

// CheckOptions tune CheckArchive.
type CheckOptions struct {
	// RemoveOrphans deletes the files no catalog row names, once they are
	// older than MinAge.
	RemoveOrphans bool
	// MinAge protects the files of stores in progress: such a file is
	// committed a moment before its row. Younger orphans are reported as
	// recent and kept. Zero means an hour.
	MinAge time.Duration
	// Examples bounds how many of each finding the report lists (the
	// counts are always complete). Zero means 100.
	Examples int
}

// CheckReport is what CheckArchive found.
type CheckReport struct {
	Rows  int // instance rows checked
	Blobs int // files walked

	// Missing are rows whose file is gone; Mismatched rows whose file's
	// size differs from the size recorded when it was stored.
	Missing, Mismatched         int
	MissingKeys, MismatchedKeys []string
	// Orphans are files no row names: left by a crash between a file's
	// commit and its row's, or by a failed delete. Foreign ones do not
	// have the key form ingest gives files and are never removed; Recent
	// ones are younger than MinAge and are kept.
	Orphans, Foreign, Recent, Removed int
	OrphanKeys                        []string
}

// Consistent reports whether every row has its file and every file a
// row, leaving aside the files removed and the recent ones (which may be
// stores in progress, their rows not yet committed).
func (r CheckReport) Consistent() bool {
	return r.Missing == 0 && r.Mismatched == 0 && r.Orphans == r.Removed+r.Recent
}

// CheckArchive compares the catalog's instance rows with the blob store's
// files, both ways, and with RemoveOrphans deletes the files no row names.
// It reads while the hub runs: a row stored meanwhile may have a file the
// walk did not see, so a row's missing file is looked up again before it
// is reported, and files younger than MinAge are never removed.
func CheckArchive(ctx context.Context, cat *catalog.Catalog, blobs blob.Store, opts CheckOptions) (CheckReport, error) {
	if opts.MinAge == 0 {
		opts.MinAge = time.Hour
	}
	if opts.Examples == 0 {
		opts.Examples = 100
	}
	var r CheckReport
	example := func(list *[]string, key string) {
		if len(*list) < opts.Examples {
			*list = append(*list, key)
		}
	}

	// Rows → files.
	var suspect []string // SOP Instance UIDs whose file was missing
	for ref, err := range cat.InstanceBlobKeys(ctx) {
		if err != nil {
			return r, err
		}
		r.Rows++
		size, err := blobs.Stat(ctx, ref.BlobKey)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			suspect = append(suspect, ref.SOPInstanceUID)
		case err != nil:
			return r, err
		case size != ref.SizeBytes:
			r.Mismatched++
			example(&r.MismatchedKeys, ref.BlobKey)
		}
	}
	// A row replaced while the walk ran names a new file: look again.
	again, err := cat.BlobRefs(ctx, suspect)
	if err != nil {
		return r, err
	}
	for _, sop := range suspect {
		ref, ok := again[sop]
		if !ok {
			continue // the row is gone
		}
		if _, err := blobs.Stat(ctx, ref.BlobKey); errors.Is(err, blob.ErrNotFound) {
			r.Missing++
			example(&r.MissingKeys, ref.BlobKey)
		} else if err != nil {
			return r, err
		}
	}

	// orphan records a file no row names and removes it when asked to and
	// it is ingest's and old enough.
	orphan := func(b blob.Info, ours bool) error {
		r.Orphans++
		example(&r.OrphanKeys, b.Key)
		switch {
		case !ours:
			r.Foreign++
		case time.Since(b.ModTime) < opts.MinAge:
			r.Recent++
		case opts.RemoveOrphans:
			if err := blobs.Delete(ctx, b.Key); err != nil {
				return fmt.Errorf("ingest: remove orphaned file: %w", err)
			}
			r.Removed++
		}
		return nil
	}

	// Files → rows, a batch of files at a time.
	const batch = 512
	var pending []blob.Info
	var sops []string
	flush := func() error {
		refs, err := cat.BlobRefs(ctx, sops)
		if err != nil {
			return err
		}
		for i, b := range pending {
			if ref, ok := refs[sops[i]]; ok && ref.BlobKey == b.Key {
				continue
			}
			if err := orphan(b, true); err != nil {
				return err
			}
		}
		pending, sops = pending[:0], sops[:0]
		return nil
	}
	for b, err := range blobs.Walk(ctx) {
		if err != nil {
			return r, err
		}
		r.Blobs++
		sop, ok := parseBlobKey(b.Key)
		if !ok {
			if err := orphan(b, false); err != nil {
				return r, err
			}
			continue
		}
		pending, sops = append(pending, b), append(sops, sop)
		if len(pending) == batch {
			if err := flush(); err != nil {
				return r, err
			}
		}
	}
	if err := flush(); err != nil {
		return r, err
	}
	return r, nil
}
