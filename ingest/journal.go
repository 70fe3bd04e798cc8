package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/journal"
)

// Ingest durability with the intake journal.
//
// Without a journal, an instance is acknowledged once its own file has
// been fsynced (file and directory) and its rows committed with an fsync
// of the catalog: two flushes of the device on every instance's path, and
// on most disks fsyncing a newly created file costs several times the
// write itself (the filesystem commits the new inode, its blocks and the
// directory entry). With the journal, the whole file goes into a
// preallocated ring with one direct write and a device flush shared with
// the instances arriving meanwhile, and the Success answer waits only for
// that; the file is written through the page cache and its rows
// commit without waiting for the disk. Every second, or sooner when half
// the ring is used, a checkpoint makes all of them durable at once (one
// syncfs of the blob filesystem, one durable catalog commit) and frees
// the ring. After a power loss or an OS crash, start-up replays the
// records after the last checkpoint: each file is written again and each
// instance the catalog lost is indexed again, with its event, before the
// listener opens.
//
// Instances larger than the journal takes (journalLimit) stream to their
// own file and are fsynced on their own, as without a journal: for them the
// flush is a small part of the transfer.

// deferredBlobs is a blob store that can write a file without waiting for
// the disk and make such files durable later (blob.FileStore).
type deferredBlobs interface {
	PutDeferred(ctx context.Context, key string, data []byte) error
	SyncDeferred(ctx context.Context) error
}

// maxJournaled is the largest instance that goes through the journal.
// Below it, writing the file durably into the journal costs less than the
// fixed price of fsyncing a new file of its own (1.1–1.9 ms for 512 KiB on
// the disks measured, against 0.2–0.3 ms into the journal); above it the
// journal's copy costs more than it saves, and the file's own flush is a
// small part of its transfer. The instance is held in memory whole while
// it arrives.
const maxJournaled = 2 << 20

// checkpointEvery is how often the journal is checkpointed when it is not
// filling up.
var checkpointEvery = time.Second

// UseJournal makes s acknowledge instances through j. The blob store must
// be able to write without waiting for the disk. Call Replay before the
// first Store, and run RunCheckpoints.
func (s *Storer) UseJournal(j *journal.Journal) error {
	d, ok := s.Blobs.(deferredBlobs)
	if !ok {
		return fmt.Errorf("ingest: the blob store %T cannot defer its fsyncs; the intake journal needs it", s.Blobs)
	}
	s.Journal, s.deferred = j, d
	// Hubs sharing a catalog each record their own journal's checkpoints.
	host, _ := os.Hostname()
	s.journalID = host + ":" + j.Path()
	s.kick = make(chan struct{}, 1)
	j.Pressure = func() {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *Storer) journalLimit() int64 { return min(s.Journal.MaxRecord(), maxJournaled) }

// Checkpoint makes every journaled instance filed so far durable — files
// and rows — and frees the journal's room they took.
func (s *Storer) Checkpoint(ctx context.Context) error {
	synced := false
	began := time.Now()
	err := s.Journal.Checkpoint(func(last uint64) error {
		synced = true
		if err := s.deferred.SyncDeferred(ctx); err != nil {
			return err
		}
		return s.Catalog.SyncIntake(ctx, s.journalID, last)
	})
	if m := s.metrics; m != nil && (synced || err != nil) {
		outcome := "ok"
		if err != nil {
			outcome = "failed"
		}
		m.checkpoints.WithLabelValues(outcome).Inc()
		m.checkpointSeconds.Observe(time.Since(began).Seconds())
	}
	return err
}

// RunCheckpoints checkpoints every checkpointEvery, and at once when the
// journal is half full, until ctx ends. The last checkpoint is the
// owner's, once nothing stores any more (see openJournal).
func (s *Storer) RunCheckpoints(ctx context.Context) {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		err := s.Checkpoint(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.Log.Warn("intake journal checkpoint failed; retrying", "err", err)
			failing = true
		case err == nil && failing:
			s.Log.Info("intake journal checkpoint succeeded again")
			failing = false
		}
	}
}

// Replay files again the journal's records written after its last
// checkpoint (the last run ended in a power loss, an OS crash or a kill),
// then checkpoints. Each record's file is written again; an instance the
// catalog does not hold under the record's key is indexed again, with its
// event, unless a later record replaced it.
func (s *Storer) Replay(ctx context.Context) error {
	recs := s.Journal.Pending()
	if len(recs) == 0 {
		return nil
	}
	later := make(map[string]int, len(recs))
	for _, r := range recs {
		later[r.Key]++
	}
	var restored, indexed, skipped int
	for _, r := range recs {
		later[r.Key]--
		data, err := s.Journal.Read(r)
		if err != nil {
			return err
		}
		req, hdr, err := parseJournaled(data)
		if err != nil {
			// Every record was parsed before it was written.
			s.Log.Error("intake journal record cannot be read; skipped", "seq", r.Seq, "key", r.Key, "err", err)
			skipped++
			continue
		}
		refs, err := s.Catalog.BlobRefs(ctx, []string{req.SOPInstanceUID})
		if err != nil {
			return fmt.Errorf("ingest: replay: %w", err)
		}
		ref, held := refs[req.SOPInstanceUID]
		switch {
		case held && ref.BlobKey == r.Key:
			// The rows survived; the file may not have.
			if err := s.deferred.PutDeferred(ctx, r.Key, data); err != nil {
				return fmt.Errorf("ingest: replay: %w", err)
			}
			restored++
		case held && later[ref.BlobKey] > 0:
			skipped++ // a later record replaced it; that one is replayed
		default:
			if err := s.deferred.PutDeferred(ctx, r.Key, data); err != nil {
				return fmt.Errorf("ingest: replay: %w", err)
			}
			_, err := s.index(ctx, req, hdr, r.Key, int64(len(data)), true, nil)
			if err != nil && !errors.Is(err, ErrDuplicateRejected) {
				return fmt.Errorf("ingest: replay %s: %w", r.Key, err)
			}
			indexed++
		}
	}
	if err := s.Checkpoint(ctx); err != nil {
		return fmt.Errorf("ingest: replay: %w", err)
	}
	s.Log.Info("intake journal replayed", "records", len(recs), "files_restored", restored, "instances_indexed", indexed, "skipped", skipped)
	return nil
}

// parseJournaled reads a journaled Part 10 file back into the request it
// was stored from.
func parseJournaled(data []byte) (Request, *dicomfile.Header, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	m, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		return Request{}, nil, err
	}
	h, err := dicomfile.ParseHeader(br, m.TransferSyntaxUID)
	if err != nil {
		return Request{}, nil, err
	}
	return Request{
		SOPClassUID:       m.MediaStorageSOPClassUID,
		SOPInstanceUID:    m.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: m.TransferSyntaxUID,
		CallingAE:         m.SourceApplicationEntityTitle,
	}, h, nil
}
