package dicomnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"sync"
)

// Well-known UIDs (PS3.6 Annex A).
const (
	VerificationSOPClass     = "1.2.840.10008.1.1"
	ImplicitVRLittleEndian   = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian   = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittle = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian      = "1.2.840.10008.1.2.2"
)

// Implementation identification of imaginghub, sent in every A-ASSOCIATE
// (PS3.7 D.3.3.2). The UID is under the 2.25 UUID-derived root (PS3.5 B.2).
const (
	ImplementationClassUID    = "2.25.199218737163513924305473011474339958619"
	ImplementationVersionName = "IMAGINGHUB_1"
)

// Handler serves DIMSE requests for the SOP classes it is registered for.
type Handler interface {
	ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, w ResponseWriter, r *Request)

// ServeDIMSE calls f.
func (f HandlerFunc) ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request) { f(ctx, w, r) }

// Request is one DIMSE request handed to a Handler.
//
// The context given with it is cancelled with cause ErrCanceled when the
// peer sends C-CANCEL for this request, and when the association ends.
type Request struct {
	Command             *Command
	PresentationContext PresentationContext
	// Data yields the data set bytes (encoded in
	// PresentationContext.TransferSyntax) as they arrive; nil when the
	// command has no data set. What the handler leaves unread is drained.
	Data io.Reader
	// Association is the association the request came on; a handler may
	// send its own requests on it (C-STORE sub-operations of a C-GET).
	Association *Association
}

// ResponseWriter sends the responses to one request.
type ResponseWriter interface {
	// Respond sends a response. CommandField, MessageIDBeingRespondedTo
	// and, when empty, AffectedSOPClassUID and AffectedSOPInstanceUID are
	// filled from the request; CommandDataSetType follows data. Pending
	// statuses may be sent any number of times; the first other status is
	// final and no response may follow it.
	Respond(rsp *Command, data io.Reader) error
}

// ErrResponseAfterFinal: Respond was called after the final response.
var ErrResponseAfterFinal = errors.New("dicomnet: response after the final response")

// Registry maps SOP classes to handlers and the transfer syntaxes accepted
// for them. It drives presentation context negotiation (PS3.8 §9.3.3.2)
// and role selection (PS3.7 D.3.3.4). The zero value is empty and ready.
type Registry struct {
	mu       sync.RWMutex
	services map[string]*service
}

type service struct {
	ts      []string
	handler Handler // nil: we do not act as SCP for the class
	scu     bool    // we may act as SCU for the class on associations the peer requested
}

// Handle registers h as the SCP for sopClassUID, accepting the given
// transfer syntaxes. A second registration for the same class replaces it.
func (r *Registry) Handle(sopClassUID string, transferSyntaxes []string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(sopClassUID)
	s.handler = h
	s.ts = mergeTS(s.ts, transferSyntaxes)
}

// AllowSCU declares that we may act as SCU for sopClassUID on associations
// the peer requested, when its role selection proposes it: a C-GET SCP
// sends its C-STORE sub-operations this way (PS3.4 C.4.3, PS3.7 D.3.3.4).
func (r *Registry) AllowSCU(sopClassUID string, transferSyntaxes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.get(sopClassUID)
	s.scu = true
	s.ts = mergeTS(s.ts, transferSyntaxes)
}

func (r *Registry) get(uid string) *service {
	if r.services == nil {
		r.services = map[string]*service{}
	}
	s, ok := r.services[uid]
	if !ok {
		s = &service{}
		r.services[uid] = s
	}
	return s
}

func mergeTS(have, add []string) []string {
	for _, ts := range add {
		if !slices.Contains(have, ts) {
			have = append(have, ts)
		}
	}
	return have
}

