package qr

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

// startQR starts a hub with ingest and Q/R and fills the catalog with n
// synthetic studies (catalog rows only: enough for C-FIND).
func startQR(t *testing.T, n int) (*hub.Runtime, string) {
	t.Helper()
	var in *ingest.Ingest
	rt := hubtest.Start(t, hubtest.Config(t), func(rt *hub.Runtime) {
		var err error
		if in, err = ingest.New(rt); err != nil {
			t.Fatal(err)
		}
		if _, err := New(rt, in.Registry, Options{}); err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(in)
	})
	ctx := context.Background()
	for i := 0; i < n; i++ {
		uid := fmt.Sprintf("2.25.27182818.%d", i+1)
		_, err := rt.Catalog.StoreInstance(ctx, catalog.InstanceRecord{
			Patient:  catalog.Patient{PatientID: fmt.Sprintf("SCU-%d", i), PatientName: fmt.Sprintf("SYNTH^PATIENT%04d", i)},
			Study:    catalog.Study{StudyInstanceUID: uid, StudyDate: "20240101", AccessionNumber: fmt.Sprintf("SCU%04d", i)},
			Series:   catalog.Series{SeriesInstanceUID: uid + ".1", Modality: "OT", SeriesNumber: 1},
			Instance: catalog.Instance{SOPInstanceUID: uid + ".1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", BlobKey: "none", InstanceNumber: 1},
		}, catalog.KeepFirst)
		if err != nil {
			t.Fatal(err)
		}
	}
	return rt, in.Addr()
}

func dial(t *testing.T, addr string, sopClass, ts string) *dicomnet.Association {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as, err := dicomnet.Dial(ctx, addr, dicomnet.DialOptions{CallingAETitle: "QRTEST", CalledAETitle: "IMAGINGHUB",
		PresentationContexts: []dicomnet.ProposedContext{{AbstractSyntax: sopClass, TransferSyntaxes: []string{ts}}}})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { as.Release(context.Background()) })
	return as
}

type key struct {
	t  tag
	vr string
	v  string
}

func identifier(ts string, keys ...key) []byte {
	enc := encoder{explicit: explicitVR(ts)}
	for _, k := range keys {
		enc.add(k.t, k.vr, k.v)
	}
	return enc.bytes()
}

// find sends a C-FIND and collects every response: the statuses, and the
// identifiers parsed.
func find(t *testing.T, as *dicomnet.Association, sopClass, ts string, id []byte) ([]uint16, [][]element, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, ok := as.PresentationContext(sopClass, ts)
	if !ok {
		t.Fatalf("no presentation context for %s %s", sopClass, ts)
	}
	rsps, err := as.Request(ctx, pc, &dicomnet.Command{CommandField: dicomnet.CFindRQ, AffectedSOPClassUID: sopClass}, bytes.NewReader(id))
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	var statuses []uint16
	var ids [][]element
	for {
		r, err := rsps.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		statuses = append(statuses, r.Command.Status)
		if r.Data != nil {
			b, _ := io.ReadAll(r.Data)
			elems, err := parseIdentifier(b, ts)
			if err != nil {
				t.Fatalf("response identifier: %v", err)
			}
			ids = append(ids, elems)
		}
		if r.Final() {
			return statuses, ids, r.Command.ErrorComment
		}
	}
}

