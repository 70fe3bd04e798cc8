package dicomnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of ServerOptions.
const (
	DefaultARTIMTimeout    = 30 * time.Second
	DefaultIdleTimeout     = 5 * time.Minute
	DefaultMaxPDULength    = 1 << 20
	DefaultMaxAssociations = 64
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("dicomnet: server closed")

// AssociateRequest is what a Policy sees of an association request.
type AssociateRequest struct {
	// PDU is the A-ASSOCIATE-RQ as received: AE titles, presentation
	// contexts, user information including the user identity sub-item.
	PDU        *AssociateRQAC
	RemoteAddr net.Addr
	// UserIdentityResponse, when a policy sets it and the requestor asked
	// for a positive response, goes back in the A-ASSOCIATE-AC
	// (PS3.7 D.3.3.7.2). An empty response is sent otherwise.
	UserIdentityResponse []byte
}

// Policy decides whether to accept an association: nil accepts, an
// AssociateRJ is sent as is (PS3.8 §9.3.4).
type Policy func(ctx context.Context, rq *AssociateRequest) *AssociateRJ

// CalledAETitlePolicy rejects requests whose called AE title is not ae
// with result 1, source 1, reason 7 (called-AE-title-not-recognized).
func CalledAETitlePolicy(ae string) Policy {
	return func(_ context.Context, rq *AssociateRequest) *AssociateRJ {
		if rq.PDU.CalledAETitle != ae {
			return &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonCalledAETitleNotRecognized}
		}
		return nil
	}
}

// ServerOptions configure a Server. The zero value works: any called AE
// title, only Verification, defaults for every limit.
type ServerOptions struct {
	// AETitle is our AE title; with no Policy, requests calling another
	// title are rejected. Empty accepts any called AE title.
	AETitle string
	// Registry holds the handlers; nil means an empty one. Verification
	// is served unless the registry has its own handler for it.
	Registry *Registry
	// Policy accepts or rejects associations; nil is CalledAETitlePolicy(AETitle).
	Policy Policy
	// MaxAssociations bounds concurrent associations; excess requests get
	// A-ASSOCIATE-RJ transient, source 3, reason 2 (local-limit-exceeded).
	MaxAssociations int
	// ARTIMTimeout guards the association request and release (PS3.8 §9.1.5).
	ARTIMTimeout time.Duration
	// IdleTimeout aborts an association on which the peer sends nothing
	// for this long while no operation is in progress; it also bounds
	// each write to a peer that stops reading.
	IdleTimeout time.Duration
	// MaxPDULength is the largest P-DATA-TF we accept, announced in the
	// A-ASSOCIATE-AC (PS3.8 D.1).
	MaxPDULength uint32
	Logger       *slog.Logger
	// Registerer receives the server's Prometheus metrics; nil records none.
	Registerer prometheus.Registerer
}

// Server is a DICOM SCP: it accepts associations and dispatches DIMSE
// requests to the handlers of its Registry.
type Server struct {
	opts     ServerOptions
	registry *Registry
	log      *slog.Logger
	sem      chan struct{} // established associations
	pending  chan struct{} // connections still in association establishment
	metrics  *metrics

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	assocs    map[*Association]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// NewServer returns a Server with the options' zero values replaced by the defaults.
func NewServer(opts ServerOptions) *Server {
	if opts.Registry == nil {
		opts.Registry = &Registry{}
	}
	if _, ok := opts.Registry.lookup(VerificationSOPClass); !ok {
		opts.Registry.Handle(VerificationSOPClass, []string{ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian}, VerificationHandler)
	}
	if opts.Policy == nil && opts.AETitle != "" {
		opts.Policy = CalledAETitlePolicy(opts.AETitle)
	}
	if opts.MaxAssociations <= 0 {
		opts.MaxAssociations = DefaultMaxAssociations
	}
	if opts.ARTIMTimeout <= 0 {
		opts.ARTIMTimeout = DefaultARTIMTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxPDULength == 0 {
		opts.MaxPDULength = DefaultMaxPDULength
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Server{
		opts:      opts,
		registry:  opts.Registry,
		log:       opts.Logger,
		sem:       make(chan struct{}, opts.MaxAssociations),
		pending:   make(chan struct{}, opts.MaxAssociations),
		metrics:   newMetrics(opts.Registerer),
		listeners: map[net.Listener]struct{}{},
		assocs:    map[*Association]struct{}{},
	}
}

// ListenAndServe listens on addr (":11112") and serves.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close; it always
// returns a non-nil error, ErrServerClosed after those.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			// Transient accept failures (EMFILE and the like) back off as
			// net/http does, instead of ending the server.
			if !errors.Is(err, net.ErrClosed) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		// Add under the lock that Shutdown takes before Wait, so that no
		// connection slips in after the wait began.
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(conn)
		}()
	}
}

