package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
)

// dicomCmd is the DICOM SCU for operators: "imaginghub dicom echo|store|synth".
func dicomCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: imaginghub dicom echo|store|find|move|worklist|mpps|synth …")
	}
	switch args[0] {
	case "find", "move":
		return qrCmd(ctx, args, stdout, stderr)
	case "worklist", "mpps":
		return worklistCmd(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("dicom "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	aet := fs.String("aet", "IMAGINGHUB", "our (calling) AE title")
	aec := fs.String("aec", "IMAGINGHUB", "the peer's (called) AE title")
	switch args[0] {
	case "echo":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: imaginghub dicom echo [--aet AE] [--aec AE] HOST:PORT")
		}
		began := time.Now()
		as, err := dicomnet.Dial(ctx, fs.Arg(0), dicomnet.DialOptions{CallingAETitle: *aet, CalledAETitle: *aec})
		if err != nil {
			return err
		}
		defer as.Release(ctx)
		if err := as.Echo(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "C-ECHO %s (%s): Success in %v\n", fs.Arg(0), *aec, time.Since(began).Round(time.Microsecond))
		return nil
	case "store":
		parallel := fs.Int("parallel", 1, "associations used at once")
		quiet := fs.Bool("quiet", false, "no progress bar")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() < 2 {
			return errors.New("usage: imaginghub dicom store [--aet AE] [--aec AE] [--parallel N] HOST:PORT FILE|DIR...")
		}
		return storeFiles(ctx, fs.Arg(0), *aet, *aec, max(*parallel, 1), fs.Args()[1:], *quiet, stdout, stderr)
	case "synth":
		n := fs.Int("instances", 100, "instances to write (one study, one series)")
		size := fs.Int("size", 512, "rows and columns")
		frames := fs.Int("frames", 1, "frames per instance (>1: multi-frame secondary capture)")
		seed := fs.Int64("seed", time.Now().UnixNano(), "seed of the UIDs (same seed, same files)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: imaginghub dicom synth [--instances N] [--size 512] [--frames 1] DIR")
		}
		if err := os.MkdirAll(fs.Arg(0), 0o750); err != nil {
			return err
		}
		paths, err := synth.WriteStudy(fs.Arg(0), *n, synth.Options{Seed: *seed, Rows: *size, Columns: *size, Frames: *frames})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d synthetic instances to %s\n", len(paths), fs.Arg(0))
		return nil
	}
	return fmt.Errorf("unknown dicom command %q (want echo, store, find, move, worklist, mpps or synth)", args[0])
}

type fileToSend struct {
	path string
	meta dicomfile.FileMeta
	size int64
}

// storeFiles sends Part 10 files as they are (no transcoding) over
// parallel associations, proposing one presentation context per SOP class
// and transfer syntax found.
func storeFiles(ctx context.Context, addr, aet, aec string, parallel int, roots []string, quiet bool, stdout, stderr io.Writer) error {
	var files []fileToSend
	var total int64
	var skipped int
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			meta, err := dicomfile.ReadFileMeta(bufio.NewReader(f))
			if err != nil {
				skipped++
				fmt.Fprintf(stderr, "skip %s: %v\n", p, err)
				return nil
			}
			st, _ := f.Stat()
			files = append(files, fileToSend{path: p, meta: meta, size: st.Size() - meta.DataSetOffset()})
			total += st.Size() - meta.DataSetOffset()
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(files) == 0 {
		return errors.New("no DICOM Part 10 files found")
	}
	contexts := proposals(files)
	if len(contexts) > 128 {
		return fmt.Errorf("the files need %d presentation contexts; at most 128 fit in one association", len(contexts))
	}

	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.DefaultBytes(total, "storing")
	}
	work := make(chan fileToSend)
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	report := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, format+"\n", a...)
	}
	began := time.Now()
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			as, err := dicomnet.Dial(ctx, addr, dicomnet.DialOptions{CallingAETitle: aet, CalledAETitle: aec, PresentationContexts: contexts})
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				for range work {
					failed.Add(1)
				}
				return
			}
			defer as.Release(context.WithoutCancel(ctx))
			for f := range work {
				status, err := sendFile(ctx, as, f)
				switch {
				case err != nil:
					failed.Add(1)
					report("%s: %v", f.path, err)
				case status != dicomnet.StatusSuccess && status&0xF000 != 0xB000:
					failed.Add(1)
					report("%s: status 0x%04X", f.path, status)
				default:
					ok.Add(1)
				}
				if bar != nil {
					bar.Add64(f.size)
				}
			}
		}()
	}
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(stderr)
	}
	secs := time.Since(began).Seconds()
	fmt.Fprintf(stdout, "stored %d of %d instances (%d failed, %d skipped) in %.2fs: %.1f instances/s, %.1f MB/s over %d association(s)\n",
		ok.Load(), len(files), failed.Load(), skipped, secs, float64(ok.Load())/secs, float64(total)/1e6/secs, parallel)
	if firstErr != nil {
		return firstErr
	}
	if failed.Load() > 0 {
		return fmt.Errorf("%d instances failed", failed.Load())
	}
	return nil
}

func sendFile(ctx context.Context, as *dicomnet.Association, f fileToSend) (uint16, error) {
	if _, ok := as.PresentationContext(f.meta.MediaStorageSOPClassUID, f.meta.TransferSyntaxUID); !ok {
		return 0, fmt.Errorf("the peer accepted no presentation context for %s in %s", f.meta.MediaStorageSOPClassUID, f.meta.TransferSyntaxUID)
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	if _, err := fh.Seek(f.meta.DataSetOffset(), io.SeekStart); err != nil {
		return 0, err
	}
	return as.Store(ctx, f.meta.MediaStorageSOPClassUID, f.meta.MediaStorageSOPInstanceUID, f.meta.TransferSyntaxUID, bufio.NewReaderSize(fh, 256<<10), nil)
}

// proposals lists one presentation context per SOP class with every
// transfer syntax its files use.
func proposals(files []fileToSend) []dicomnet.ProposedContext {
	byClass := map[string]map[string]bool{}
	for _, f := range files {
		c := f.meta.MediaStorageSOPClassUID
		if byClass[c] == nil {
			byClass[c] = map[string]bool{}
		}
		byClass[c][f.meta.TransferSyntaxUID] = true
	}
	var out []dicomnet.ProposedContext
	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		// One context per transfer syntax: the acceptor picks one
		// syntax per context (PS3.8 §9.3.3.2), and each file must go in
		// its own.
		var tss []string
		for ts := range byClass[c] {
			tss = append(tss, ts)
		}
		sort.Strings(tss)
		for _, ts := range tss {
			out = append(out, dicomnet.ProposedContext{AbstractSyntax: c, TransferSyntaxes: []string{ts}})
		}
	}
	return out
}
