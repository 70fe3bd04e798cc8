package dicomnet

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of an established association.
var (
	// ErrAssociationClosed: the association is gone (released, aborted, or
	// its connection failed); wrapped with the cause where there is one.
	ErrAssociationClosed = errors.New("dicomnet: association closed")
	// ErrCanceled is the cause of a handler's context when the peer sent
	// C-CANCEL for the operation (PS3.7 §9.3.2.3).
	ErrCanceled = errors.New("dicomnet: operation canceled by peer (C-CANCEL)")
	// ErrNoPresentationContext: no accepted presentation context fits the
	// requested SOP class and transfer syntax.
	ErrNoPresentationContext = errors.New("dicomnet: no accepted presentation context")
	// ErrBusy: an operation is already outstanding; we negotiate an
	// asynchronous operations window of 1 (PS3.7 D.3.3.3).
	ErrBusy = errors.New("dicomnet: another operation is outstanding on the association")
)

// PresentationContext is an accepted presentation context.
type PresentationContext struct {
	ID             byte
	AbstractSyntax string
	TransferSyntax string
}

// maxSendFragment caps the PDV fragments we send even when the peer accepts
// more, so that memory per association stays small (PS3.8 D.1 only sets an
// upper bound).
const maxSendFragment = 1 << 20

// readChunk is the size in which data set bytes are handed to the reader
// of a data set; independent of the PDU size.
const readChunk = 256 << 10

type evKind int

const (
	evMessage evKind = iota
	evReleaseRQ
	evReleaseRP
	evClosed // terminal: err says why
)

type event struct {
	kind evKind
	msg  *message
	err  error
}

// message is one DIMSE message as the reader delivers it: the command, and
// for a data set a pipe that yields its bytes as the fragments arrive.
type message struct {
	pc   PresentationContext
	cmd  *Command
	data *io.PipeReader // nil when CommandDataSetType is NoDataSet
	ctx  context.Context
	op   *operation // the request's operation; nil for responses
}

type operation struct {
	messageID uint16
	cancel    context.CancelCauseFunc
}

// Association is an established DICOM association (PS3.8 Sta6), from
// either side. A server hands it to handlers inside each Request; Dial
// returns one. It performs one operation at a time in each direction.
type Association struct {
	conn   net.Conn
	br     *bufio.Reader
	log    *slog.Logger
	idle   time.Duration
	artim  time.Duration
	maxPDU uint32 // the largest P-DATA-TF we accept
	frag   int    // the largest PDV payload we send

	calledAE, callingAE string
	userIdentity        *UserIdentity
	contexts            map[byte]PresentationContext
	contextOrder        []byte
	registry            *Registry
	metrics             *metrics

	ctx    context.Context
	cancel context.CancelCauseFunc
	events chan event
	done   chan struct{} // closed by shutdown
	once   sync.Once

	wmu           sync.Mutex
	bw            *bufio.Writer
	wbuf          []byte
	fragA, fragB  []byte
	writeTimeout  time.Duration
	releasing     atomic.Bool
	nextMessageID atomic.Uint32
	busy          atomic.Bool
	leftover      *io.PipeReader // data set of the last final response, maybe unread

	opMu sync.Mutex
	op   *operation
}

func newAssociation(conn net.Conn, br *bufio.Reader) *Association {
	a := &Association{
		conn:     conn,
		br:       br,
		contexts: map[byte]PresentationContext{},
		events:   make(chan event),
		done:     make(chan struct{}),
		bw:       bufio.NewWriterSize(conn, 64<<10),
	}
	a.ctx, a.cancel = context.WithCancelCause(context.Background())
	return a
}

// CalledAETitle is the called AE title of the association request.
func (a *Association) CalledAETitle() string { return a.calledAE }

// CallingAETitle is the calling AE title of the association request.
func (a *Association) CallingAETitle() string { return a.callingAE }

// RemoteAddr is the peer's network address.
func (a *Association) RemoteAddr() net.Addr { return a.conn.RemoteAddr() }

// UserIdentity is the user identity sub-item of the request, nil if none.
func (a *Association) UserIdentity() *UserIdentity { return a.userIdentity }

// PresentationContexts lists the accepted presentation contexts in the
// order they were proposed.
func (a *Association) PresentationContexts() []PresentationContext {
	out := make([]PresentationContext, 0, len(a.contextOrder))
	for _, id := range a.contextOrder {
		out = append(out, a.contexts[id])
	}
	return out
}

