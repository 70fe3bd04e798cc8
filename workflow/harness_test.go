package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/dicomweb"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hl7out"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/qr"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
	"github.com/imaginghub/imaginghub/workflow"
	"github.com/imaginghub/imaginghub/worklist"
)

// parts are the components of a whole hub, built the way
// cmd/imaginghub/components.go builds them.
type parts struct {
	in  *ingest.Ingest
	hl7 *hl7intake.Listener
	wl  *worklist.Worklist
	wf  *workflow.Workflow
}

// addAll puts every component on rt: ingest with Q/R and the worklist on
// the DICOM listener, DICOMweb, the HL7 listener with both bridges, hl7out
// and workflow.
func addAll(rt *hub.Runtime) (*parts, error) {
	p := &parts{}
	var err error
	if p.in, err = ingest.New(rt); err != nil {
		return nil, err
	}
	if _, err = qr.New(rt, rt.DICOM, qr.Options{}); err != nil {
		return nil, err
	}
	if p.wl, err = worklist.New(rt, rt.DICOM, worklist.Options{}); err != nil {
		return nil, err
	}
	web, err := dicomweb.New(rt, nil, dicomweb.Options{})
	if err != nil {
		return nil, err
	}
	if p.hl7, err = hl7intake.New(rt, append(hisbridge.Routes(), risbridge.Routes()...)...); err != nil {
		return nil, err
	}
	his, err := hisbridge.New(rt)
	if err != nil {
		return nil, err
	}
	ris, err := risbridge.New(rt)
	if err != nil {
		return nil, err
	}
	out := hl7out.New(rt)
	out.ScanInterval = 100 * time.Millisecond
	out.BackOff = []time.Duration{200 * time.Millisecond}
	opts := workflow.OptionsFrom(rt.Config)
	opts.BackOff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond}
	if p.wf, err = workflow.New(rt, opts); err != nil {
		return nil, err
	}
	for _, c := range []hub.Component{p.in, web, p.hl7, his, ris, out, p.wl, p.wf} {
		rt.Server.Add(c)
	}
	return p, nil
}

// peer is a test RIS or PMS: an MLLP listener answering AA and keeping
// every message it received.
type peer struct {
	srv  *hl7.Server
	addr string
	mu   sync.Mutex
	msgs []*hl7.Message
}

// startHub starts a hub with cfg and every workflow part on it.
func startHub(tb testing.TB, cfg config.Config) (*hub.Runtime, *parts) {
	tb.Helper()
	var p *parts
	rt := hubtest.Start(tb, cfg, func(rt *hub.Runtime) {
		var err error
		if p, err = addAll(rt); err != nil {
			tb.Fatal(err)
		}
	})
	return rt, p
}

func startPeer(t testing.TB) *peer {
	t.Helper()
	p := &peer{}
	p.srv = &hl7.Server{Handler: hl7.HandlerFunc(func(_ context.Context, m *hl7.Message) []byte {
		p.mu.Lock()
		p.msgs = append(p.msgs, m)
		p.mu.Unlock()
		ack, _ := hl7.NewACK(m, hl7.AA, nil)
		return ack
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Close() })
	return p
}

func (p *peer) messages() []*hl7.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*hl7.Message(nil), p.msgs...)
}

// distinct returns the messages by MSH-10: a sender may repeat a message
// whose acknowledgment it lost, and receivers treat a repeated MSH-10 as
// the same message (HL7 2.5.1 §2.10.1).
func (p *peer) distinct() map[string]*hl7.Message {
	out := map[string]*hl7.Message{}
	for _, m := range p.messages() {
		out[m.Header().MessageControlID] = m
	}
	return out
}

// testConfig is a hub configuration with quick study stability and the
// peers' addresses.
func testConfig(t testing.TB, ris, pms *peer) config.Config {
	cfg := hubtest.Config(t)
	cfg.Study.StableAfter = 300 * time.Millisecond
	if ris != nil {
		cfg.RIS.MLLPAddr = ris.addr
	}
	if pms != nil {
		cfg.PMS.MLLPAddr = pms.addr
	}
	return cfg
}

