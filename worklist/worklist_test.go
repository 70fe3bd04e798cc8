package worklist_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
	"github.com/imaginghub/imaginghub/worklist"
)

type testHub struct {
	rt     *hub.Runtime
	in     *ingest.Ingest
	wl     *worklist.Worklist
	hl7    *hl7.Client
	events *hubtest.Recorder
	dicom  string
}

// startHub starts a hub with the DICOM listener and the worklist; with
// withHL7 also the MLLP listener and both bridges.
func startHub(t *testing.T, withHL7 bool, opts worklist.Options) *testHub {
	t.Helper()
	th := &testHub{}
	var l *hl7intake.Listener
	th.rt = hubtest.Start(t, hubtest.Config(t), func(rt *hub.Runtime) {
		var err error
		if th.in, err = ingest.New(rt); err != nil {
			t.Fatal(err)
		}
		if th.wl, err = worklist.New(rt, th.in.Registry, opts); err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(th.in)
		if withHL7 {
			if l, err = hl7intake.New(rt, append(hisbridge.Routes(), risbridge.Routes()...)...); err != nil {
				t.Fatal(err)
			}
			his, err := hisbridge.New(rt)
			if err != nil {
				t.Fatal(err)
			}
			ris, err := risbridge.New(rt)
			if err != nil {
				t.Fatal(err)
			}
			rt.Server.Add(l)
			rt.Server.Add(his)
			rt.Server.Add(ris)
		}
		rt.Server.Add(th.wl)
	})
	th.dicom = th.in.Addr()
	if withHL7 {
		th.hl7 = &hl7.Client{Addr: l.Addr(), Timeout: 10 * time.Second}
		t.Cleanup(func() { th.hl7.Close() })
	}
	th.events = hubtest.Record(t, th.rt, "ih.procedure.>")
	return th
}

func (th *testHub) waitEvents(t *testing.T, n int) []events.Event {
	t.Helper()
	return th.events.Wait(t, n)
}

func (th *testHub) send(t *testing.T, msg string) {
	t.Helper()
	ack, err := th.hl7.Send(context.Background(), []byte(strings.ReplaceAll(msg, "\n", "\r")))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if ack.Get("MSA-1") != "AA" {
		t.Fatalf("MSA-1 %q: %s", ack.Get("MSA-1"), ack.Get("MSA-3"))
	}
}

func (th *testHub) do(t *testing.T, method, path string, body any, v any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+th.rt.Server.HTTPAddr()+path, r)
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(rsp.Body).Decode(v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return rsp.StatusCode
}