// Shutdown stops accepting, waits for the associations in progress to end
// until ctx is done, then aborts those left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.abortAll()
	<-done
	return ctx.Err()
}

// Close stops accepting and aborts every association at once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.abortAll()
	s.wg.Wait()
	return nil
}

func (s *Server) abortAll() {
	s.mu.Lock()
	as := make([]*Association, 0, len(s.assocs))
	for a := range s.assocs {
		as = append(as, a)
	}
	s.mu.Unlock()
	for _, a := range as {
		a.sendAbort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		a.shutdown(fmt.Errorf("%w: server shut down", ErrAssociationClosed))
	}
}

// writeAndClose sends one PDU on a connection that is not (or no longer)
// an association and closes it.
func writeAndClose(conn net.Conn, p PDU, timeout time.Duration) {
	b, _ := p.AppendBinary(nil)
	conn.SetWriteDeadline(time.Now().Add(timeout))
	conn.Write(b)
	if tc, ok := conn.(*net.TCPConn); ok {
		// Let the peer read the PDU before the close; a reset could
		// overtake it (PS3.8 §9.1.4: the transport is closed after RJ/abort).
		tc.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(timeout))
		io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
	}
	conn.Close()
}

// serveConn takes one transport connection through association
// establishment (PS3.8 §9.2, Sta2 to Sta6), then serves it.
func (s *Server) serveConn(conn net.Conn) {
	defer conn.Close()
	remote := conn.RemoteAddr().String()
	// Connections that have not yet sent their A-ASSOCIATE-RQ are bounded
	// too, so that idle connections cannot pile up for ARTIM each.
	select {
	case s.pending <- struct{}{}:
	default:
		s.log.Warn("dicom connection refused: too many pending association requests", "remote", remote)
		s.metrics.association("limit")
		writeAndClose(conn, &AssociateRJ{Result: RejectTransient, Source: RejectSourceServiceProviderPresen, Reason: RejectReasonTemporaryCongestion}, time.Second)
		return
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	conn.SetReadDeadline(time.Now().Add(s.opts.ARTIMTimeout))
	p, err := ReadPDU(br, DefaultMaxAssociatePDU, nil)
	<-s.pending
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.log.Info("dicom association request timed out (ARTIM)", "remote", remote)
			return
		}
		s.log.Warn("dicom association request malformed; aborting", "remote", remote, "err", err)
		s.metrics.association("malformed")
		writeAndClose(conn, &Abort{Source: AbortSourceServiceProvider, Reason: AbortReasonFor(err)}, s.opts.ARTIMTimeout)
		return
	}
	rq, ok := p.(*AssociateRQAC)
	if !ok || rq.Type != PDUTypeAssociateRQ {
		// PS3.8 §9.2 state table, Sta2: any PDU but A-ASSOCIATE-RQ is AA-1.
		s.log.Warn("dicom connection opened with an unexpected PDU; aborting", "remote", remote, "pdu", p.PDUType())
		s.metrics.association("malformed")
		writeAndClose(conn, &Abort{Source: AbortSourceServiceProvider, Reason: AbortReasonUnexpectedPDU}, s.opts.ARTIMTimeout)
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.log.Warn("dicom association rejected: limit reached", "remote", remote, "calling_ae", rq.CallingAETitle, "limit", s.opts.MaxAssociations)
		s.metrics.association("limit")
		writeAndClose(conn, &AssociateRJ{Result: RejectTransient, Source: RejectSourceServiceProviderPresen, Reason: RejectReasonLocalLimitExceeded}, s.opts.ARTIMTimeout)
		return
	}
	res := s.check(rq, conn.RemoteAddr())
	if res.rj != nil {
		s.log.Info("dicom association rejected", "remote", remote, "calling_ae", rq.CallingAETitle, "called_ae", rq.CalledAETitle,
			"result", res.rj.Result, "source", res.rj.Source, "reason", res.rj.Reason)
		s.metrics.association("rejected")
		writeAndClose(conn, res.rj, s.opts.ARTIMTimeout)
		return
	}
	a, err := s.acceptAssociation(conn, br, rq, res)
	if err != nil {
		s.log.Info("dicom association: sending A-ASSOCIATE-AC failed", "remote", remote, "err", err)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		a.sendAbort(AbortSourceServiceProvider, AbortReasonNotSpecified)
		a.shutdown(ErrServerClosed)
		return
	}
	s.assocs[a] = struct{}{}
	s.mu.Unlock()
	s.metrics.association("accepted")
	s.metrics.active(1)
	defer func() {
		s.mu.Lock()
		delete(s.assocs, a)
		s.mu.Unlock()
		s.metrics.active(-1)
	}()
	a.start()
	s.serveAssociation(a)
}

