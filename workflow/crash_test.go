package workflow_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/workflow"
	"github.com/imaginghub/imaginghub/worklist"
)

const (
	childEnv = "IMAGINGHUB_TEST_WORKFLOW_CHILD"
	// replayEnv makes the child drop the workflow's durable consumers
	// before it starts, so that every event is delivered to them again.
	replayEnv = "IMAGINGHUB_TEST_WORKFLOW_REPLAY"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child runs a whole hub from the IMAGINGHUB_* environment until killed,
// printing "<dicom> <hl7> <http>" once it is up.
func child() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	rt, err := hub.Open(ctx, cfg, hubtest.Logger())
	if err != nil {
		return fail(err)
	}
	if os.Getenv(replayEnv) != "" {
		for _, name := range []string{workflow.StableConsumer, workflow.OrdersConsumer, workflow.ProcedureConsumer,
			workflow.PatientsConsumer, workflow.ReportsConsumer, workflow.ReconciledConsumer, workflow.BillingConsumer} {
			err := rt.Bus.JetStream().DeleteConsumer(ctx, rt.Bus.StreamName(events.EventsStream), name)
			if err != nil && !strings.Contains(err.Error(), "not found") {
				return fail(err)
			}
		}
	}
	p, err := addAll(rt)
	if err != nil {
		return fail(err)
	}
	if err := rt.Server.Start(ctx); err != nil {
		return fail(err)
	}
	fmt.Println(p.in.Addr(), p.hl7.Addr(), rt.Server.HTTPAddr())
	select {}
}

// proc is the hub child process, restarted on the same data directory.
type proc struct {
	t                *testing.T
	env              []string
	mu               sync.Mutex
	cmd              *exec.Cmd
	dicom, hl7, http string
	kills, restarts  int
	exited           chan struct{}
}

func (p *proc) start(extra ...string) {
	p.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), p.env...), extra...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		p.t.Fatalf("child did not start: %v", err)
	}
	f := strings.Fields(line)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.dicom, p.hl7, p.http, p.exited = cmd, f[0], f[1], f[2], exited
	p.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	p.mu.Lock()
	p.kills++
	p.mu.Unlock()
}

func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// ensure restarts a killed child.
func (p *proc) ensure() {
	if !p.alive() {
		p.restarts++
		p.start()
	}
}

func (p *proc) addrs() (dicom, hl7Addr, http string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dicom, p.hl7, p.http
}

