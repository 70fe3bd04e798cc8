package qr_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/qr"
)

// archive is a running hub with ingest and Q/R, holding two synthetic
// studies stored through the hub's DICOM port, and a third, catalogued
// only, whose file is missing.
type archive struct {
	rt         *hub.Runtime
	host, port string
	studyA     string // DOE^JANE, 20240102, 3 CT instances
	studyB     string // DOE^JOHN, 20240320, 2 CT instances
	studyC     string // Müller^Anna, 20230101, no file
	storeDir   string // where the C-MOVE destination writes
	storePort  string
}

func startArchive(t *testing.T) *archive {
	t.Helper()
	testenv.DCMTK(t, "storescu", "storescp", "findscu", "movescu", "getscu", "dcmdump")
	a := &archive{storeDir: t.TempDir(), storePort: testenv.FreePort(t)}
	// The C-MOVE destination: DCMTK storescp in a temporary directory.
	scp := exec.Command("storescp", "-aet", "STORESCP", "-od", a.storeDir, a.storePort)
	if err := scp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { scp.Process.Kill(); scp.Wait() })
	remotes, err := config.ParseRemotes("STORESCP=127.0.0.1:" + a.storePort + ", NOWHERE=127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	var in *ingest.Ingest
	a.rt = hubtest.Start(t, hubtest.Config(t), func(rt *hub.Runtime) {
		var err error
		if in, err = ingest.New(rt); err != nil {
			t.Fatal(err)
		}
		q, err := qr.New(rt, in.Registry, qr.Options{Remotes: remotes})
		if err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(in)
		rt.Server.Add(q)
	})
	a.host, a.port, _ = net.SplitHostPort(in.Addr())

	studies := []struct {
		seed                      int64
		n                         int
		name, id, date, time, acc string
	}{
		{1, 3, "DOE^JANE", "QR-1", "20240102", "101500", "QRACC1"},
		{2, 2, "DOE^JOHN", "QR-2", "20240320", "080000", "QRACC2"},
	}
	var uids []string
	for _, s := range studies {
		paths, err := synth.WriteStudy(t.TempDir(), s.n, synth.Options{Seed: s.seed, PatientName: s.name, PatientID: s.id,
			StudyDate: s.date, StudyTime: s.time, AccessionNumber: s.acc, Rows: 16, Columns: 16})
		if err != nil {
			t.Fatal(err)
		}
		testenv.Run(t, "storescu", append([]string{"-aec", "IMAGINGHUB", "-aet", "MODALITY", a.host, a.port}, paths...)...)
		res, err := a.rt.Catalog.Search(context.Background(), catalog.Query{Level: catalog.StudyLevel, Filters: map[string]string{"PatientID": s.id}})
		if err != nil || len(res) != 1 {
			t.Fatalf("stored study %s: %d results, %v", s.id, len(res), err)
		}
		uids = append(uids, res[0].Study.StudyInstanceUID)
	}
	a.studyA, a.studyB = uids[0], uids[1]
	a.studyC = "2.25.31415926.1"
	_, err = a.rt.Catalog.StoreInstance(context.Background(), catalog.InstanceRecord{
		Patient: catalog.Patient{PatientID: "QR-3", PatientName: "Müller^Anna", PatientSex: "F"},
		Study:   catalog.Study{StudyInstanceUID: a.studyC, StudyDate: "20230101", StudyTime: "120000", AccessionNumber: "QRACC3"},
		Series:  catalog.Series{SeriesInstanceUID: a.studyC + ".1", Modality: "MR", SeriesNumber: 1},
		Instance: catalog.Instance{SOPInstanceUID: a.studyC + ".1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.4",
			TransferSyntaxUID: "1.2.840.10008.1.2", BlobKey: "missing/blob", InstanceNumber: 1},
	}, catalog.KeepFirst)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dump reads a DICOM file with dcmdump and returns its top-level values
// by keyword.
func dump(t *testing.T, path string) map[string]string {
	t.Helper()
	out := testenv.Run(t, "dcmdump", "-q", "+U8", "-Un", path)
	vals := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "(") {
			continue // nested items are indented
		}
		fields := strings.Fields(line)
		keyword := fields[len(fields)-1]
		v := ""
		if i, j := strings.Index(line, "["), strings.LastIndex(line, "]"); i >= 0 && j > i {
			v = line[i+1 : j]
		} else if len(fields) > 2 && !strings.HasPrefix(fields[2], "(") {
			v = fields[2] // binary values print without brackets
		}
		vals[keyword] = v
	}
	return vals
}