// PresentationContext returns the first accepted context for the abstract
// syntax whose transfer syntax is ts; ts "" matches any.
func (a *Association) PresentationContext(abstractSyntax, ts string) (PresentationContext, bool) {
	for _, id := range a.contextOrder {
		pc := a.contexts[id]
		if pc.AbstractSyntax == abstractSyntax && (ts == "" || pc.TransferSyntax == ts) {
			return pc, true
		}
	}
	return PresentationContext{}, false
}

// Done is closed when the association has ended.
func (a *Association) Done() <-chan struct{} { return a.done }

func (a *Association) addContext(pc PresentationContext) {
	a.contexts[pc.ID] = pc
	a.contextOrder = append(a.contextOrder, pc.ID)
}

// setPeerMaxPDU derives the PDV fragment size from the peer's maximum
// length: a P-DATA-TF variable field holds one PDV with a 6-byte header
// (PS3.8 §9.3.5, D.1).
func (a *Association) setPeerMaxPDU(n uint32) {
	f := maxSendFragment
	if n != 0 && int64(n)-6 < int64(f) {
		f = int(n) - 6
	}
	if f < 1 {
		f = 1
	}
	a.frag = f
}

// start launches the reader; the association is in Sta6 from here on.
func (a *Association) start() {
	go a.readLoop()
}

// shutdown closes the connection once and releases everything waiting.
func (a *Association) shutdown(cause error) {
	a.once.Do(func() {
		a.cancel(cause)
		a.conn.Close()
		close(a.done)
	})
}

// emit hands an event to whoever drives the association; false when the
// association is gone.
func (a *Association) emit(ev event) bool {
	select {
	case a.events <- ev:
		return true
	case <-a.done:
		return false
	}
}

// Abort sends A-ABORT (source service user, PS3.8 §9.3.8) and closes.
func (a *Association) Abort() error {
	a.sendAbort(AbortSourceServiceUser, AbortReasonNotSpecified)
	a.shutdown(fmt.Errorf("%w: aborted locally", ErrAssociationClosed))
	return nil
}

func (a *Association) sendAbort(source, reason byte) {
	// A-ABORT may be sent while a writer is blocked on a stuck peer: cut
	// that write short rather than wait behind it.
	if !a.wmu.TryLock() {
		a.conn.SetWriteDeadline(time.Now().Add(time.Second))
		a.wmu.Lock()
	}
	defer a.wmu.Unlock()
	a.sendAbortLocked(source, reason)
}

// sendAbortLocked writes A-ABORT; the caller holds wmu.
func (a *Association) sendAbortLocked(source, reason byte) {
	select {
	case <-a.done:
		return
	default:
	}
	a.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	var b [10]byte
	p, _ := (&Abort{Source: source, Reason: reason}).AppendBinary(b[:0])
	a.bw.Write(p)
	a.bw.Flush()
}

// protocolAbort answers a protocol error with A-ABORT from the provider
// with the reason PS3.8 §9.3.8 gives for it, and closes.
func (a *Association) protocolAbort(err error) {
	reason := AbortReasonFor(err)
	a.log.Warn("dicom association aborted: protocol error", "remote", a.conn.RemoteAddr().String(), "reason", reason, "err", err)
	a.sendAbort(AbortSourceServiceProvider, reason)
	a.shutdown(fmt.Errorf("%w: %w", ErrAssociationClosed, err))
}

// armReadDeadline applies the idle timeout while nothing is in progress or
// while a message is being received; an operation we are performing may
// legitimately keep the peer quiet for a long time.
func (a *Association) armReadDeadline(midMessage bool) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.idle > 0 && (midMessage || a.op == nil) {
		a.conn.SetReadDeadline(time.Now().Add(a.idle))
	} else {
		a.conn.SetReadDeadline(time.Time{})
	}
}

func (a *Association) beginOp(messageID uint16) (context.Context, *operation) {
	ctx, cancel := context.WithCancelCause(a.ctx)
	op := &operation{messageID: messageID, cancel: cancel}
	a.opMu.Lock()
	a.op = op
	a.opMu.Unlock()
	return ctx, op
}