func (r *Registry) lookup(uid string) (service, bool) {
	if r == nil {
		return service{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.services[uid]
	if !ok {
		return service{}, false
	}
	return *s, true
}

// negotiation is the acceptor's answer to the proposed presentation
// contexts and role selections.
type negotiation struct {
	items    []PresentationContextItem
	roles    []RoleSelection
	accepted []PresentationContext
}

// negotiate answers each proposed presentation context (PS3.8 §9.3.3.2):
// the first proposed transfer syntax we accept for it, in the requestor's
// order of preference; result 3 for an unregistered abstract syntax, 4
// when none of its transfer syntaxes is accepted. Role selection follows
// PS3.7 D.3.3.4: a proposed role is granted when we can play the
// complementary one; contexts where no role is left are rejected (result 1).
func (r *Registry) negotiate(rq *AssociateRQAC) negotiation {
	var n negotiation
	proposedRoles := map[string]RoleSelection{}
	for _, rs := range rq.UserInformation.RoleSelections {
		if _, dup := proposedRoles[rs.SOPClassUID]; !dup {
			proposedRoles[rs.SOPClassUID] = rs
		}
	}
	answeredRoles := map[string]bool{}
	seen := map[byte]bool{}
	for _, pc := range rq.PresentationContexts {
		if seen[pc.ID] {
			continue // one answer per ID; a duplicate gets none
		}
		seen[pc.ID] = true
		item := PresentationContextItem{ID: pc.ID, TransferSyntaxes: []string{""}}
		s, ok := r.lookup(pc.AbstractSyntax)
		switch {
		case pc.ID%2 == 0:
			// PS3.8 §9.3.2.2: presentation context IDs are odd.
			item.Result = PresentationContextProviderRejection
		case !ok || (s.handler == nil && !s.scu):
			item.Result = PresentationContextAbstractSyntaxNotSupported
		default:
			rs, hasRole := proposedRoles[pc.AbstractSyntax]
			peerSCU, peerSCP := true, false // default roles: requestor SCU, acceptor SCP
			if hasRole {
				peerSCU, peerSCP = rs.SCURole, rs.SCPRole
			}
			grantSCU := peerSCU && s.handler != nil
			grantSCP := peerSCP && s.scu
			if hasRole && !answeredRoles[pc.AbstractSyntax] {
				answeredRoles[pc.AbstractSyntax] = true
				n.roles = append(n.roles, RoleSelection{SOPClassUID: pc.AbstractSyntax, SCURole: grantSCU, SCPRole: grantSCP})
			}
			if !grantSCU && !grantSCP {
				item.Result = PresentationContextUserRejection
				break
			}
			i := slices.IndexFunc(pc.TransferSyntaxes, func(ts string) bool { return slices.Contains(s.ts, ts) })
			if i < 0 {
				item.Result = PresentationContextTransferSyntaxNotSupported
				break
			}
			item.Result = PresentationContextAccepted
			item.TransferSyntaxes = []string{pc.TransferSyntaxes[i]}
			n.accepted = append(n.accepted, PresentationContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntax: pc.TransferSyntaxes[i]})
		}
		if item.Result != PresentationContextAccepted {
			// PS3.8 §9.3.3.2: the transfer syntax sub-item is not
			// significant when the context is not accepted; send the one
			// proposed first, as many peers expect a non-empty value.
			if len(pc.TransferSyntaxes) > 0 {
				item.TransferSyntaxes = []string{pc.TransferSyntaxes[0]}
			}
		}
		n.items = append(n.items, item)
	}
	return n
}

// responseWriter implements ResponseWriter for one request.
type responseWriter struct {
	a     *Association
	req   *message
	final bool
}

func (w *responseWriter) Respond(rsp *Command, data io.Reader) error {
	if w.final {
		return ErrResponseAfterFinal
	}
	rq := w.req.cmd
	rsp.CommandField = rq.CommandField | responseBit
	rsp.MessageIDBeingRespondedTo = rq.MessageID
	if rsp.AffectedSOPClassUID == "" {
		rsp.AffectedSOPClassUID = rq.AffectedSOPClassUID
		if rsp.AffectedSOPClassUID == "" {
			rsp.AffectedSOPClassUID = rq.RequestedSOPClassUID
		}
	}
	if rsp.AffectedSOPInstanceUID == "" {
		switch rq.CommandField {
		case CStoreRQ, NCreateRQ, NEventReportRQ:
			rsp.AffectedSOPInstanceUID = rq.AffectedSOPInstanceUID
		case NGetRQ, NSetRQ, NActionRQ, NDeleteRQ:
			rsp.AffectedSOPInstanceUID = rq.RequestedSOPInstanceUID
		}
	}
	if !IsPending(rsp.Status) {
		w.final = true
	}
	return w.a.writeMessage(w.req.pc.ID, rsp, data)
}

// serveRequest runs the handler for one incoming request, then drains the
// data set and makes sure a final response went out. A panicking handler
// aborts the association, never the process.
func (a *Association) serveRequest(m *message) {
	defer a.endOp(m.op)
	w := &responseWriter{a: a, req: m}
	req := &Request{Command: m.cmd, PresentationContext: m.pc, Association: a}
	if m.data != nil {
		req.Data = m.data
	}
	h := a.handlerFor(m)
	a.metrics.request(m.cmd.CommandField)
	panicked := func() (panicked bool) {
		defer func() {
			if v := recover(); v != nil {
				panicked = true
				a.log.Error("dicom handler panicked; aborting association", "remote", a.conn.RemoteAddr().String(),
					"sop_class", m.pc.AbstractSyntax, "command", commandName(m.cmd.CommandField))
				// The panic value may quote the data set being handled:
				// debug level only, with the stack.
				a.log.Debug("dicom handler panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
		}()
		h.ServeDIMSE(m.ctx, w, req)
		return false
	}()
	if panicked {
		if m.data != nil {
			m.data.CloseWithError(ErrAssociationClosed)
		}
		a.Abort()
		return
	}
	if m.data != nil {
		// Drain what the handler left so the next message can be read.
		io.Copy(io.Discard, m.data)
	}
	if !w.final {
		rsp := &Command{Status: StatusProcessingFailure, ErrorComment: "no response from service"}
		if err := w.Respond(rsp, nil); err != nil {
			a.log.Debug("dicom response failed", "err", err)
		}
	}
}

func (a *Association) handlerFor(m *message) Handler {
	if s, ok := a.registry.lookup(m.pc.AbstractSyntax); ok && s.handler != nil {
		return s.handler
	}
	return HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
		w.Respond(&Command{Status: StatusSOPClassNotSupported}, nil)
	})
}

// VerificationHandler answers C-ECHO with Success (PS3.4 Annex A).
var VerificationHandler Handler = HandlerFunc(func(ctx context.Context, w ResponseWriter, r *Request) {
	status := StatusSuccess
	if r.Command.CommandField != CEchoRQ {
		status = StatusUnrecognizedOperation
	}
	w.Respond(&Command{Status: status}, nil)
})
