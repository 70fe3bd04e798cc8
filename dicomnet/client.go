package dicomnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// ProposedContext is a presentation context the requestor proposes.
type ProposedContext struct {
	AbstractSyntax   string
	TransferSyntaxes []string // in order of preference
	// SCURole and SCPRole, when either is set, add an SCP/SCU role
	// selection sub-item for the abstract syntax (PS3.7 D.3.3.4); a C-GET
	// SCU proposes SCPRole for the storage classes it will receive.
	SCURole, SCPRole bool
}

// DialOptions configure Dial. CalledAETitle is required.
type DialOptions struct {
	CallingAETitle string // default "IMAGINGHUB"
	CalledAETitle  string
	// PresentationContexts to propose; IDs are assigned 1, 3, 5, ... in
	// order. Empty proposes Verification only.
	PresentationContexts []ProposedContext
	UserIdentity         *UserIdentity
	// MaxPDULength we accept; default DefaultMaxPDULength.
	MaxPDULength uint32
	// ARTIMTimeout bounds waiting for A-ASSOCIATE-AC and A-RELEASE-RP.
	ARTIMTimeout time.Duration
	// Registry serves requests the peer sends on this association, such
	// as the C-STORE sub-operations of a C-GET.
	Registry *Registry
	Logger   *slog.Logger
	// Dialer, when set, opens the transport connection.
	Dialer *net.Dialer
}

// Dial opens an association with the DICOM application entity at addr
// (PS3.8 §7.1). An A-ASSOCIATE-RJ is returned as a *AssociateRJ error;
// an A-ABORT as a wrapped *Abort.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Association, error) {
	if opts.CallingAETitle == "" {
		opts.CallingAETitle = "IMAGINGHUB"
	}
	if len(opts.PresentationContexts) == 0 {
		opts.PresentationContexts = []ProposedContext{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	}
	if len(opts.PresentationContexts) > 128 {
		return nil, errors.New("dicomnet: more than 128 presentation contexts")
	}
	if opts.MaxPDULength == 0 {
		opts.MaxPDULength = DefaultMaxPDULength
	}
	if opts.ARTIMTimeout <= 0 {
		opts.ARTIMTimeout = DefaultARTIMTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := opts.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	a, err := requestAssociation(ctx, conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return a, nil
}

func requestAssociation(ctx context.Context, conn net.Conn, opts DialOptions) (*Association, error) {
	rq := &AssociateRQAC{
		Type:                   PDUTypeAssociateRQ,
		ProtocolVersion:        1,
		CalledAETitle:          opts.CalledAETitle,
		CallingAETitle:         opts.CallingAETitle,
		ApplicationContextName: ApplicationContextName,
		UserInformation: UserInformation{
			MaxLength:                 opts.MaxPDULength,
			ImplementationClassUID:    ImplementationClassUID,
			ImplementationVersionName: ImplementationVersionName,
			UserIdentity:              opts.UserIdentity,
		},
	}
	proposed := map[byte]ProposedContext{}
	roleDone := map[string]bool{}
	for i, pc := range opts.PresentationContexts {
		id := byte(2*i + 1)
		proposed[id] = pc
		rq.PresentationContexts = append(rq.PresentationContexts, PresentationContextItem{ID: id, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
		if (pc.SCURole || pc.SCPRole) && !roleDone[pc.AbstractSyntax] {
			roleDone[pc.AbstractSyntax] = true
			rq.UserInformation.RoleSelections = append(rq.UserInformation.RoleSelections, RoleSelection{SOPClassUID: pc.AbstractSyntax, SCURole: pc.SCURole, SCPRole: pc.SCPRole})
		}
	}
	deadline := time.Now().Add(opts.ARTIMTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	b, err := rq.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(b); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	p, err := ReadPDU(br, DefaultMaxAssociatePDU, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("dicomnet: reading association response: %w", err)
	}
	var ac *AssociateRQAC
	switch p := p.(type) {
	case *AssociateRJ:
		return nil, p
	case *Abort:
		return nil, fmt.Errorf("%w: %w", ErrAssociationClosed, p)
	case *AssociateRQAC:
		if p.Type == PDUTypeAssociateAC {
			ac = p
		}
	}
	if ac == nil {
		// PS3.8 §9.2, Sta5: anything else is AA-8.
		writeAndClose(conn, &Abort{Source: AbortSourceServiceProvider, Reason: AbortReasonUnexpectedPDU}, time.Second)
		return nil, fmt.Errorf("%w: PDU 0x%02x in reply to A-ASSOCIATE-RQ", ErrUnexpectedPDU, p.PDUType())
	}
	conn.SetDeadline(time.Time{})

	a := newAssociation(conn, br)
	a.log = opts.Logger
	a.artim = opts.ARTIMTimeout
	a.maxPDU = opts.MaxPDULength
	a.registry = opts.Registry
	a.calledAE, a.callingAE = opts.CalledAETitle, opts.CallingAETitle
	a.userIdentity = opts.UserIdentity
	a.setPeerMaxPDU(ac.UserInformation.MaxLength)
	for _, item := range ac.PresentationContexts {
		pc, ok := proposed[item.ID]
		if !ok || item.Result != PresentationContextAccepted || len(item.TransferSyntaxes) != 1 {
			continue
		}
		a.addContext(PresentationContext{ID: item.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntax: item.TransferSyntaxes[0]})
	}
	a.start()
	return a, nil
}