// endOp ends op. The peer may already have sent its next request once our
// final response went out, so only op itself is cancelled and cleared,
// never an operation that began after it.
func (a *Association) endOp(op *operation) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if op != nil {
		op.cancel(context.Canceled)
	}
	if a.op != op {
		// A later operation is running; its handler may keep the peer
		// quiet for longer than the idle timeout.
		return
	}
	a.op = nil
	if a.idle > 0 {
		a.conn.SetReadDeadline(time.Now().Add(a.idle))
	}
}

func (a *Association) cancelOp(messageID uint16) {
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.op != nil && a.op.messageID == messageID {
		a.op.cancel(ErrCanceled)
	}
}

// readLoop is the association's only reader. It streams P-DATA-TF: command
// fragments are collected (bounded by MaxCommandLength), data set
// fragments are copied into the pipe of the message being received, so a
// data set is never held in memory whole.
func (a *Association) readLoop() {
	var (
		hdr     [pduHeaderLen]byte
		cmdBuf  []byte
		cmdCtx  = -1 // context ID of the command being collected
		cur     *io.PipeWriter
		curCtx  byte
		chunk   = make([]byte, readChunk)
		discard bool // the consumer closed the data pipe; keep reading, drop bytes
	)
	fail := func(err error) {
		if cur != nil {
			cur.CloseWithError(err)
		}
	}
	for {
		a.armReadDeadline(cur != nil || cmdCtx >= 0)
		if _, err := io.ReadFull(a.br, hdr[:]); err != nil {
			a.readFailed(err)
			fail(err)
			return
		}
		typ, n := hdr[0], binary.BigEndian.Uint32(hdr[2:])
		if typ != PDUTypePDataTF {
			if cur != nil || cmdCtx >= 0 {
				// PS3.8 §9.3.5: a message's fragments are not interleaved
				// with other PDUs except A-ABORT.
				if typ != PDUTypeAbort {
					err := fmt.Errorf("%w: PDU 0x%02x inside a DIMSE message", ErrUnexpectedPDU, typ)
					fail(err)
					a.protocolAbort(err)
					return
				}
			}
			if !a.controlPDU(typ, n) {
				fail(ErrAssociationClosed)
				return
			}
			continue
		}
		if n > a.maxPDU {
			err := fmt.Errorf("%w: P-DATA-TF of %d bytes, maximum %d", ErrPDUTooLarge, n, a.maxPDU)
			fail(err)
			a.protocolAbort(err)
			return
		}
		if n == 0 {
			err := fmt.Errorf("%w: empty P-DATA-TF", ErrMalformedPDU)
			fail(err)
			a.protocolAbort(err)
			return
		}
		rem := int64(n)
		for rem > 0 {
			var ph [6]byte
			if rem < 6 {
				err := fmt.Errorf("%w: truncated PDV item header", ErrMalformedPDU)
				fail(err)
				a.protocolAbort(err)
				return
			}
			if _, err := io.ReadFull(a.br, ph[:]); err != nil {
				a.readFailed(err)
				fail(err)
				return
			}
			l := int64(binary.BigEndian.Uint32(ph[:]))
			rem -= 6
			if l < 2 || l-2 > rem {
				err := fmt.Errorf("%w: PDV item length %d exceeds P-DATA-TF", ErrMalformedPDU, l)
				fail(err)
				a.protocolAbort(err)
				return
			}
			id, mch, plen := ph[4], ph[5], l-2
			rem -= plen
			pc, ok := a.contexts[id]
			if !ok {
				err := fmt.Errorf("%w: PDV for presentation context %d, not accepted", ErrMalformedPDU, id)
				fail(err)
				a.protocolAbort(err)
				return
			}
			if mch&pdvCommand != 0 {
				if cur != nil || (cmdCtx >= 0 && byte(cmdCtx) != id) {
					err := fmt.Errorf("%w: command fragment inside another message", ErrUnexpectedItem)
					fail(err)
					a.protocolAbort(err)
					return
				}
				if int64(len(cmdBuf))+plen > MaxCommandLength {
					err := fmt.Errorf("%w: command set longer than %d bytes", ErrMalformedPDU, MaxCommandLength)
					a.protocolAbort(err)
					return
				}
				cmdCtx = int(id)
				start := len(cmdBuf)
				cmdBuf = append(cmdBuf, make([]byte, plen)...)
				if _, err := io.ReadFull(a.br, cmdBuf[start:]); err != nil {
					a.readFailed(err)
					return
				}
				if mch&pdvLast == 0 {
					continue
				}
				cmd, err := DecodeCommand(cmdBuf)
				cmdBuf, cmdCtx = cmdBuf[:0], -1
				if err != nil {
					a.protocolAbort(fmt.Errorf("%w: %w", ErrMalformedPDU, err))
					return
				}
				if cmd.CommandField == CCancelRQ {
					a.cancelOp(cmd.MessageIDBeingRespondedTo)
					continue
				}
				m := &message{pc: pc, cmd: cmd, ctx: a.ctx}
				if !cmd.IsResponse() {
					m.ctx, m.op = a.beginOp(cmd.MessageID)
				}
				if cmd.HasDataSet() {
					var pr *io.PipeReader
					pr, cur = io.Pipe()
					curCtx, discard = id, false
					m.data = pr
				}
				if !a.emit(event{kind: evMessage, msg: m}) {
					fail(ErrAssociationClosed)
					return
				}
				continue
			}
			// Data set fragment.
			if cur == nil || id != curCtx {
				err := fmt.Errorf("%w: data set fragment without its command on context %d", ErrUnexpectedItem, id)
				fail(err)
				a.protocolAbort(err)
				return
			}
			for plen > 0 {
				k := min(plen, int64(len(chunk)))
				if _, err := io.ReadFull(a.br, chunk[:k]); err != nil {
					a.readFailed(err)
					fail(err)
					return
				}
				plen -= k
				a.metrics.received(int(k))
				if !discard {
					if _, err := cur.Write(chunk[:k]); err != nil {
						discard = true
					}
				}
			}
			if mch&pdvLast != 0 {
				cur.Close()
				cur = nil
			}
		}
	}
}

