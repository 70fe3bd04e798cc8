// Package dicomnet is the DICOM network layer of imaginghub: the upper
// layer protocol of PS3.8 (PDUs, association establishment, release and
// abort) and the DIMSE message exchange of PS3.7, in both the SCP
// (acceptor) and SCU (requestor) roles. It knows nothing of the archive:
// components register a Handler per SOP class in a Registry, together
// with the transfer syntaxes they accept, and the Registry drives
// presentation context negotiation.
//
// A Server accepts associations:
//
//	reg := &dicomnet.Registry{}
//	reg.Handle(ctImageStorage, []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian}, storeHandler)
//	srv := dicomnet.NewServer(dicomnet.ServerOptions{AETitle: "IMAGINGHUB", Registry: reg})
//	go srv.ListenAndServe(":11112")
//	defer srv.Shutdown(ctx)
//
// Handlers stream: Request.Data yields the data set as P-DATA-TF fragments
// arrive, and the ResponseWriter sends any number of Pending responses and
// one final response, each with an optional data set.
//
// Dial opens an association as SCU; Association.Echo, Association.Store and
// the generic Association.Request serve C-ECHO, C-STORE and every other
// DIMSE request. Requests the peer sends back on the same association (the
// C-STORE sub-operations of a C-GET) are served by DialOptions.Registry.
package dicomnet
