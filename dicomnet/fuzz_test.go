package dicomnet

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

func addPDUSeeds(f *testing.F) {
	for _, p := range samplePDUs() {
		b, _ := p.AppendBinary(nil)
		f.Add(b)
	}
	f.Add([]byte{0x01, 0, 0, 0, 0, 0})
	f.Add([]byte{0x04, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3})
}

// FuzzDecodePDU: decoding never panics and what decodes re-encodes to a
// fixed point.
func FuzzDecodePDU(f *testing.F) {
	addPDUSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPDU(bytes.NewReader(b), 1<<20, nil)
		if err != nil {
			return
		}
		b1, err := p.AppendBinary(nil)
		if err != nil {
			return // e.g. an item grown past 64 KiB by re-encoding rules
		}
		p2, err := DecodePDU(b1)
		if err != nil {
			t.Fatalf("re-encoded PDU does not decode: %v\n%x", err, b1)
		}
		b2, _ := p2.AppendBinary(nil)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%x\n%x", b1, b2)
		}
	})
}

// FuzzNegotiate: any A-ASSOCIATE-RQ gets an answer that only accepts what
// was proposed and what we support, and that encodes as a valid AC.
func FuzzNegotiate(f *testing.F) {
	addPDUSeeds(f)
	reg := &Registry{}
	reg.Handle(VerificationSOPClass, []string{ImplicitVRLittleEndian}, VerificationHandler)
	reg.Handle(testSOPClass, []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}, &storeRecorder{})
	reg.AllowSCU("1.2.840.10008.5.1.4.1.1.2", []string{ExplicitVRLittleEndian})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPDU(bytes.NewReader(b), DefaultMaxAssociatePDU, nil)
		if err != nil {
			return
		}
		rq, ok := p.(*AssociateRQAC)
		if !ok || rq.Type != PDUTypeAssociateRQ {
			return
		}
		n := reg.negotiate(rq)
		for _, pc := range n.accepted {
			i := slices.IndexFunc(rq.PresentationContexts, func(x PresentationContextItem) bool { return x.ID == pc.ID })
			if i < 0 || pc.ID%2 == 0 {
				t.Fatalf("accepted context %d was not proposed or is even", pc.ID)
			}
			prop := rq.PresentationContexts[i]
			s, ok := reg.lookup(pc.AbstractSyntax)
			if !ok || prop.AbstractSyntax != pc.AbstractSyntax || !slices.Contains(prop.TransferSyntaxes, pc.TransferSyntax) || !slices.Contains(s.ts, pc.TransferSyntax) {
				t.Fatalf("accepted %+v outside proposal %+v or registry", pc, prop)
			}
		}
		for _, it := range n.items {
			if it.Result > PresentationContextTransferSyntaxNotSupported || len(it.TransferSyntaxes) != 1 {
				t.Fatalf("bad item %+v", it)
			}
		}
		ac := &AssociateRQAC{Type: PDUTypeAssociateAC, ProtocolVersion: 1, CalledAETitle: rq.CalledAETitle, CallingAETitle: rq.CallingAETitle,
			ApplicationContextName: ApplicationContextName, PresentationContexts: n.items,
			UserInformation: UserInformation{MaxLength: 16384, RoleSelections: n.roles}}
		out, err := ac.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodePDU(out); err != nil {
			t.Fatalf("our A-ASSOCIATE-AC does not decode: %v", err)
		}
	})
}

// FuzzDecodeCommand: decoding never panics; encoding what decoded is a
// fixed point after one round.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{CommandField: CEchoRQ, MessageID: 1, AffectedSOPClassUID: VerificationSOPClass, CommandDataSetType: NoDataSet},
		{CommandField: CStoreRQ, MessageID: 2, AffectedSOPClassUID: testSOPClass, AffectedSOPInstanceUID: "1.2.3", CommandDataSetType: DataSetPresent, MoveOriginatorApplicationEntityTitle: "X", MoveOriginatorMessageID: 4},
		{CommandField: CGetRSP, MessageIDBeingRespondedTo: 2, Status: StatusPending, CommandDataSetType: NoDataSet, NumberOfRemainingSuboperations: U16(1)},
		{CommandField: NGetRQ, MessageID: 3, RequestedSOPClassUID: "1.2", AttributeIdentifierList: []Tag{{8, 0x18}}, CommandDataSetType: NoDataSet},
	} {
		b, _ := c.AppendBinary(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		b1, _ := c.AppendBinary(nil)
		c2, err := DecodeCommand(b1)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		b2, _ := c2.AppendBinary(nil)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%x\n%x", b1, b2)
		}
	})
}

// FuzzAssociationRead feeds arbitrary bytes to an established
// association's PDU reader: it must end (abort or EOF) without panicking,
// hanging or buffering more than its limits.
func FuzzAssociationRead(f *testing.F) {
	echo, _ := (&Command{CommandField: CEchoRQ, MessageID: 1, AffectedSOPClassUID: VerificationSOPClass, CommandDataSetType: NoDataSet}).AppendBinary(nil)
	store, _ := (&Command{CommandField: CStoreRQ, MessageID: 2, AffectedSOPClassUID: testSOPClass, AffectedSOPInstanceUID: "1.2", CommandDataSetType: DataSetPresent}).AppendBinary(nil)
	pd := func(items ...PDV) []byte { b, _ := (&PDataTF{Items: items}).AppendBinary(nil); return b }
	f.Add(pd(PDV{1, 3, echo}))
	f.Add(append(pd(PDV{1, 1, store[:10]}, PDV{1, 3, store[10:]}), pd(PDV{1, 0, []byte("abc")}, PDV{1, 2, []byte("def")})...))
	f.Add(append(pd(PDV{1, 3, echo}), 5, 0, 0, 0, 0, 4, 0, 0, 0, 0))
	f.Add([]byte{7, 0, 0, 0, 0, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		srv, cli := net.Pipe()
		a := newAssociation(srv, bufio.NewReader(srv))
		a.log = quietLogger()
		a.maxPDU = 1 << 16
		a.setPeerMaxPDU(16384)
		a.addContext(PresentationContext{ID: 1, AbstractSyntax: testSOPClass, TransferSyntax: ImplicitVRLittleEndian})
		a.start()
		go io.Copy(io.Discard, cli)
		go func() {
			cli.Write(in)
			cli.Close()
		}()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev := <-a.events:
				if ev.kind == evMessage {
					if ev.msg.data != nil {
						io.Copy(io.Discard, ev.msg.data)
					}
					a.endOp(ev.msg.op)
				}
			case <-a.Done():
				return
			case <-timeout:
				t.Fatal("association reader did not end")
			}
		}
	})
}