func TestFindStatuses(t *testing.T) {
	_, addr := startQR(t, 3)
	level := func(l string) key { return key{tagQueryRetrieveLevel, "CS", l} }
	for _, tc := range []struct {
		name     string
		sopClass string
		ts       string
		keys     []key
		want     []uint16
	}{
		{"implicit VR", StudyRootFind, dicomnet.ImplicitVRLittleEndian,
			[]key{level("STUDY"), {0x00080050, "SH", "SCU000?"}},
			[]uint16{0xFF00, 0xFF00, 0xFF00, 0x0000}},
		{"explicit VR single match", StudyRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("STUDY"), {0x00080050, "SH", "SCU0001"}, {0x00100010, "PN", ""}},
			[]uint16{0xFF00, 0x0000}},
		{"unsupported matching key is FF01", StudyRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("STUDY"), {0x00080050, "SH", "SCU0001"}, {0x00101030, "DS", "70"}},
			[]uint16{0xFF01, 0x0000}},
		{"no match", StudyRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("STUDY"), {0x00080050, "SH", "NONE"}},
			[]uint16{0x0000}},
		{"missing level", StudyRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{{0x00080050, "SH", ""}},
			[]uint16{0xA900}},
		{"series without study UID", StudyRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("SERIES"), {0x00080060, "CS", ""}},
			[]uint16{0xA900}},
		{"series with study UID wildcard", StudyRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("SERIES"), {0x0020000D, "UI", "2.25.*"}},
			[]uint16{0xA900}},
		{"image level needs series UID", PatientRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("IMAGE"), {0x00100020, "LO", "SCU-1"}, {0x0020000D, "UI", "2.25.27182818.2"}},
			[]uint16{0xA900}},
		{"patient root image level", PatientRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("IMAGE"), {0x00100020, "LO", "SCU-1"}, {0x0020000D, "UI", "2.25.27182818.2"}, {0x0020000E, "UI", "2.25.27182818.2.1"}, {0x00080018, "UI", ""}},
			[]uint16{0xFF00, 0x0000}},
		{"malformed range", StudyRootFind, dicomnet.ExplicitVRLittleEndian,
			[]key{level("STUDY"), {0x00080020, "DA", "2024-"}},
			[]uint16{0xC000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := dial(t, addr, tc.sopClass, tc.ts)
			statuses, ids, comment := find(t, as, tc.sopClass, tc.ts, identifier(tc.ts, tc.keys...))
			if fmt.Sprint(statuses) != fmt.Sprint(tc.want) {
				t.Fatalf("statuses = %04X, want %04X (%s)", statuses, tc.want, comment)
			}
			if tc.want[0]&0xF000 == 0xA000 || tc.want[0]&0xF000 == 0xC000 {
				if comment == "" {
					t.Errorf("failure without Error Comment")
				}
			}
			for _, id := range ids {
				// Every requested key comes back, plus the level.
				got := map[tag]bool{}
				for _, e := range id {
					got[e.tag] = true
				}
				for _, k := range tc.keys {
					if !got[k.t] {
						t.Errorf("response lacks %v", k.t)
					}
				}
			}
		})
	}
}

// TestFindCancel sends C-CANCEL right after a C-FIND that matches many
// studies: the SCP stops and answers Cancel (PS3.4 §C.4.1.2.3).
func TestFindCancel(t *testing.T) {
	const studies = 600
	_, addr := startQR(t, studies)
	ts := dicomnet.ExplicitVRLittleEndian
	as := dial(t, addr, StudyRootFind, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc, _ := as.PresentationContext(StudyRootFind, ts)
	id := identifier(ts, key{tagQueryRetrieveLevel, "CS", "STUDY"}, key{0x00100010, "PN", "SYNTH*"}, key{0x00080050, "SH", ""})
	rsps, err := as.Request(ctx, pc, &dicomnet.Command{CommandField: dicomnet.CFindRQ, AffectedSOPClassUID: StudyRootFind}, bytes.NewReader(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := rsps.Cancel(); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	pending := 0
	for {
		r, err := rsps.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if !r.Final() {
			pending++
			continue
		}
		if r.Command.Status != dicomnet.StatusCancel {
			t.Errorf("final status = 0x%04X after %d matches, want 0xFE00", r.Command.Status, pending)
		}
		break
	}
	t.Logf("%d matches before the Cancel response", pending)
	if pending >= studies {
		t.Errorf("%d matches sent after C-CANCEL, want fewer than %d", pending, studies)
	}
	// The association stays usable after a cancelled operation.
	statuses, _, _ := find(t, as, StudyRootFind, ts, identifier(ts, key{tagQueryRetrieveLevel, "CS", "STUDY"}, key{0x00080050, "SH", "SCU0007"}))
	if fmt.Sprint(statuses) != fmt.Sprint([]uint16{0xFF00, 0}) {
		t.Errorf("C-FIND after the cancelled one: statuses %04X", statuses)
	}
}