// readFailed ends the association after a transport read error.
func (a *Association) readFailed(err error) {
	select {
	case <-a.done:
		a.emit(event{kind: evClosed, err: context.Cause(a.ctx)})
		return
	default:
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		a.log.Info("dicom association idle timeout", "remote", a.conn.RemoteAddr().String())
		a.sendAbort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		err = fmt.Errorf("%w: idle timeout", ErrAssociationClosed)
	} else {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		err = fmt.Errorf("%w: %w", ErrAssociationClosed, err)
	}
	a.shutdown(err)
	a.emit(event{kind: evClosed, err: err})
}

// controlPDU handles a PDU other than P-DATA-TF in Sta6; false ends the loop.
func (a *Association) controlPDU(typ byte, n uint32) bool {
	switch typ {
	case PDUTypeAssociateRQ, PDUTypeAssociateAC, PDUTypeAssociateRJ:
		// PS3.8 §9.2 state table, Sta6: A-ASSOCIATE-* PDUs are AA-8.
		a.protocolAbort(fmt.Errorf("%w: PDU 0x%02x on an established association", ErrUnexpectedPDU, typ))
		return false
	case PDUTypeReleaseRQ, PDUTypeReleaseRP, PDUTypeAbort:
	default:
		a.protocolAbort(fmt.Errorf("%w: 0x%02x", ErrUnrecognizedPDU, typ))
		return false
	}
	if n > DefaultMaxAssociatePDU {
		a.protocolAbort(fmt.Errorf("%w: PDU 0x%02x of %d bytes", ErrPDUTooLarge, typ, n))
		return false
	}
	b := make([]byte, pduHeaderLen+int(n))
	b[0] = typ
	binary.BigEndian.PutUint32(b[2:], n)
	if _, err := io.ReadFull(a.br, b[pduHeaderLen:]); err != nil {
		a.readFailed(err)
		return false
	}
	p, err := DecodePDU(b)
	if err != nil {
		a.protocolAbort(err)
		return false
	}
	switch p := p.(type) {
	case ReleaseRQ:
		return a.emit(event{kind: evReleaseRQ})
	case ReleaseRP:
		if !a.releasing.Load() {
			a.protocolAbort(fmt.Errorf("%w: A-RELEASE-RP without A-RELEASE-RQ", ErrUnexpectedPDU))
			return false
		}
		return a.emit(event{kind: evReleaseRP})
	case *Abort:
		err := fmt.Errorf("%w: %w", ErrAssociationClosed, p)
		a.log.Info("dicom association aborted by peer", "remote", a.conn.RemoteAddr().String(), "source", p.Source, "reason", p.Reason)
		a.shutdown(err)
		a.emit(event{kind: evClosed, err: err})
		return false
	}
	return false
}

