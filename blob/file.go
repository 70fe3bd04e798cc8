package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/durable"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// FileStore keeps each blob as a file under Root/objects; writers stream to
// Root/tmp and commit with a rename and the fsyncs of the file and its
// directory (run together; Commit returns when both are done), so that a
// committed blob survives a crash or power loss. The file has its name
// before it is durable: callers record a key only once Commit returned.
//
// With FileOptions.DirectIO (on Linux), writers bypass the page cache:
// data goes to the device in aligned blocks as it arrives, so the fsync at
// commit has only the last, partial block (written through the page cache)
// and the device's cache to flush, and an archive's writes do not crowd
// out what readers have cached. A filesystem that refuses direct I/O
// (tmpfs, some network filesystems) gets buffered writes instead.
type FileStore struct {
	root string
	tmp  string
	objs string

	direct   bool        // FileOptions.DirectIO
	noDirect atomic.Bool // the filesystem refused direct I/O
	log      *slog.Logger

	mu        sync.Mutex
	made      map[string]bool     // directories known to exist
	syncs     map[string]*dirSync // directories being fsynced; under mu
	noDir     atomic.Bool         // the filesystem rejects directory fsync
	dirFsyncs atomic.Int64        // directory fsyncs done (tests)

	// spare holds temporary files created ahead of need. Creating a file
	// waits for the filesystem journal, which the previous instance's
	// fsyncs keep busy; a filler goroutine takes that wait off the path of
	// each transfer. Spares are named with this store's token, so
	// CleanTemp can tell them from the leftovers of a crashed process.
	spare     chan *os.File
	wake      chan struct{}
	stop      chan struct{} // closed by Close
	filled    chan struct{} // closed when the filler has stopped
	closeOnce sync.Once
	spareName string
	pooled    map[string]bool // names of the files in spare; under mu

	deferred []string // files PutDeferred stored since the last SyncDeferred; under mu
}

// spares is how many temporary files FileStore keeps ready.
const spares = 4

// FileOptions tune a FileStore.
type FileOptions struct {
	// DirectIO writes blobs with direct I/O where the platform and the
	// filesystem allow it (see FileStore).
	DirectIO bool
	// Log receives the one warning given when direct I/O is refused; nil:
	// none.
	Log *slog.Logger
}

// NewFileStore opens (creating if needed) a file store rooted at dir.
func NewFileStore(dir string, opts FileOptions) (*FileStore, error) {
	var tok [6]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	s := &FileStore{
		root:      dir,
		tmp:       filepath.Join(dir, "tmp"),
		objs:      filepath.Join(dir, "objects"),
		made:      map[string]bool{},
		syncs:     map[string]*dirSync{},
		spare:     make(chan *os.File, spares),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		filled:    make(chan struct{}),
		spareName: "s-" + hex.EncodeToString(tok[:]) + "-",
		pooled:    map[string]bool{},
		direct:    opts.DirectIO,
		log:       opts.Log,
	}
	for _, d := range []string{s.tmp, s.objs} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("blob: %w", err)
		}
	}
	go s.fill()
	return s, nil
}

// fill keeps the spare files topped up until Close.
func (s *FileStore) fill() {
	defer close(s.filled)
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		for len(s.spare) < cap(s.spare) {
			select {
			case <-s.stop:
				return
			default:
			}
			// Created and registered under mu, so CleanTemp never
			// removes a file that is (about to be) in the pool.
			s.mu.Lock()
			f, err := createTemp(s.tmp, s.spareName)
			if err == nil {
				s.pooled[filepath.Base(f.Name())] = true
			}
			s.mu.Unlock()
			if err != nil {
				break // Create makes its own and reports the error
			}
			select {
			case s.spare <- f:
			default:
				s.unpool(f)
				f.Close()
				os.Remove(f.Name())
			}
		}
	}
}

// Close stops making spare files and removes those not handed out. The
// store stays usable (writers then create their files as they go).
func (s *FileStore) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.filled
		for {
			select {
			case f := <-s.spare:
				s.unpool(f)
				f.Close()
				os.Remove(f.Name())
			default:
				return
			}
		}
	})
	return nil
}

func (s *FileStore) unpool(f *os.File) {
	s.mu.Lock()
	delete(s.pooled, filepath.Base(f.Name()))
	s.mu.Unlock()
}