// retry runs a step until it succeeds, restarting the hub whenever it
// died; each step is idempotent (repeated MSH-10, duplicate SOP Instance,
// MPPS already created or ended).
func (p *proc) retry(what string, step func() error) {
	p.t.Helper()
	// An event a killed process had in hand is redelivered once its ack
	// wait (30s) ends: steps that wait on a projection may take that long.
	var err error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		p.ensure()
		if err = step(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s: %v", what, err)
}

func sendOnce(addr string, msg []byte) error {
	c := &hl7.Client{Addr: addr, Timeout: 5 * time.Second}
	defer c.Close()
	ack, err := c.Send(context.Background(), msg)
	if err != nil {
		return err
	}
	if ack.AckCode() != hl7.AA {
		return fmt.Errorf("ack %s", ack.AckCode())
	}
	return nil
}

func dialOnce(addr string) (*dicomnet.Association, error) {
	return dicomnet.Dial(context.Background(), addr, dicomnet.DialOptions{CallingAETitle: "CT01_AE", CalledAETitle: "IMAGINGHUB",
		PresentationContexts: append(worklist.ProposedContexts(),
			dicomnet.ProposedContext{AbstractSyntax: synth.CTImageStorage, TransferSyntaxes: []string{dicomfile.ExplicitVRLittleEndian}})})
}

func statusIs(err error, st uint16) bool {
	var se *dicomnet.StatusError
	return errors.As(err, &se) && se.Status == st
}

// day drives one scenario through a hub that may die at any moment.
func (p *proc) day(s scenario) {
	t := p.t
	t.Helper()
	ctx := context.Background()
	p.retry("ADT", func() error { _, h, _ := p.addrs(); return sendOnce(h, s.adt()) })
	p.retry("ORM", func() error { _, h, _ := p.addrs(); return sendOnce(h, s.orm()) })
	mppsUID := synth.DerivedUID(int64(s.n), "workflow-mpps")
	series := synth.DerivedUID(int64(s.n), "workflow-series")
	p.retry("MWL and MPPS IN PROGRESS", func() error {
		d, _, _ := p.addrs()
		as, err := dialOnce(d)
		if err != nil {
			return err
		}
		defer as.Release(ctx)
		items, err := worklist.Find(ctx, as, worklist.Query{AccessionNumber: s.accession}.DataSet())
		if err != nil {
			return err
		}
		if len(items) != 1 {
			return fmt.Errorf("%d worklist items", len(items))
		}
		_, err = worklist.CreateMPPS(ctx, as, mppsUID, worklist.MPPSInProgress(items[0], "CT01_AE", fmt.Sprintf("PPS-%d", s.n), s.today, "093000"))
		if statusIs(err, dicomnet.StatusDuplicateSOPInstance) {
			return nil // created before the hub died
		}
		return err
	})
	p.retry("C-STORE", func() error {
		d, _, _ := p.addrs()
		as, err := dialOnce(d)
		if err != nil {
			return err
		}
		defer as.Release(ctx)
		for i := 1; i <= 2; i++ {
			var buf bytes.Buffer
			synth.CT(&buf, synth.Options{Seed: int64(s.n*1000 + i), PatientName: "WRONG^SCANNER^NAME", PatientID: s.patientID,
				StudyInstanceUID: s.studyUID, SeriesInstanceUID: series, AccessionNumber: s.accession, StudyDate: s.today,
				InstanceNumber: i, Rows: 8, Columns: 8, TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian})
			meta, _ := dicomfile.ReadFileMeta(bytes.NewReader(buf.Bytes()))
			st, err := as.Store(ctx, synth.CTImageStorage, meta.MediaStorageSOPInstanceUID, dicomfile.ExplicitVRLittleEndian,
				bytes.NewReader(buf.Bytes()[meta.DataSetOffset():]), nil)
			if err != nil {
				return err
			}
			if st != dicomnet.StatusSuccess {
				return fmt.Errorf("C-STORE 0x%04X", st)
			}
		}
		return nil
	})
	p.retry("MPPS COMPLETED", func() error {
		d, _, _ := p.addrs()
		as, err := dialOnce(d)
		if err != nil {
			return err
		}
		defer as.Release(ctx)
		err = worklist.SetMPPS(ctx, as, mppsUID, worklist.MPPSFinal(worklist.PPSCompleted, s.today, "094500", series))
		if statusIs(err, dicomnet.StatusProcessingFailure) {
			return nil // completed before the hub died: no more changes
		}
		return err
	})
}

// byOrder groups the distinct messages a peer received by ORC-2/FT1-23.
func countFor(msgs map[string]*hl7.Message, loc, value string) (n int, values []string) {
	for _, m := range msgs {
		if m.Get(loc) == value {
			n++
		}
	}
	return n, values
}

// The whole day with the hub killed (SIGKILL) at a random moment of each
// run and restarted on the same data directory, then every event delivered
// again to the workflow: still exactly one DFT^P03 per performed procedure
// and every status message at the RIS.
func TestKilledDay(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped with -short")
	}
	runs := 20
	ris, pms := startPeer(t), startPeer(t)
	cfg := testConfig(t, ris, pms)
	p := &proc{t: t, env: []string{childEnv + "=1",
		"IMAGINGHUB_DATA_DIR=" + cfg.Data.Dir,
		"IMAGINGHUB_HTTP_ADDR=127.0.0.1:0", "IMAGINGHUB_DICOM_ADDR=127.0.0.1:0", "IMAGINGHUB_HL7_ADDR=127.0.0.1:0", "IMAGINGHUB_NATS_LISTEN=",
		"IMAGINGHUB_NATS_URL=" + cfg.NATS.URL, "IMAGINGHUB_DATABASE_URL=" + cfg.Database.URL,
		"IMAGINGHUB_REDIS_URL=" + cfg.Redis.URL, "IMAGINGHUB_REDIS_KEY_PREFIX=" + cfg.Redis.KeyPrefix,
		"IMAGINGHUB_EVENTS_SUBJECT_PREFIX=" + cfg.Events.SubjectPrefix, "IMAGINGHUB_EVENTS_STREAM_PREFIX=" + cfg.Events.StreamPrefix,
		"IMAGINGHUB_STUDY_STABLE_AFTER=300ms", "IMAGINGHUB_RIS_MLLP_ADDR=" + ris.addr, "IMAGINGHUB_PMS_MLLP_ADDR=" + pms.addr,
	}}
	p.start()
	t.Cleanup(p.kill)

	var scenarios []scenario
	for i := range runs {
		s := newScenario(100 + i)
		scenarios = append(scenarios, s)
		// Kill once at a random moment of the run (a run takes about half a
		// second; a later kill hits the wait for the outcome or none).
		delay := time.Duration(rand.IntN(600)) * time.Millisecond
		killer := time.AfterFunc(delay, p.kill)
		p.day(s)
		if killer.Stop() {
			// The day went faster than the delay: die now, between the
			// last acknowledgment and the billing and status messages.
			p.kill()
		}
		// Wait for the outcome, restarting the hub if it died after the
		// scenario's last step.
		deadline := time.Now().Add(90 * time.Second)
		for {
			p.ensure()
			dft, _ := countFor(pms.distinct(), "FT1-23", s.filler)
			st, _ := countFor(ris.distinct(), "ORC-2", s.placer)
			if dft >= 1 && st >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %d: %d DFT^P03 and %d status messages after 90s", i, dft, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d runs, %d kills, %d restarts", runs, p.kills, p.restarts)

	// Every event again: the workflow's consumers start from the first
	// event of the stream.
	p.kill()
	p.start(replayEnv + "=1")
	// The child's metrics show the workflow consumers handling the whole
	// history again: every charge posted, every procedure step.
	testenv.WaitFor(t, "every event delivered again", 90*time.Second, func() bool {
		_, _, h := p.addrs()
		// (Not every study turns stable: with in-process coordination a
		// kill loses the stability timers armed; MPPS COMPLETED reconciles
		// those studies.)
		return processed(t, h, workflow.BillingConsumer) >= runs && processed(t, h, workflow.ProcedureConsumer) >= 2*runs
	})
	time.Sleep(time.Second) // what the replay would send, if anything, is sent by now

	dfts, statuses := pms.distinct(), ris.distinct()
	for i, s := range scenarios {
		if n, _ := countFor(dfts, "FT1-23", s.filler); n != 1 {
			t.Errorf("run %d: %d DFT^P03, want exactly 1", i, n)
		}
		var got []string
		for _, m := range statuses {
			if m.Get("ORC-2") == s.placer {
				got = append(got, m.Get("ORC-5"))
			}
		}
		if len(got) != 3 {
			t.Errorf("run %d: status messages %v, want IP, CM and A once each", i, got)
		}
	}
	if len(dfts) != runs {
		t.Errorf("%d distinct DFT^P03 for %d procedures", len(dfts), runs)
	}
}

// processed reads imaginghub_events_processed_total of one consumer from
// the hub's /metrics.
func processed(t *testing.T, httpAddr, consumer string) int {
	res, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	prefix := `imaginghub_events_processed_total{consumer="` + consumer + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}
