package dicomnet

import (
	"context"
	"fmt"
	"io"
	"time"
)

// StatusError is a DIMSE response whose status is neither Success nor Pending.
type StatusError struct {
	Status       uint16
	ErrorComment string
}

func (e *StatusError) Error() string {
	if e.ErrorComment != "" {
		return fmt.Sprintf("dicomnet: status 0x%04X: %s", e.Status, e.ErrorComment)
	}
	return fmt.Sprintf("dicomnet: status 0x%04X", e.Status)
}

// Response is one response to a request sent with Association.Request.
type Response struct {
	Command *Command
	// Data yields the response's data set (a C-FIND identifier, an N-GET
	// attribute list); nil when there is none. It must be read or left
	// before the next call to Next, which drains it.
	Data io.Reader
}

// Final reports whether no more responses follow this one.
func (r *Response) Final() bool { return !IsPending(r.Command.Status) }

// Responses iterates the responses to one request.
type Responses struct {
	a         *Association
	messageID uint16
	pcID      byte
	last      *message
	done      bool
}

// MessageID is the Message ID of the request.
func (r *Responses) MessageID() uint16 { return r.messageID }

// Request sends a request command, with a data set read from data when
// data is not nil, on the presentation context pc, and returns the
// iterator of its responses. MessageID is assigned when zero. The caller
// must call Next until a final response or an error.
func (a *Association) Request(ctx context.Context, pc PresentationContext, cmd *Command, data io.Reader) (*Responses, error) {
	if _, ok := a.contexts[pc.ID]; !ok {
		return nil, fmt.Errorf("%w: id %d", ErrNoPresentationContext, pc.ID)
	}
	if !a.busy.CompareAndSwap(false, true) {
		return nil, ErrBusy
	}
	a.drainLeftover()
	if cmd.MessageID == 0 {
		cmd.MessageID = a.newMessageID()
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { a.conn.SetWriteDeadline(time.Now()) })
		defer stop()
	}
	if err := a.writeMessage(pc.ID, cmd, data); err != nil {
		a.busy.Store(false)
		if ctx.Err() != nil {
			a.Abort()
			return nil, fmt.Errorf("%w: %w", ErrAssociationClosed, context.Cause(ctx))
		}
		return nil, err
	}
	return &Responses{a: a, messageID: cmd.MessageID, pcID: pc.ID}, nil
}

func (a *Association) drainLeftover() {
	if a.leftover != nil {
		io.Copy(io.Discard, a.leftover)
		a.leftover = nil
	}
}

func (a *Association) newMessageID() uint16 {
	for {
		if id := uint16(a.nextMessageID.Add(1)); id != 0 {
			return id
		}
	}
}

// Next waits for the next response. Requests the peer sends meanwhile
// (C-STORE sub-operations of a C-GET) are served by the association's
// Registry. When ctx ends first the association is aborted, since a DIMSE
// operation cannot be abandoned half way; use Cancel to ask the peer to
// stop a C-FIND, C-MOVE or C-GET.
func (r *Responses) Next(ctx context.Context) (*Response, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.last != nil && r.last.data != nil {
		io.Copy(io.Discard, r.last.data)
		r.last = nil
	}
	a := r.a
	for {
		var ev event
		var ok bool
		select {
		case ev, ok = <-a.events:
		case <-ctx.Done():
			r.finish()
			a.Abort()
			return nil, fmt.Errorf("%w: %w", ErrAssociationClosed, context.Cause(ctx))
		case <-a.done:
			r.finish()
			return nil, context.Cause(a.ctx)
		}
		if !ok {
			r.finish()
			return nil, ErrAssociationClosed
		}
		switch ev.kind {
		case evClosed:
			r.finish()
			return nil, ev.err
		case evReleaseRQ, evReleaseRP:
			// PS3.8 §9.2 (AA-8): release while an operation is outstanding.
			r.finish()
			a.protocolAbort(fmt.Errorf("%w: A-RELEASE during an operation", ErrUnexpectedPDU))
			return nil, fmt.Errorf("%w: peer released during an operation", ErrAssociationClosed)
		case evMessage:
			m := ev.msg
			if !m.cmd.IsResponse() {
				a.serveRequest(m)
				continue
			}
			if m.cmd.MessageIDBeingRespondedTo != r.messageID || m.cmd.CommandField&^responseBit == CCancelRQ {
				r.finish()
				a.protocolAbort(fmt.Errorf("%w: response to message %d, expected %d", ErrUnexpectedPDU, m.cmd.MessageIDBeingRespondedTo, r.messageID))
				return nil, ErrAssociationClosed
			}
			rsp := &Response{Command: m.cmd}
			if m.data != nil {
				rsp.Data = m.data
				r.last = m
			}
			if rsp.Final() {
				// The caller may still read the final response's data; the
				// next Request or Release drains whatever it leaves.
				r.last = nil
				a.leftover = m.data
				r.finish()
			}
			return rsp, nil
		}
	}
}