func (s *FileStore) refill() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// path maps a key to a file, refusing keys that would escape the store.
func (s *FileStore) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.ContainsRune(key, 0) {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
		}
	}
	return filepath.Join(s.objs, filepath.FromSlash(key)), nil
}

// Create implements Store.
func (s *FileStore) Create(ctx context.Context) (Writer, error) {
	w, err := s.create(s.direct)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// create starts a blob in a spare temporary file (or a new one), written
// with direct I/O if direct and the filesystem allows it.
func (s *FileStore) create(direct bool) (*fileWriter, error) {
	defer s.refill()
	var f *os.File
	select {
	case f = <-s.spare:
		s.unpool(f)
	default:
		var err error
		if f, err = createTemp(s.tmp, "w-"); err != nil {
			return nil, fmt.Errorf("blob: create: %w", err)
		}
	}
	return s.newWriter(f, direct), nil
}

func (s *FileStore) newWriter(f *os.File, direct bool) *fileWriter {
	w := &fileWriter{s: s, f: f}
	if direct && !s.noDirect.Load() {
		if err := setDirect(f, true); err == nil {
			w.direct = true
			w.stage = *stages.Get().(*[]byte)
		} else {
			s.refuseDirect(err)
		}
	}
	return w
}

// refuseDirect turns direct I/O off for the store's next writers, with a
// warning the first time.
func (s *FileStore) refuseDirect(err error) {
	if !s.noDirect.Swap(true) && s.log != nil {
		s.log.Warn("blob store: direct I/O refused here; writing through the page cache", "dir", s.root, "err", err)
	}
}

// Open implements Store.
func (s *FileStore) Open(ctx context.Context, key string) (Reader, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("blob: open: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blob: stat: %w", err)
	}
	return &fileReader{File: f, size: st.Size()}, nil
}

// Stat implements Store.
func (s *FileStore) Stat(ctx context.Context, key string) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, err
	}
	st, err := os.Stat(p)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return 0, fmt.Errorf("blob: stat: %w", err)
	}
	return st.Size(), nil
}

// Delete implements Store.
func (s *FileStore) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("blob: delete: %w", err)
	}
	return nil
}

// CleanTemp implements Store. The spare files waiting in the pool are kept.
func (s *FileStore) CleanTemp(ctx context.Context) (int, error) {
	n := 0
	err := filepath.WalkDir(s.tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pooled[d.Name()] {
			return nil
		}
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("blob: clean temp: %w", err)
	}
	return n, nil
}

// Walk implements Store: it walks Root/objects, each directory in lexical
// order.
func (s *FileStore) Walk(ctx context.Context) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		stop := errors.New("stop")
		err := filepath.WalkDir(s.objs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			st, err := d.Info()
			if os.IsNotExist(err) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(s.objs, p)
			if err != nil {
				return err
			}
			if !yield(Info{Key: filepath.ToSlash(rel), Size: st.Size(), ModTime: st.ModTime()}, nil) {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			yield(Info{}, fmt.Errorf("blob: walk: %w", err))
		}
	}
}