func (th *testHub) dial(t *testing.T) *dicomnet.Association {
	t.Helper()
	as, err := dicomnet.Dial(context.Background(), th.dicom, dicomnet.DialOptions{
		CallingAETitle: "CT01_AE", CalledAETitle: "IMAGINGHUB", PresentationContexts: append(worklist.ProposedContexts(),
			dicomnet.ProposedContext{AbstractSyntax: dicomnet.VerificationSOPClass, TransferSyntaxes: []string{dicomnet.ImplicitVRLittleEndian}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Release(context.Background()) })
	return as
}

// findscu runs DCMTK findscu -W with the keys and reads the responses it
// extracted to files.
func findscu(t *testing.T, addr string, extra []string, keys ...string) []dicomjson.DataSet {
	t.Helper()
	dir := t.TempDir()
	host, port, _ := strings.Cut(addr, ":")
	args := append([]string{"-W", "-aet", "MR01_AE", "-aec", "IMAGINGHUB", "-X", "-od", dir}, extra...)
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	args = append(args, host, port)
	out, err := exec.Command("findscu", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("findscu %v: %v\n%s", keys, err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "rsp*.dcm"))
	sort.Strings(files)
	var sets []dicomjson.DataSet
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := dicomfile.ReadFileMeta(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		ds, err := worklist.DecodeDataSet(bytes.NewReader(b[meta.DataSetOffset():]), meta.TransferSyntaxUID)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sets = append(sets, ds)
	}
	return sets
}

func tag(g, e uint16) dicomjson.Tag { return dicomfile.NewTag(g, e) }

var (
	tAccession   = tag(0x0008, 0x0050)
	tSPSSequence = tag(0x0040, 0x0100)
	tSPSID       = tag(0x0040, 0x0009)
	tSPSStatus   = tag(0x0040, 0x0020)
	tPatientName = tag(0x0010, 0x0010)
	tCharset     = tag(0x0008, 0x0005)
)

func sps(ds dicomjson.DataSet) dicomjson.DataSet {
	if a := ds[tSPSSequence]; a != nil && len(a.Items) > 0 {
		return a.Items[0]
	}
	return dicomjson.DataSet{}
}

// keysOf lists accession/SPS ID of each response, sorted.
func keysOf(sets []dicomjson.DataSet) []string {
	var out []string
	for _, ds := range sets {
		out = append(out, ds.String(tAccession)+"/"+sps(ds).String(tSPSID))
	}
	sort.Strings(out)
	return out
}

// order messages use today's and tomorrow's dates so that "today" queries
// find them.
func orders(today, tomorrow string) (ormCT, omiMR, ormTomorrow, ormCancel, adt string) {
	ormCT = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315090000||ORM^O01|WL-1|P|2.3.1\n" +
		"PID|1||WLPAT-1^^^GENHOSP||Sample^Anna||19851212|F\n" +
		"PV1|1|O||||||777^Referrer^Rob|||||||||||V-77\n" +
		"ORC|NW|WPL-1|WFL-1||SC||^^^" + today + "100000^^R|||||555^Orderer^Olga\n" +
		"OBR|1|WPL-1|WFL-1|CTHEAD^CT head w/o contrast^L||||||||||||||WACC-1|WRP-1|WSPS-1|CT01_AE|||CT|||||||^Headache\n" +
		"ZDS|1.2.826.0.1.3680043.8.498.901^100^Application^DICOM\n"
	omiMR = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315091500||OMI^O23^OMI_O23|WL-2|P|2.5.1|||||||UNICODE UTF-8\n" +
		"PID|1||WLPAT-2^^^GENHOSP^MR||Dö^Jäne||19900202|F\n" +
		"ORC|NW|WPL-2|WFL-2||SC\n" +
		"TQ1|1||||||" + today + "110000||S\n" +
		"OBR|1|WPL-2|WFL-2|MRKNEE^MR knee^L\n" +
		"IPC|WACC-2|WRP-2||WSPS-2a|MR|KNEE^Knee protocol^L|MR01||MR01_AE\n" +
		"IPC|WACC-2|WRP-2||WSPS-2b|MR|KNEEC^Knee contrast^L|MR01||MR01_AE\n"
	ormTomorrow = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315092000||ORM^O01|WL-3|P|2.3.1\n" +
		"PID|1||WLPAT-3^^^GENHOSP||SAMPLE^Bert||19700101|M\n" +
		"ORC|NW|WPL-3|WFL-3||SC||^^^" + tomorrow + "083000^^R\n" +
		"OBR|1|WPL-3|WFL-3|CTCHEST^CT chest^L||||||||||||||WACC-3|WRP-3|WSPS-3|CT01_AE|||CT\n"
	ormCancel = "MSH|^~\\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315094000||ORM^O01|WL-4|P|2.3.1\n" +
		"PID|1||WLPAT-3^^^GENHOSP||SAMPLE^Bert\n" +
		"ORC|CA|WPL-3|WFL-3||CA\n"
	adt = "MSH|^~\\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|20260315095000||ADT^A08|WL-5|P|2.5\n" +
		"EVN|A08|20260315095000\n" +
		"PID|1||WLPAT-1^^^GENHOSP||Sample^Anna^Maria||19851212|F\n" +
		"PV1|1|I|WARD1^101^A||||||||||||||||V-77\n"
	return
}

func TestOrdersToWorklistWithFindscu(t *testing.T) {
	testenv.DCMTK(t, "findscu")
	th := startHub(t, true, worklist.Options{})
	now := time.Now()
	today, tomorrow := now.Format("20060102"), now.AddDate(0, 0, 1).Format("20060102")
	ormCT, omiMR, ormTomorrow, ormCancel, adt := orders(today, tomorrow)

	as := th.dial(t)
	began := time.Now()
	th.send(t, ormCT)
	acked := time.Since(began)
	q := worklist.Query{ScheduledStationAETitle: "CT01_AE", ScheduledProcedureStepStartDate: today}.DataSet()
	for {
		got, err := worklist.Find(context.Background(), as, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 {
			break
		}
		if time.Since(began) > 20*time.Second {
			t.Fatalf("order not on the worklist after %v", time.Since(began))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("order on the worklist %v after the HL7 message was sent (ACK after %v)", time.Since(began).Round(time.Millisecond), acked.Round(time.Millisecond))

	th.send(t, omiMR)
	th.send(t, ormTomorrow)
	waitItems(t, th, 4)

	all := []string{"-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber", "-k", "StudyInstanceUID", "-k", "RequestedProcedureID",
		"-k", "RequestedProcedureCodeSequence", "-k", "ReferencedStudySequence", "-k", "AdmissionID", "-k", "CurrentPatientLocation",
		"-k", "MedicalAlerts", "-k", "Allergies", "-k", "RequestedProcedureDescription", "-k", "SpecificCharacterSet",
		"-k", "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence", "-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
		"-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus", "-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
		"-k", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime"}
	k := func(keys ...string) []string {
		var out []string
		for i := 0; i < len(all); i += 2 {
			name, _, _ := strings.Cut(all[i+1], "=")
			overridden := slices.ContainsFunc(keys, func(k string) bool { n, _, _ := strings.Cut(k, "="); return n == name })
			if !overridden {
				out = append(out, all[i+1])
			}
		}
		return append(out, keys...)
	}
	cases := []struct {
		name  string
		extra []string
		keys  []string
		want  []string
	}{
		{"station and today", nil, k("ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT01_AE", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate="+today), []string{"WACC-1/WSPS-1"}},
		{"station and date range", nil, k("ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT01_AE", "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate="+today+"-"+tomorrow), []string{"WACC-1/WSPS-1", "WACC-3/WSPS-3"}},
		{"open date range", nil, k("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=" + tomorrow + "-"), []string{"WACC-3/WSPS-3"}},
		{"time range", nil, k("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate="+today, "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=1030-1200"), []string{"WACC-2/WSPS-2a", "WACC-2/WSPS-2b"}},
		{"patient name wildcard, any case", nil, k("PatientName=sample^*"), []string{"WACC-1/WSPS-1", "WACC-3/WSPS-3"}},
		{"patient name with ?", nil, k("PatientName=?ample^B*"), []string{"WACC-3/WSPS-3"}},
		{"accession", nil, k("AccessionNumber=WACC-2"), []string{"WACC-2/WSPS-2a", "WACC-2/WSPS-2b"}},
		{"patient ID", nil, k("PatientID=WLPAT-3"), []string{"WACC-3/WSPS-3"}},
		{"requested procedure ID", nil, k("RequestedProcedureID=WRP-1"), []string{"WACC-1/WSPS-1"}},
		{"modality and station, implicit VR", []string{"-xi"}, k("ScheduledProcedureStepSequence[0].Modality=MR", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=MR01_AE"), []string{"WACC-2/WSPS-2a", "WACC-2/WSPS-2b"}},
		{"status", nil, k("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus=SCHEDULED", "AccessionNumber=WACC-1"), []string{"WACC-1/WSPS-1"}},
		{"no match", nil, k("AccessionNumber=NOPE"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := findscu(t, th.dicom, c.extra, c.keys...)
			if g := keysOf(got); !slices.Equal(g, c.want) {
				t.Errorf("got %v, want %v", g, c.want)
			}
		})
	}

	// The return keys of IHE RAD-5 for the CT item.
	got := findscu(t, th.dicom, nil, k("AccessionNumber=WACC-1")...)
	if len(got) != 1 {
		t.Fatalf("%d responses", len(got))
	}
	ds := got[0]
	str := func(d dicomjson.DataSet, g, e uint16) string { return d.String(tag(g, e)) }
	item := func(d dicomjson.DataSet, g, e uint16) dicomjson.DataSet {
		if a := d[tag(g, e)]; a != nil && len(a.Items) > 0 {
			return a.Items[0]
		}
		return dicomjson.DataSet{}
	}
	checks := map[string][2]string{
		"PatientName":            {str(ds, 0x0010, 0x0010), "Sample^Anna"},
		"PatientID":              {str(ds, 0x0010, 0x0020), "WLPAT-1"},
		"StudyInstanceUID":       {str(ds, 0x0020, 0x000D), "1.2.826.0.1.3680043.8.498.901"},
		"RequestedProcedureID":   {str(ds, 0x0040, 0x1001), "WRP-1"},
		"AdmissionID":            {str(ds, 0x0038, 0x0010), "V-77"},
		"RequestedProcedureCode": {str(item(ds, 0x0032, 0x1064), 0x0008, 0x0100), "CTHEAD"},
		"ReferencedStudy":        {str(item(ds, 0x0008, 0x1110), 0x0008, 0x1155), "1.2.826.0.1.3680043.8.498.901"},
		"ScheduledProtocolCode":  {str(item(sps(ds), 0x0040, 0x0008), 0x0008, 0x0100), "CTHEAD"},
		"SPSStatus":              {sps(ds).String(tSPSStatus), "SCHEDULED"},
		"SPSStartTime":           {str(sps(ds), 0x0040, 0x0003), "100000"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	for _, tg := range []dicomjson.Tag{tag(0x0010, 0x2000), tag(0x0010, 0x2110), tag(0x0038, 0x0300)} {
		if _, ok := ds[tg]; !ok {
			t.Errorf("return key %v missing", tg)
		}
	}

	// Non-ASCII values come with ISO_IR 192.
	got = findscu(t, th.dicom, nil, k("AccessionNumber=WACC-2")...)
	if len(got) != 2 || got[0].String(tCharset) != "ISO_IR 192" || got[0].String(tPatientName) != "Dö^Jäne" {
		t.Errorf("UTF-8 item: %d responses, charset %q, name %q", len(got), got[0].String(tCharset), got[0].String(tPatientName))
	}

	// ADT: the visit's location reaches the items of that visit.
	th.send(t, adt)
	testenv.WaitFor(t, "current patient location", 20*time.Second, func() bool {
		sets, err := worklist.Find(context.Background(), as, worklist.Query{AccessionNumber: "WACC-1"}.DataSet())
		return err == nil && len(sets) == 1 && sets[0].String(tag(0x0038, 0x0300)) != "" && sets[0].String(tPatientName) == "Sample^Anna^Maria"
	})

	// A cancelled order leaves the worklist.
	th.send(t, ormCancel)
	testenv.WaitFor(t, "cancelled order gone", 20*time.Second, func() bool {
		sets := findscu(t, th.dicom, nil, k("ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT01_AE")...)
		return slices.Equal(keysOf(sets), []string{"WACC-1/WSPS-1"})
	})
}

func waitItems(t *testing.T, th *testHub, n int) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%d items", n), 20*time.Second, func() bool {
		var list struct{ Items []worklist.Item }
		th.do(t, "GET", "/api/worklist/items", nil, &list)
		return len(list.Items) == n
	})
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
