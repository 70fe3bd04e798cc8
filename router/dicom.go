package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/imaginghub/imaginghub/dicomfile/tsconv"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
)

// maxPresentationContexts is the most an A-ASSOCIATE-RQ can propose: the
// IDs are the odd numbers 1 to 255 (PS3.8 §9.3.2.2).
const maxPresentationContexts = 128

// syntaxPair is one (SOP class, transfer syntax) presentation context.
type syntaxPair struct{ class, ts string }

// proposalsFor lists the contexts to propose for an instance stored in ts:
// its own transfer syntax first, and, only for the uncompressed Little
// Endian syntaxes, the other one as a fallback, since every Storage SCP
// accepts Implicit VR Little Endian (PS3.5 §10.1) and most Explicit.
// Compressed data is never transcoded: its own syntax is the only proposal.
// Each transfer syntax gets a context of its own, so that the acceptor's
// choice for one cannot hide the other.
func proposalsFor(class, ts string) []syntaxPair {
	out := []syntaxPair{{class, ts}}
	switch ts {
	case dicomnet.ExplicitVRLittleEndian:
		out = append(out, syntaxPair{class, dicomnet.ImplicitVRLittleEndian})
	case dicomnet.ImplicitVRLittleEndian:
		out = append(out, syntaxPair{class, dicomnet.ExplicitVRLittleEndian})
	}
	return out
}

// conn is an association to a destination with what it proposed.
type conn struct {
	as       *dicomnet.Association
	proposed map[syntaxPair]bool
	lastUsed time.Time
}

func (c *conn) alive() bool {
	select {
	case <-c.as.Done():
		return false
	default:
		return true
	}
}

func (c *conn) covers(need []syntaxPair) bool {
	for _, p := range need {
		if !c.proposed[p] {
			return false
		}
	}
	return true
}

// pool keeps associations to one DICOM destination open while jobs flow:
// a delivery takes an idle association whose proposals fit its instance,
// or opens one proposing every context seen so far, and gives it back
// afterwards; associations idle longer than the idle time are released.
type pool struct {
	dest      config.Destination
	callingAE string
	log       *slog.Logger

	// slots bounds the associations in use at once to the destination's
	// concurrency.
	slots chan struct{}

	mu     sync.Mutex
	idle   []*conn
	known  []syntaxPair // every context proposed so far, oldest first
	closed bool
}

func (p *pool) get(ctx context.Context, need []syntaxPair) (*conn, error) {
	p.mu.Lock()
	var stale []*conn
	for i := len(p.idle) - 1; i >= 0; i-- {
		c := p.idle[i]
		if !c.alive() {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			continue
		}
		if c.covers(need) {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.mu.Unlock()
			return c, nil
		}
	}
	// No idle association proposed this instance's contexts: open one
	// that proposes them along with all earlier ones, and release an idle
	// one in its place so the count stays within the concurrency.
	if len(p.idle) > 0 {
		stale = append(stale, p.idle[0])
		p.idle = p.idle[1:]
	}
	for _, n := range need {
		known := false
		for _, k := range p.known {
			if k == n {
				known = true
				break
			}
		}
		if !known {
			p.known = append(p.known, n)
		}
	}
	if len(p.known) > maxPresentationContexts {
		p.known = p.known[len(p.known)-maxPresentationContexts:]
	}
	pairs := append([]syntaxPair(nil), p.known...)
	p.mu.Unlock()
	for _, c := range stale {
		go p.release(c)
	}

	proposed := make(map[syntaxPair]bool, len(pairs))
	contexts := make([]dicomnet.ProposedContext, 0, len(pairs))
	for _, pr := range pairs {
		proposed[pr] = true
		contexts = append(contexts, dicomnet.ProposedContext{AbstractSyntax: pr.class, TransferSyntaxes: []string{pr.ts}})
	}
	as, err := dicomnet.Dial(ctx, p.dest.Addr, dicomnet.DialOptions{
		CallingAETitle:       p.callingAE,
		CalledAETitle:        p.dest.AE,
		PresentationContexts: contexts,
		Logger:               p.log,
	})
	if err != nil {
		return nil, fmt.Errorf("router: associate with %s (%s): %w", p.dest.AE, p.dest.Addr, err)
	}
	p.log.Debug("association opened", "contexts", len(contexts))
	return &conn{as: as, proposed: proposed}, nil
}

// put gives an association back after a delivery; a broken one is
// aborted instead.
func (p *pool) put(c *conn, ok bool) {
	if !ok || !c.alive() {
		c.as.Abort()
		return
	}
	c.lastUsed = time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.release(c)
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

func (p *pool) release(c *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.as.Release(ctx); err != nil {
		p.log.Debug("association release failed", "err", err)
	}
}

// reap releases associations idle for longer than d (A-RELEASE, PS3.8
// §7.2), so that a quiet destination holds no association open.
func (p *pool) reap(d time.Duration) {
	p.mu.Lock()
	var old []*conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if time.Since(c.lastUsed) >= d || !c.alive() {
			old = append(old, c)
		} else {
			keep = append(keep, c)
		}
	}
	p.idle = keep
	p.mu.Unlock()
	for _, c := range old {
		p.release(c)
	}
}