// Ping implements Store: it creates and removes a temporary file.
func (s *FileStore) Ping(ctx context.Context) error {
	f, err := createTemp(s.tmp, "ping-")
	if err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// mkdirDurable creates dir and its parents and fsyncs each new directory's
// parent so the new entries survive a crash.
func (s *FileStore) mkdirDurable(dir string) error {
	s.mu.Lock()
	known := s.made[dir]
	s.mu.Unlock()
	if known {
		return nil
	}
	var missing []string
	for d := dir; d != s.objs && len(d) > len(s.objs); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, d := range missing {
		if err := s.syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.made[dir] = true
	s.mu.Unlock()
	return nil
}

// dirSync lets the commits into one directory share its fsyncs. A commit
// needs an fsync that starts after its rename; one already running may
// have started before, so the commit waits for the next, which then serves
// every commit that asked in the meantime.
type dirSync struct {
	cond    sync.Cond // L is the store's mu
	users   int       // commits waiting or syncing; the entry goes at zero
	running bool
	started uint64 // fsyncs started
	done    uint64 // the number of the last one finished
	err     error  // its result
}

// syncDirShared makes the entries renamed into dir so far durable, with
// an fsync of its own or one shared with other commits.
func (s *FileStore) syncDirShared(dir string) error {
	if s.noDir.Load() {
		return nil
	}
	s.mu.Lock()
	d := s.syncs[dir]
	if d == nil {
		d = &dirSync{}
		d.cond.L = &s.mu
		s.syncs[dir] = d
	}
	d.users++
	target := d.started + 1
	for d.done < target {
		if d.running {
			d.cond.Wait()
			continue
		}
		d.running = true
		d.started++
		n := d.started
		s.mu.Unlock()
		err := s.syncDir(dir)
		s.mu.Lock()
		d.running = false
		d.done, d.err = n, err
		d.cond.Broadcast()
	}
	// The last fsync finished started after this commit's rename; its
	// result is this commit's.
	err := d.err
	d.users--
	if d.users == 0 {
		delete(s.syncs, dir)
	}
	s.mu.Unlock()
	return err
}

func (s *FileStore) syncDir(dir string) error {
	if s.noDir.Load() {
		return nil
	}
	s.dirFsyncs.Add(1)
	if err := durable.SyncDir(dir); err != nil {
		// Some filesystems refuse fsync on a directory; rename is still
		// atomic there and there is nothing more we can do.
		if errors.Is(err, syscall.EINVAL) {
			s.noDir.Store(true)
			return nil
		}
		return err
	}
	return nil
}

type fileWriter struct {
	s      *FileStore
	f      *os.File
	n      int64
	queued int64 // bytes handed to early writeback
	done   bool

	// With direct I/O (O_DIRECT), data is staged in stage, an aligned
	// buffer, and written in whole blocks at off, bypassing the page cache.
	direct  bool
	refused bool // the filesystem refused a direct write (tests)
	stage   []byte
	off     int64
}

// writebackChunk is how much written data starts its way to the device
// while the rest of the file is still arriving.
const writebackChunk = 256 << 10

// directBlock is the alignment of direct writes (offset, length, memory).
const directBlock = durable.Align

// stages holds *[]byte: direct writers' aligned buffers, empty.
var stages = sync.Pool{New: func() any { b := durable.AlignedBuffer(writebackChunk); return &b }}

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.direct {
		return w.writeStaged(p)
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if w.n-w.queued >= writebackChunk {
		startWriteback(w.f, w.queued, w.n-w.queued)
		w.queued = w.n
	}
	return n, err
}

func (w *fileWriter) writeStaged(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := copy(w.stage[len(w.stage):cap(w.stage)], p)
		w.stage = w.stage[:len(w.stage)+k]
		p = p[k:]
		w.n += int64(k)
		if len(w.stage) == cap(w.stage) {
			if err := w.flushStage(); err != nil {
				return total - len(p), err
			}
			if !w.direct {
				// Fell back: the rest goes through the page cache.
				n, err := w.Write(p)
				return total - len(p) + n, err
			}
		}
	}
	return total, nil
}

// flushStage writes the full staged block. If the filesystem refuses the
// direct write, the writer and the store fall back to buffered writes.
func (w *fileWriter) flushStage() error {
	_, err := w.f.WriteAt(w.stage, w.off)
	if errors.Is(err, syscall.EINVAL) {
		return w.fallBack()
	}
	if err != nil {
		return err
	}
	w.off += int64(len(w.stage))
	w.stage = w.stage[:0]
	return nil
}

// fallBack turns a direct writer into a buffered one, for this file and
// the store's next ones.
func (w *fileWriter) fallBack() error {
	w.s.refuseDirect(syscall.EINVAL)
	w.refused = true
	return w.toBuffered(true)
}

// toBuffered turns a direct writer into a buffered one: the staged data
// is written through the page cache, as are later writes (more: there
// will be some, so the file offset is moved past the data). Commit ends
// every direct file this way: its last, partial block goes out with the
// file's fsync instead of as one more device write, padded, and a
// truncate to cut the padding.
func (w *fileWriter) toBuffered(more bool) error {
	if err := setDirect(w.f, false); err != nil {
		return err
	}
	if _, err := w.f.WriteAt(w.stage, w.off); err != nil {
		return err
	}
	if more {
		if _, err := w.f.Seek(w.n, io.SeekStart); err != nil {
			return err
		}
	}
	w.direct = false
	w.queued = w.n
	w.release()
	return nil
}

// release returns the stage to the pool, if it is one the pool made
// (a refused direct write may have come from a stage that was not).
func (w *fileWriter) release() {
	if w.stage != nil && cap(w.stage) == writebackChunk && uintptr(unsafe.Pointer(unsafe.SliceData(w.stage)))%directBlock == 0 {
		b := w.stage[:0]
		stages.Put(&b)
	}
	w.stage = nil
}

func (w *fileWriter) Written() int64 { return w.n }

// place readies the file to take its name under key: its data all
// written, the directory made. It aborts the writer on failure.
func (w *fileWriter) place(key string) (string, error) {
	if w.done {
		return "", fmt.Errorf("blob: commit after commit or abort")
	}
	dst, err := w.s.path(key)
	if err != nil {
		w.Abort()
		return "", err
	}
	if w.direct {
		if err := w.toBuffered(false); err != nil {
			w.Abort()
			return "", fmt.Errorf("blob: write: %w", err)
		}
	}
	if err := w.s.mkdirDurable(filepath.Dir(dst)); err != nil {
		w.Abort()
		return "", fmt.Errorf("blob: mkdir: %w", err)
	}
	return dst, nil
}

func (w *fileWriter) Commit(ctx context.Context, key string) error {
	dst, err := w.place(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(dst)
	// The file takes its name first and then its data and the directory
	// entry are made durable at the same time: two device flushes in
	// parallel instead of one after the other. Commit returns only when
	// both are done, and the caller records the key only then, so a crash
	// in between leaves at most a file no row points at, as a crash
	// between a rename and the caller's commit always could.
	if err := os.Rename(w.f.Name(), dst); err != nil {
		w.Abort()
		return fmt.Errorf("blob: rename: %w", err)
	}
	w.done = true
	dirErr := make(chan error, 1)
	go func() { dirErr <- w.s.syncDirShared(dir) }()
	serr := w.f.Sync()
	cerr := w.f.Close()
	derr := <-dirErr
	switch {
	case serr != nil:
		err = fmt.Errorf("blob: fsync: %w", serr)
	case cerr != nil:
		err = fmt.Errorf("blob: close: %w", cerr)
	case derr != nil:
		err = fmt.Errorf("blob: fsync dir: %w", derr)
	default:
		return nil
	}
	os.Remove(dst)
	return err
}

// commitDeferred puts the blob under key like Commit, readable at once,
// but durable only once a later SyncDeferred has returned.
func (w *fileWriter) commitDeferred(key string) error {
	dst, err := w.place(key)
	if err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		w.Abort()
		return fmt.Errorf("blob: close: %w", err)
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		w.Abort()
		return fmt.Errorf("blob: rename: %w", err)
	}
	w.done = true
	w.s.mu.Lock()
	w.s.deferred = append(w.s.deferred, dst)
	w.s.mu.Unlock()
	return nil
}

func (w *fileWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.release()
	w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("blob: abort: %w", err)
	}
	return nil
}