func seg(lines ...string) []byte { return []byte(strings.Join(lines, "\r") + "\r") }

func sendHL7(t testing.TB, addr string, msg []byte) {
	t.Helper()
	c := &hl7.Client{Addr: addr, Timeout: 10 * time.Second}
	defer c.Close()
	for attempt := 0; ; attempt++ {
		ack, err := c.Send(context.Background(), msg)
		if err == nil && ack.AckCode() == hl7.AA {
			return
		}
		if attempt > 50 {
			t.Fatalf("HL7 send: %v %v", err, ack)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scenario is one patient's day, with its own identifiers.
type scenario struct {
	n                         int
	patientID, issuer         string
	placer, filler, accession string
	studyUID                  string
	today                     string
}

func newScenario(n int) scenario {
	return scenario{
		n: n, patientID: fmt.Sprintf("SYNPAT-%d", n), issuer: "GENHOSP",
		placer: fmt.Sprintf("PL-%d", n), filler: fmt.Sprintf("FL-%d", n), accession: fmt.Sprintf("ACC-%d", n),
		studyUID: synth.DerivedUID(int64(n), "workflow-study"),
		today:    time.Now().Format("20060102"),
	}
}

func (s scenario) adt() []byte {
	return seg(fmt.Sprintf(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|%s090000||ADT^A04|ADT-%d|P|2.5`, s.today, s.n),
		fmt.Sprintf(`EVN|A04|%s090000`, s.today),
		fmt.Sprintf(`PID|1||%s^^^%s^MR||Synthetic^Sally^Q||19800101|F`, s.patientID, s.issuer),
		fmt.Sprintf(`PV1|1|O|RAD^1^A||||||||||||||||VIS-%d`, s.n))
}

func (s scenario) orm() []byte {
	return seg(fmt.Sprintf(`MSH|^~\&|RIS|GENHOSP|IMAGINGHUB|RADIOLOGY|%s091000||ORM^O01|ORM-%d|P|2.3.1`, s.today, s.n),
		fmt.Sprintf(`PID|1||%s^^^%s||Synthetic^Sally^Q||19800101|F`, s.patientID, s.issuer),
		fmt.Sprintf(`PV1|1|O||||||777^Referrer^Rob|||||||||||VIS-%d`, s.n),
		fmt.Sprintf(`ORC|NW|%s|%s||SC||^^^%s100000^^R|||||555^Orderer^Olga`, s.placer, s.filler, s.today),
		fmt.Sprintf(`OBR|1|%s|%s|CTHEAD^CT head w/o contrast^L||||||||||||||%s|RP-%d|SPS-%d|CT01_AE|||CT`, s.placer, s.filler, s.accession, s.n, s.n),
		fmt.Sprintf(`ZDS|%s^100^Application^DICOM`, s.studyUID))
}

func (s scenario) oru(status string, seq int) []byte {
	return seg(fmt.Sprintf(`MSH|^~\&|REPORTING|GENHOSP|IMAGINGHUB|RADIOLOGY|%s120000||ORU^R01^ORU_R01|ORU-%d-%d|P|2.4`, s.today, s.n, seq),
		fmt.Sprintf(`PID|1||%s^^^%s||Synthetic^Sally`, s.patientID, s.issuer),
		fmt.Sprintf(`OBR|1|%s|%s|CTHEAD^CT head^L|||%s113000|||||||||||%s`, s.placer, s.filler, s.today, s.accession),
		fmt.Sprintf(`OBX|1|TX|REPORT^Report^L||No acute findings.||||||%s`, status))
}

var (
	tPatientName = dicomfile.NewTag(0x0010, 0x0010)
	tAccession   = dicomfile.NewTag(0x0008, 0x0050)
	tStudyUID    = dicomfile.NewTag(0x0020, 0x000D)
)

func dialDICOM(t testing.TB, addr string, extra ...dicomnet.ProposedContext) *dicomnet.Association {
	t.Helper()
	pcs := append(worklist.ProposedContexts(),
		dicomnet.ProposedContext{AbstractSyntax: synth.CTImageStorage, TransferSyntaxes: []string{dicomfile.ExplicitVRLittleEndian}},
		dicomnet.ProposedContext{AbstractSyntax: qr.StudyRootFind, TransferSyntaxes: []string{dicomfile.ExplicitVRLittleEndian}})
	pcs = append(pcs, extra...)
	var as *dicomnet.Association
	var err error
	for range 50 {
		as, err = dicomnet.Dial(context.Background(), addr, dicomnet.DialOptions{
			CallingAETitle: "CT01_AE", CalledAETitle: "IMAGINGHUB", PresentationContexts: pcs})
		if err == nil {
			return as
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("dial DICOM: %v", err)
	return nil
}

// acquire runs the modality's part: MWL query, MPPS IN PROGRESS, C-STORE
// of n instances under a deliberately wrong patient name, MPPS COMPLETED.
// It returns the MPPS SOP Instance UID.
func (s scenario) acquire(t testing.TB, as *dicomnet.Association, n int) string {
	t.Helper()
	ctx := context.Background()
	var items []dicomjson.DataSet
	testenv.WaitFor(t, "worklist item", 20*time.Second, func() bool {
		var err error
		items, err = worklist.Find(ctx, as, worklist.Query{AccessionNumber: s.accession}.DataSet())
		return err == nil && len(items) == 1
	})
	it := items[0]
	if got := it.String(tStudyUID); got != s.studyUID {
		t.Fatalf("worklist Study Instance UID %q, want %q", got, s.studyUID)
	}
	mppsUID := synth.DerivedUID(int64(s.n), "workflow-mpps")
	if _, err := worklist.CreateMPPS(ctx, as, mppsUID, worklist.MPPSInProgress(it, "CT01_AE", fmt.Sprintf("PPS-%d", s.n), s.today, "093000")); err != nil {
		t.Fatalf("MPPS N-CREATE: %v", err)
	}
	series := synth.DerivedUID(int64(s.n), "workflow-series")
	for i := 1; i <= n; i++ {
		var buf bytes.Buffer
		if _, err := synth.CT(&buf, synth.Options{Seed: int64(s.n*1000 + i), PatientName: "WRONG^SCANNER^NAME", PatientID: s.patientID,
			StudyInstanceUID: s.studyUID, SeriesInstanceUID: series, AccessionNumber: s.accession, StudyDate: s.today,
			InstanceNumber: i, Rows: 16, Columns: 16, TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian}); err != nil {
			t.Fatal(err)
		}
		meta, err := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		st, err := as.Store(ctx, synth.CTImageStorage, meta.MediaStorageSOPInstanceUID, dicomfile.ExplicitVRLittleEndian,
			bytes.NewReader(buf.Bytes()[meta.DataSetOffset():]), nil)
		if err != nil || st != dicomnet.StatusSuccess {
			t.Fatalf("C-STORE: 0x%04X %v", st, err)
		}
	}
	if err := worklist.SetMPPS(ctx, as, mppsUID, worklist.MPPSFinal(worklist.PPSCompleted, s.today, "094500", series)); err != nil {
		t.Fatalf("MPPS N-SET: %v", err)
	}
	return mppsUID
}

func httpJSON(t testing.TB, method, url string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return res.StatusCode
}

// findStudy runs a Study Root C-FIND for one study and returns its
// PatientName, PatientID and AccessionNumber.
func findStudy(t testing.TB, as *dicomnet.Association, uid string) map[string]string {
	t.Helper()
	var got map[string]string
	_, err := qr.Find(context.Background(), as, qr.StudyRootFind, catalog.StudyLevel,
		map[string]string{"StudyInstanceUID": uid, "PatientName": "", "PatientID": "", "IssuerOfPatientID": "", "AccessionNumber": "", "PatientBirthDate": ""},
		func(m map[string]string) error { got = m; return nil })
	if err != nil {
		t.Fatalf("C-FIND: %v", err)
	}
	return got
}