// acceptAssociation negotiates and sends the A-ASSOCIATE-AC (PS3.8 §9.3.3).
func (s *Server) acceptAssociation(conn net.Conn, br *bufio.Reader, rq *AssociateRQAC, res checkResult) (*Association, error) {
	a := newAssociation(conn, br)
	a.log = s.log
	a.idle = s.opts.IdleTimeout
	a.writeTimeout = s.opts.IdleTimeout
	a.artim = s.opts.ARTIMTimeout
	a.maxPDU = s.opts.MaxPDULength
	a.registry = s.registry
	a.metrics = s.metrics
	a.calledAE, a.callingAE = rq.CalledAETitle, rq.CallingAETitle
	a.userIdentity = rq.UserInformation.UserIdentity
	a.setPeerMaxPDU(rq.UserInformation.MaxLength)
	n := s.registry.negotiate(rq)
	for _, pc := range n.accepted {
		a.addContext(pc)
	}
	ac := &AssociateRQAC{
		Type:                   PDUTypeAssociateAC,
		ProtocolVersion:        1,
		CalledAETitle:          rq.CalledAETitle,
		CallingAETitle:         rq.CallingAETitle,
		ApplicationContextName: ApplicationContextName,
		PresentationContexts:   n.items,
		UserInformation: UserInformation{
			MaxLength:                 s.opts.MaxPDULength,
			ImplementationClassUID:    ImplementationClassUID,
			ImplementationVersionName: ImplementationVersionName,
			RoleSelections:            n.roles,
		},
	}
	if rq.UserInformation.AsyncOperationsWindow != nil {
		// We perform and invoke one operation at a time (PS3.7 D.3.3.3).
		ac.UserInformation.AsyncOperationsWindow = &AsyncOperationsWindow{MaxOperationsInvoked: 1, MaxOperationsPerformed: 1}
	}
	if id := rq.UserInformation.UserIdentity; id != nil && id.PositiveResponseRequested {
		ac.UserInformation.UserIdentityResponse = &UserIdentityResponse{ServerResponse: res.identityResponse}
	}
	conn.SetReadDeadline(time.Time{})
	if err := a.writePDU(ac); err != nil {
		return nil, err
	}
	s.log.Debug("dicom association established", "remote", conn.RemoteAddr().String(), "calling_ae", rq.CallingAETitle,
		"called_ae", rq.CalledAETitle, "contexts", len(n.accepted))
	return a, nil
}

type checkResult struct {
	rj               *AssociateRJ
	identityResponse []byte
}

// check applies the fixed rules of PS3.8 §9.3.2 and then the policy.
func (s *Server) check(rq *AssociateRQAC, remote net.Addr) checkResult {
	if rq.ProtocolVersion&1 == 0 {
		return checkResult{rj: &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceProviderACSE, Reason: RejectReasonProtocolVersionNotSupported}}
	}
	if rq.ApplicationContextName != ApplicationContextName {
		return checkResult{rj: &AssociateRJ{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectReasonApplicationContextNameNotSupported}}
	}
	if s.opts.Policy == nil {
		return checkResult{}
	}
	ar := &AssociateRequest{PDU: rq, RemoteAddr: remote}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ARTIMTimeout)
	defer cancel()
	rj := s.opts.Policy(ctx, ar)
	return checkResult{rj: rj, identityResponse: ar.UserIdentityResponse}
}

// serveAssociation drives an established association as acceptor: one
// request at a time (we negotiate an operations window of 1), release and
// abort as PS3.8 §9.2 has them.
func (s *Server) serveAssociation(a *Association) {
	for {
		var ev event
		select {
		case ev = <-a.events:
		case <-a.done:
			return
		}
		switch ev.kind {
		case evMessage:
			m := ev.msg
			if m.cmd.IsResponse() {
				a.protocolAbort(fmt.Errorf("%w: response 0x%04X with no request outstanding", ErrUnexpectedPDU, m.cmd.CommandField))
				return
			}
			a.serveRequest(m)
		case evReleaseRQ:
			// PS3.8 §9.2 AR-2/AR-4: answer A-RELEASE-RP, then the requestor
			// closes the transport; ARTIM bounds the wait for that.
			if err := a.writePDU(ReleaseRP{}); err != nil {
				return
			}
			a.conn.SetReadDeadline(time.Now().Add(a.artim))
			t := time.NewTimer(a.artim)
			select {
			case <-a.events:
			case <-a.done:
			case <-t.C:
			}
			t.Stop()
			a.shutdown(fmt.Errorf("%w: released", ErrAssociationClosed))
			return
		case evReleaseRP:
			a.protocolAbort(fmt.Errorf("%w: A-RELEASE-RP", ErrUnexpectedPDU))
			return
		case evClosed:
			return
		}
	}
}