type fileReader struct {
	*os.File
	size int64
}

func (r *fileReader) Size() int64 { return r.size }

// PutDeferred stores data under key, replacing any blob there, without
// waiting for the disk: the file is written through the page cache and
// renamed into place, readable at once, and durable only once a later
// SyncDeferred has returned. Until then the caller must be able to write
// it again (the intake journal holds a copy); a crash of the process
// alone loses nothing, the page cache being the kernel's.
func (s *FileStore) PutDeferred(ctx context.Context, key string, data []byte) error {
	// Written through the page cache in one write, which also starts a
	// file of writebackChunk or more on its way to the device (see
	// fileWriter.Write): the checkpoint's syncfs then finds most of it
	// written, rather than every file of the last second at once, queued
	// in front of the journal's next writes.
	w, err := s.create(false)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("blob: write: %w", err)
	}
	return w.commitDeferred(key)
}

// SyncDeferred makes every file PutDeferred stored before the call durable,
// with its directory entry.
func (s *FileStore) SyncDeferred(ctx context.Context) error {
	s.mu.Lock()
	files := s.deferred
	s.deferred = nil
	s.mu.Unlock()
	if len(files) == 0 {
		return nil
	}
	if err := syncFiles(s.root, files); err != nil {
		s.mu.Lock()
		s.deferred = append(files, s.deferred...)
		s.mu.Unlock()
		return fmt.Errorf("blob: sync: %w", err)
	}
	return nil
}