func (r *Responses) finish() {
	if !r.done {
		r.done = true
		r.a.busy.Store(false)
	}
}

// Cancel sends C-CANCEL for the request (PS3.7 §9.3.2.3); keep calling
// Next for the final response.
func (r *Responses) Cancel() error {
	return r.a.writeMessage(r.pcID, &Command{CommandField: CCancelRQ, MessageIDBeingRespondedTo: r.messageID}, nil)
}

// do sends a request and waits for its final response, skipping Pending
// ones; the caller judges the status.
func (a *Association) do(ctx context.Context, pc PresentationContext, cmd *Command, data io.Reader) (*Command, error) {
	rs, err := a.Request(ctx, pc, cmd, data)
	if err != nil {
		return nil, err
	}
	for {
		rsp, err := rs.Next(ctx)
		if err != nil {
			return nil, err
		}
		if rsp.Final() {
			if rsp.Data != nil {
				io.Copy(io.Discard, rsp.Data)
			}
			return rsp.Command, nil
		}
	}
}

// Echo performs C-ECHO (PS3.7 §9.1.5) on the Verification context.
func (a *Association) Echo(ctx context.Context) error {
	pc, ok := a.PresentationContext(VerificationSOPClass, "")
	if !ok {
		return fmt.Errorf("%w: Verification", ErrNoPresentationContext)
	}
	rsp, err := a.do(ctx, pc, &Command{CommandField: CEchoRQ, AffectedSOPClassUID: VerificationSOPClass}, nil)
	if err != nil {
		return err
	}
	if rsp.Status != StatusSuccess {
		return &StatusError{Status: rsp.Status, ErrorComment: rsp.ErrorComment}
	}
	return nil
}

// StoreOptions are the optional fields of a C-STORE request.
type StoreOptions struct {
	Priority uint16
	// MoveOriginatorAETitle and MoveOriginatorMessageID mark a C-STORE
	// sub-operation of a C-MOVE (PS3.7 §9.1.1.1).
	MoveOriginatorAETitle   string
	MoveOriginatorMessageID uint16
}

// Store performs C-STORE (PS3.7 §9.1.1): the data set, already encoded in
// transferSyntaxUID, is streamed from dataset in fragments sized to the
// peer's maximum length. It returns the response status; err is set for
// transport and association failures only, so Warning and Failure
// statuses are the caller's to judge.
func (a *Association) Store(ctx context.Context, sopClassUID, sopInstanceUID, transferSyntaxUID string, dataset io.Reader, opts *StoreOptions) (uint16, error) {
	pc, ok := a.PresentationContext(sopClassUID, transferSyntaxUID)
	if !ok {
		return 0, fmt.Errorf("%w: %s in %s", ErrNoPresentationContext, sopClassUID, transferSyntaxUID)
	}
	cmd := &Command{
		CommandField:           CStoreRQ,
		AffectedSOPClassUID:    sopClassUID,
		AffectedSOPInstanceUID: sopInstanceUID,
	}
	if opts != nil {
		cmd.Priority = opts.Priority
		cmd.MoveOriginatorApplicationEntityTitle = opts.MoveOriginatorAETitle
		cmd.MoveOriginatorMessageID = opts.MoveOriginatorMessageID
	}
	rsp, err := a.do(ctx, pc, cmd, dataset)
	if err != nil {
		return 0, err
	}
	return rsp.Status, nil
}

// Release performs A-RELEASE (PS3.8 §7.2) and closes the connection. If
// the peer does not answer within the ARTIM timeout or ctx, the
// association is aborted instead.
func (a *Association) Release(ctx context.Context) error {
	if !a.busy.CompareAndSwap(false, true) {
		return ErrBusy
	}
	a.drainLeftover()
	a.releasing.Store(true)
	if err := a.writePDU(ReleaseRQ{}); err != nil {
		return err
	}
	t := time.NewTimer(a.artim)
	defer t.Stop()
	for {
		select {
		case ev := <-a.events:
			switch ev.kind {
			case evReleaseRP:
				a.shutdown(fmt.Errorf("%w: released", ErrAssociationClosed))
				return nil
			case evReleaseRQ:
				// Release collision (PS3.8 §7.2.2): as requestor we answer
				// after our own A-RELEASE-RP arrives; answering now is
				// accepted by peers and keeps this simple.
				a.writePDU(ReleaseRP{})
			case evClosed:
				return ev.err
			case evMessage:
				if ev.msg.data != nil {
					ev.msg.data.CloseWithError(ErrAssociationClosed)
				}
			}
		case <-t.C:
			a.Abort()
			return fmt.Errorf("%w: no A-RELEASE-RP within %v", ErrAssociationClosed, a.artim)
		case <-ctx.Done():
			a.Abort()
			return fmt.Errorf("%w: %w", ErrAssociationClosed, context.Cause(ctx))
		case <-a.done:
			return context.Cause(a.ctx)
		}
	}
}