// writePDV writes one P-DATA-TF carrying one PDV; the caller holds wmu.
func (a *Association) writePDV(id, mch byte, data []byte) error {
	var h [12]byte
	h[0] = PDUTypePDataTF
	binary.BigEndian.PutUint32(h[2:], uint32(len(data)+6))
	binary.BigEndian.PutUint32(h[6:], uint32(len(data)+2))
	h[10], h[11] = id, mch
	if a.writeTimeout > 0 {
		a.conn.SetWriteDeadline(time.Now().Add(a.writeTimeout))
	}
	if _, err := a.bw.Write(h[:]); err != nil {
		return err
	}
	_, err := a.bw.Write(data)
	return err
}

// writeMessage sends a command and, when data is not nil, the data set read
// from data, each fragmented to the peer's maximum length (PS3.8 §9.3.5,
// Annex E). One message is never interleaved with another.
func (a *Association) writeMessage(pcID byte, cmd *Command, data io.Reader) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	select {
	case <-a.done:
		return fmt.Errorf("%w: %w", ErrAssociationClosed, context.Cause(a.ctx))
	default:
	}
	if data != nil {
		cmd.CommandDataSetType = DataSetPresent
	} else {
		cmd.CommandDataSetType = NoDataSet
	}
	var err error
	a.wbuf, err = cmd.AppendBinary(a.wbuf[:0])
	if err != nil {
		return err
	}
	if err := a.writeFragments(pcID, pdvCommand, a.wbuf); err != nil {
		return a.writeFailed(err)
	}
	if data != nil {
		if err := a.writeDataSet(pcID, data); err != nil {
			return err
		}
	}
	if err := a.bw.Flush(); err != nil {
		return a.writeFailed(err)
	}
	return nil
}

func (a *Association) writeFragments(pcID, mch byte, b []byte) error {
	for {
		k := min(len(b), a.frag)
		last := k == len(b)
		m := mch
		if last {
			m |= pdvLast
		}
		if err := a.writePDV(pcID, m, b[:k]); err != nil {
			return err
		}
		if last {
			return nil
		}
		b = b[k:]
	}
}

// writeDataSet streams r as data set fragments. It keeps one fragment in
// hand to know which one is last without knowing the length in advance.
func (a *Association) writeDataSet(pcID byte, r io.Reader) error {
	if len(a.fragA) != a.frag {
		a.fragA, a.fragB = make([]byte, a.frag), make([]byte, a.frag)
	}
	cur, next := a.fragA, a.fragB
	n, rerr := io.ReadFull(r, cur)
	for {
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			if err := a.writePDV(pcID, pdvLast, cur[:n]); err != nil {
				return a.writeFailed(err)
			}
			return nil
		}
		if rerr != nil {
			// The data set cannot be completed; the message cannot be
			// ended cleanly on the wire, so the association is aborted.
			a.sendAbortLocked(AbortSourceServiceUser, AbortReasonNotSpecified)
			err := fmt.Errorf("dicomnet: reading data set: %w", rerr)
			a.shutdown(fmt.Errorf("%w: %w", ErrAssociationClosed, err))
			return err
		}
		m, err := io.ReadFull(r, next)
		if m == 0 && err == io.EOF {
			rerr = io.EOF
			continue
		}
		if err := a.writePDV(pcID, 0, cur[:n]); err != nil {
			return a.writeFailed(err)
		}
		cur, next = next, cur
		n, rerr = m, err
	}
}

func (a *Association) writeFailed(err error) error {
	err = fmt.Errorf("%w: write: %w", ErrAssociationClosed, err)
	a.shutdown(err)
	return err
}

func (a *Association) writePDU(p PDU) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	var err error
	a.wbuf, err = p.AppendBinary(a.wbuf[:0])
	if err != nil {
		return err
	}
	if a.writeTimeout > 0 {
		a.conn.SetWriteDeadline(time.Now().Add(a.writeTimeout))
	}
	if _, err := a.bw.Write(a.wbuf); err != nil {
		return a.writeFailed(err)
	}
	if err := a.bw.Flush(); err != nil {
		return a.writeFailed(err)
	}
	return nil
}