// findscu runs a C-FIND with DCMTK findscu and returns the responses'
// identifiers, in order, as dcmdump reads them.
func (a *archive) findscu(t *testing.T, model string, keys ...string) []map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{model, "-aet", "FINDSCU", "-aec", "IMAGINGHUB", "-X", "-od", dir, a.host, a.port}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	testenv.Run(t, "findscu", args...)
	files, _ := filepath.Glob(filepath.Join(dir, "rsp*.dcm"))
	slices.Sort(files)
	var out []map[string]string
	for _, f := range files {
		out = append(out, dump(t, f))
	}
	return out
}

func TestFindWithDCMTK(t *testing.T) {
	a := startArchive(t)
	cases := []struct {
		name  string
		model string
		keys  []string
		field string   // keyword compared across responses
		want  []string // its values, in response order
		check map[string]string
	}{
		{name: "study root, wildcard name", model: "-S",
			keys:  []string{"QueryRetrieveLevel=STUDY", "PatientName=DOE*", "StudyInstanceUID", "StudyDate", "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedInstances", "PatientBirthDate", "StudyDescription"},
			field: "AccessionNumber", want: []string{"QRACC2", "QRACC1"}},
		{name: "study root, date range", model: "-S",
			keys:  []string{"QueryRetrieveLevel=STUDY", "StudyDate=20240101-20240131", "AccessionNumber", "NumberOfStudyRelatedInstances", "ModalitiesInStudy"},
			field: "AccessionNumber", want: []string{"QRACC1"},
			check: map[string]string{"NumberOfStudyRelatedInstances": "3", "ModalitiesInStudy": "CT", "QueryRetrieveLevel": "STUDY"}},
		{name: "study root, open range", model: "-S",
			keys:  []string{"QueryRetrieveLevel=STUDY", "StudyDate=-20240131", "AccessionNumber"},
			field: "AccessionNumber", want: []string{"QRACC1", "QRACC3"}},
		{name: "question mark", model: "-S",
			keys:  []string{"QueryRetrieveLevel=STUDY", "PatientName=DOE^JO?N"},
			field: "PatientName", want: []string{"DOE^JOHN"}},
		{name: "non-ASCII name in UTF-8", model: "-S",
			keys:  []string{"QueryRetrieveLevel=STUDY", "PatientID=QR-3", "PatientName", "SpecificCharacterSet"},
			field: "PatientName", want: []string{"Müller^Anna"},
			check: map[string]string{"SpecificCharacterSet": "ISO_IR 192"}},
		{name: "UID list", model: "-S",
			keys:  []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + a.studyA + `\` + a.studyC, "AccessionNumber"},
			field: "AccessionNumber", want: []string{"QRACC1", "QRACC3"}},
		{name: "unknown key echoed empty", model: "-S",
			keys:  []string{"QueryRetrieveLevel=STUDY", "AccessionNumber=QRACC1", "PatientWeight", "RetrieveAETitle", "InstanceAvailability"},
			field: "AccessionNumber", want: []string{"QRACC1"},
			check: map[string]string{"PatientWeight": "", "RetrieveAETitle": "IMAGINGHUB", "InstanceAvailability": "ONLINE"}},
		{name: "series level", model: "-S",
			keys:  []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + a.studyA, "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances"},
			field: "Modality", want: []string{"CT"},
			check: map[string]string{"NumberOfSeriesRelatedInstances": "3", "QueryRetrieveLevel": "SERIES"}},
		{name: "image level", model: "-S",
			keys:  []string{"QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + a.studyA, "SeriesInstanceUID=" + seriesOf(t, a, a.studyA), "InstanceNumber", "SOPClassUID", "Rows"},
			field: "InstanceNumber", want: []string{"1", "2", "3"},
			check: map[string]string{"SOPClassUID": synth.CTImageStorage, "Rows": "16"}},
		{name: "patient root, patient level", model: "-P",
			keys:  []string{"QueryRetrieveLevel=PATIENT", "PatientName=DOE*", "PatientID"},
			field: "PatientID", want: []string{"QR-1", "QR-2"}},
		{name: "patient root, study level", model: "-P",
			keys:  []string{"QueryRetrieveLevel=STUDY", "PatientID=QR-2", "AccessionNumber", "StudyDate"},
			field: "AccessionNumber", want: []string{"QRACC2"},
			check: map[string]string{"StudyDate": "20240320"}},
		{name: "patient root without patient ID fails", model: "-P",
			keys: []string{"QueryRetrieveLevel=STUDY", "AccessionNumber"}},
		{name: "study root has no patient level", model: "-S",
			keys: []string{"QueryRetrieveLevel=PATIENT", "PatientID"}},
		{name: "malformed date fails", model: "-S",
			keys: []string{"QueryRetrieveLevel=STUDY", "StudyDate=2024", "AccessionNumber"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rsps := a.findscu(t, tc.model, tc.keys...)
			var got []string
			for _, r := range rsps {
				got = append(got, r[tc.field])
				for _, k := range tc.keys {
					kw, _, _ := strings.Cut(k, "=")
					if _, ok := r[kw]; !ok {
						t.Errorf("response lacks requested key %s: %v", kw, r)
					}
				}
				for k, v := range tc.check {
					if r[k] != v {
						t.Errorf("%s = %q, want %q", k, r[k], v)
					}
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s of responses = %q, want %q", tc.field, got, tc.want)
			}
		})
	}
}

func TestFindSCU(t *testing.T) {
	a := startArchive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as, err := dicomnet.Dial(ctx, net.JoinHostPort(a.host, a.port), dicomnet.DialOptions{CallingAETitle: "QRSCU", CalledAETitle: "IMAGINGHUB",
		PresentationContexts: []dicomnet.ProposedContext{{AbstractSyntax: qr.StudyRootFind, TransferSyntaxes: []string{dicomnet.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release(ctx)
	var got []string
	status, err := qr.Find(ctx, as, qr.StudyRootFind, catalog.StudyLevel, map[string]string{"PatientName": "DOE*", "AccessionNumber": "", "Rows": ""},
		func(m map[string]string) error { got = append(got, m["AccessionNumber"]); return nil })
	if err != nil || status != dicomnet.StatusSuccess || !slices.Equal(got, []string{"QRACC2", "QRACC1"}) {
		t.Errorf("Find = %04X, %v, %q", status, err, got)
	}
	stop := errors.New("enough")
	status, err = qr.Find(ctx, as, qr.StudyRootFind, catalog.StudyLevel, map[string]string{"AccessionNumber": ""},
		func(map[string]string) error { return stop })
	if !errors.Is(err, stop) || (status != dicomnet.StatusCancel && status != dicomnet.StatusSuccess) {
		t.Errorf("Find stopped by the callback = %04X, %v", status, err)
	}
	if _, err := qr.Find(ctx, as, qr.StudyRootFind, catalog.StudyLevel, map[string]string{"NoSuchKeyword": ""}, nil); !errors.Is(err, qr.ErrUnknownKeyword) {
		t.Errorf("unknown keyword: %v", err)
	}
	_, err = qr.Find(ctx, as, qr.StudyRootFind, catalog.SeriesLevel, map[string]string{"Modality": ""}, nil)
	var se *dicomnet.StatusError
	if !errors.As(err, &se) || se.Status != dicomnet.StatusDataSetDoesNotMatchSOPClass {
		t.Errorf("series query without study UID: %v", err)
	}
}

func seriesOf(t *testing.T, a *archive, study string) string {
	t.Helper()
	res, err := a.rt.Catalog.Search(context.Background(), catalog.Query{Level: catalog.SeriesLevel, Filters: map[string]string{"StudyInstanceUID": study}})
	if err != nil || len(res) == 0 {
		t.Fatalf("series of %s: %v", study, err)
	}
	return res[0].Series.SeriesInstanceUID
}

// files lists the DICOM files under dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func waitFiles(t *testing.T, dir string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := files(t, dir)
		if len(f) >= n || time.Now().After(deadline) {
			return f
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMoveWithDCMTK(t *testing.T) {
	a := startArchive(t)
	move := func(t *testing.T, dest string, keys ...string) string {
		args := []string{"-S", "-v", "-aet", "MOVESCU", "-aec", "IMAGINGHUB", "-aem", dest, a.host, a.port}
		for _, k := range keys {
			args = append(args, "-k", k)
		}
		out, _ := exec.Command("movescu", args...).CombinedOutput()
		return string(out)
	}
	t.Run("study", func(t *testing.T) {
		out := move(t, "STORESCP", "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+a.studyA)
		if !strings.Contains(out, "Success") {
			t.Errorf("movescu output lacks Success:\n%s", out)
		}
		got := waitFiles(t, a.storeDir, 3)
		if len(got) != 3 {
			t.Fatalf("destination received %d files, want 3", len(got))
		}
		for _, f := range got {
			if v := dump(t, f); v["StudyInstanceUID"] != a.studyA || v["PatientName"] != "DOE^JANE" {
				t.Errorf("%s: study %q patient %q", f, v["StudyInstanceUID"], v["PatientName"])
			}
		}
	})
	t.Run("missing file is a failed sub-operation", func(t *testing.T) {
		out := move(t, "STORESCP", "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+a.studyB+`\`+a.studyC)
		if !strings.Contains(out, "Warning") && !strings.Contains(out, "0xb000") {
			t.Errorf("movescu output lacks the B000 warning:\n%s", out)
		}
		if got := waitFiles(t, a.storeDir, 5); len(got) != 5 {
			t.Errorf("destination holds %d files, want 5", len(got))
		}
	})
	t.Run("counters and failed list with our SCU", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		as, err := dicomnet.Dial(ctx, net.JoinHostPort(a.host, a.port), dicomnet.DialOptions{CallingAETitle: "QRSCU", CalledAETitle: "IMAGINGHUB",
			PresentationContexts: []dicomnet.ProposedContext{{AbstractSyntax: qr.StudyRootMove, TransferSyntaxes: []string{dicomnet.ImplicitVRLittleEndian}}}})
		if err != nil {
			t.Fatal(err)
		}
		defer as.Release(ctx)
		var remaining []int
		res, err := qr.Move(ctx, as, qr.StudyRootMove, "STORESCP", catalog.StudyLevel,
			map[string]string{"StudyInstanceUID": a.studyC + `\` + a.studyB},
			func(r, c, f, w int) { remaining = append(remaining, r) })
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != dicomnet.StatusCoercionOfDataElements || res.Completed != 2 || res.Failed != 1 || res.Warning != 0 {
			t.Errorf("Move = %+v, want status B000, 2 completed, 1 failed", res)
		}
		if !slices.Equal(res.FailedSOPInstanceUIDs, []string{a.studyC + ".1.1"}) {
			t.Errorf("Failed SOP Instance UID List = %q", res.FailedSOPInstanceUIDs)
		}
		if !slices.Equal(remaining, []int{2, 1}) {
			t.Errorf("pending remaining counters = %v, want [2 1]", remaining)
		}
	})
	t.Run("unknown destination", func(t *testing.T) {
		out := move(t, "UNKNOWNAE", "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+a.studyA)
		if !strings.Contains(strings.ToLower(out), "a801") && !strings.Contains(out, "MoveDestinationUnknown") {
			t.Errorf("movescu output lacks A801:\n%s", out)
		}
	})
	t.Run("unreachable destination", func(t *testing.T) {
		out := move(t, "NOWHERE", "QueryRetrieveLevel=SERIES", "StudyInstanceUID="+a.studyA, "SeriesInstanceUID="+seriesOf(t, a, a.studyA))
		if !strings.Contains(strings.ToLower(out), "a702") && !strings.Contains(out, "OutOfResourcesSubOperations") {
			t.Errorf("movescu output lacks A702:\n%s", out)
		}
	})
}

func TestGetWithDCMTK(t *testing.T) {
	a := startArchive(t)
	for _, tc := range []struct {
		name string
		keys []string
		want int
	}{
		{"study", []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + a.studyB}, 2},
		{"series", []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + a.studyA, "SeriesInstanceUID=" + seriesOf(t, a, a.studyA)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-S", "-aet", "GETSCU", "-aec", "IMAGINGHUB", "-od", dir, a.host, a.port}
			for _, k := range tc.keys {
				args = append(args, "-k", k)
			}
			testenv.Run(t, "getscu", args...)
			got := files(t, dir)
			if len(got) != tc.want {
				t.Fatalf("getscu wrote %d files, want %d", len(got), tc.want)
			}
			for _, f := range got {
				if v := dump(t, f); v["Modality"] != "CT" || v["SOPInstanceUID"] == "" {
					t.Errorf("%s: %v", f, v)
				}
			}
		})
	}
}

// TestGetCancel sends C-CANCEL from inside the first C-STORE sub-operation
// of a C-GET: the SCP stops and answers Cancel with its counters
// (PS3.4 §C.4.3.3.2).
func TestGetCancel(t *testing.T) {
	a := startArchive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rsps *dicomnet.Responses
	stores := 0
	reg := &dicomnet.Registry{}
	both := []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian}
	reg.Handle(synth.CTImageStorage, both, dicomnet.HandlerFunc(
		func(ctx context.Context, w dicomnet.ResponseWriter, r *dicomnet.Request) {
			stores++
			if stores == 1 {
				if err := rsps.Cancel(); err != nil {
					t.Errorf("Cancel: %v", err)
				}
			}
			w.Respond(&dicomnet.Command{Status: dicomnet.StatusSuccess}, nil)
		}))
	as, err := dicomnet.Dial(ctx, net.JoinHostPort(a.host, a.port), dicomnet.DialOptions{CallingAETitle: "GETSCU", CalledAETitle: "IMAGINGHUB",
		Registry: reg,
		PresentationContexts: []dicomnet.ProposedContext{
			{AbstractSyntax: qr.StudyRootGet, TransferSyntaxes: []string{dicomnet.ImplicitVRLittleEndian}},
			{AbstractSyntax: synth.CTImageStorage, TransferSyntaxes: both, SCPRole: true},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release(ctx)
	pc, _ := as.PresentationContext(qr.StudyRootGet, "")
	enc := []byte{}
	// QueryRetrieveLevel=STUDY, StudyInstanceUID (Implicit VR LE).
	appendElem := func(g, e uint16, v string) {
		if len(v)%2 == 1 {
			v += "\x00"
		}
		enc = append(enc, byte(g), byte(g>>8), byte(e), byte(e>>8), byte(len(v)), byte(len(v)>>8), 0, 0)
		enc = append(enc, v...)
	}
	appendElem(0x0008, 0x0052, "STUDY ")
	appendElem(0x0020, 0x000D, a.studyA)
	rsps, err = as.Request(ctx, pc, &dicomnet.Command{CommandField: dicomnet.CGetRQ, AffectedSOPClassUID: qr.StudyRootGet}, bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := rsps.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Final() {
			continue
		}
		c := r.Command
		if c.Status != dicomnet.StatusCancel {
			t.Fatalf("final status 0x%04X after %d sub-operations, want 0xFE00", c.Status, stores)
		}
		if c.NumberOfRemainingSuboperations == nil || *c.NumberOfRemainingSuboperations == 0 {
			t.Errorf("Cancel response without remaining sub-operations: %+v", c)
		}
		break
	}
	if stores >= 3 {
		t.Errorf("%d sub-operations after C-CANCEL, want fewer than 3", stores)
	}
}

// An instance stored in Implicit VR Little Endian is retrieved by a C-GET
// SCU that accepted only Explicit VR Little Endian for it (getscu's
// default): the sub-operation re-encodes it as it streams, element values
// unchanged.
func TestGetReencodesLittleEndian(t *testing.T) {
	a := startArchive(t)
	study := dicomfile.NewUID()
	paths, err := synth.WriteStudy(t.TempDir(), 1, synth.Options{Seed: 77, StudyInstanceUID: study, Rows: 16, Columns: 16})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "storescu", "-xi", "-aec", "IMAGINGHUB", a.host, a.port, paths[0])
	dir := t.TempDir()
	testenv.Run(t, "getscu", "-S", "-aec", "IMAGINGHUB", "-od", dir, a.host, a.port, "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study)
	got := files(t, dir)
	if len(got) != 1 {
		t.Fatalf("getscu wrote %d files, want 1", len(got))
	}
	pixels := func(path string) (string, []byte) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := dicomfile.ReadFileMeta(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		ds := b[meta.DataSetOffset():]
		h, err := dicomfile.ParseHeader(bytes.NewReader(ds), meta.TransferSyntaxUID)
		if err != nil || h.PixelData.Tag == 0 {
			t.Fatalf("%s: %v", path, err)
		}
		return meta.TransferSyntaxUID, ds[h.PixelData.Offset:]
	}
	ts0, px0 := pixels(paths[0])
	ts1, px1 := pixels(got[0])
	if ts0 != dicomfile.ImplicitVRLittleEndian || ts1 != dicomfile.ExplicitVRLittleEndian {
		t.Fatalf("stored %s, received %s", ts0, ts1)
	}
	if !bytes.Equal(px0, px1) {
		t.Fatalf("pixel data differs after re-encoding (%d and %d bytes)", len(px0), len(px1))
	}
	if v := dump(t, got[0]); v["StudyInstanceUID"] != study {
		t.Fatalf("received %v", v)
	}
}