// close releases every idle association; those in use are released when
// given back.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Add(1)
		go func() { defer wg.Done(); p.release(c) }()
	}
	wg.Wait()
}

// readAhead is how much of a stored instance a delivery reads before it
// takes an association: a typical CT or MR image whole. The buffers are
// reused; at most one per delivery handler is in use.
const readAhead = 1 << 20

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readAhead) }}

// Errors of a DICOM delivery.
var (
	// ErrNotAccepted: the destination accepted no presentation context for
	// the instance's SOP class in its stored transfer syntax (or the
	// uncompressed fallback); retrying cannot help.
	ErrNotAccepted = errors.New("router: destination accepts no presentation context for the instance")
	// ErrRefused: the destination answered the C-STORE with a failure
	// status.
	ErrRefused = errors.New("router: destination refused the instance")
)

// store sends one stored instance to the pool's destination (C-STORE,
// PS3.4 Annex B) in the transfer syntax it is stored in, or re-encoded to
// the other uncompressed Little Endian syntax when the destination accepts
// only that. A Warning status (B000, B006, B007; PS3.4 §B.2.3) counts as
// stored. Errors no retry can fix are events.Permanent.
func (r *Router) store(ctx context.Context, p *pool, j *Job) error {
	f, err := r.rt.Blobs.Open(ctx, j.BlobKey)
	if errors.Is(err, blob.ErrNotFound) {
		// Deleted or replaced since the job was queued.
		return events.Permanent(fmt.Errorf("router: stored instance: %w", err))
	}
	if err != nil {
		return fmt.Errorf("router: open stored instance: %w", err)
	}
	defer f.Close()
	br := readers.Get().(*bufio.Reader)
	br.Reset(f)
	defer func() { br.Reset(nil); readers.Put(br) }()
	meta, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		return fmt.Errorf("router: read stored file meta: %w", err)
	}
	ts := meta.TransferSyntaxUID
	class := j.SOPClassUID
	if class == "" {
		class = meta.MediaStorageSOPClassUID
	}
	// Read ahead before taking an association: an instance up to the
	// buffer's size is then sent from memory, with no file read between
	// the writes to the destination, and a larger one starts from memory.
	if _, err := br.Peek(br.Size()); err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("router: read stored instance: %w", err)
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	need := proposalsFor(class, ts)
	c, err := p.get(ctx, need)
	if err != nil {
		return err
	}
	status, err := sendOn(ctx, c, class, j.SOPInstanceUID, ts, br)
	p.put(c, err == nil || errors.Is(err, ErrNotAccepted) || errors.Is(err, ErrRefused))
	if errors.Is(err, ErrNotAccepted) || errors.Is(err, tsconv.ErrCannotConvert) || errors.Is(err, ErrRefused) && permanentStatus(status) {
		return events.Permanent(err)
	}
	return err
}

func sendOn(ctx context.Context, c *conn, class, sop, ts string, data io.Reader) (uint16, error) {
	sendTS := ts
	var conv func(io.Writer, io.Reader) error
	if _, ok := c.as.PresentationContext(class, ts); !ok {
		switch {
		case ts == dicomnet.ExplicitVRLittleEndian && hasContext(c, class, dicomnet.ImplicitVRLittleEndian):
			sendTS = dicomnet.ImplicitVRLittleEndian
			conv = func(w io.Writer, r io.Reader) error { return tsconv.ConvertLE(w, r, false) }
		case ts == dicomnet.ImplicitVRLittleEndian && hasContext(c, class, dicomnet.ExplicitVRLittleEndian):
			sendTS = dicomnet.ExplicitVRLittleEndian
			conv = func(w io.Writer, r io.Reader) error { return tsconv.ConvertLE(w, r, true) }
		default:
			return 0, fmt.Errorf("%w: %s in %s", ErrNotAccepted, class, ts)
		}
	}
	if conv != nil {
		pr, pw := io.Pipe()
		src := data
		converted := make(chan struct{})
		go func() { defer close(converted); pw.CloseWithError(conv(pw, src)) }()
		// The converter reads the caller's buffer: it must be done with
		// it (closing the pipe makes its next write fail) before return.
		defer func() { pr.Close(); <-converted }()
		data = pr
	}
	status, err := c.as.Store(ctx, class, sop, sendTS, data, nil)
	if err != nil {
		if errors.Is(err, tsconv.ErrCannotConvert) {
			return 0, err
		}
		return 0, fmt.Errorf("router: C-STORE: %w", err)
	}
	switch {
	case status == dicomnet.StatusSuccess, status&0xF000 == 0xB000:
		return status, nil
	default:
		return status, fmt.Errorf("%w: status 0x%04X", ErrRefused, status)
	}
}

func hasContext(c *conn, class, ts string) bool {
	_, ok := c.as.PresentationContext(class, ts)
	return ok
}

// permanentStatus reports whether a C-STORE failure status says the
// instance itself is unacceptable (PS3.4 §B.2.3: A9xx data set does not
// match the SOP class, Cxxx cannot understand; PS3.7 C: 0122 SOP class not
// supported), so that retrying is useless. Out of resources (A7xx) and
// processing failures are worth retrying.
func permanentStatus(status uint16) bool {
	return status&0xFF00 == 0xA900 || status&0xF000 == 0xC000 || status == dicomnet.StatusSOPClassNotSupported
}
