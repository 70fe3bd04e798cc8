package worklist

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

// Benchmark shape: 20,000 scheduled items over 50 stations and 20 days
// (20 items per station and day); a modality asks for its own station
// and today, as IHE RAD-5 queries usually do.
const (
	benchItems    = 20000
	benchStations = 50
	benchDays     = 20
)

func benchItem(i int, today time.Time) Item {
	day := today.AddDate(0, 0, i%benchDays-benchDays/2)
	st := (i / benchDays) % benchStations
	return Item{
		Source: SourceManual, PatientID: fmt.Sprintf("BP%06d", i), PatientName: fmt.Sprintf("Bench^Patient%d", i),
		PatientBirthDate: "19800101", PatientSex: "O", AccessionNumber: fmt.Sprintf("BA%06d", i), RequestedProcedureID: fmt.Sprintf("RP%06d", i),
		RequestedProcedureDescription: "CT head", RequestedProcedureCode: Code{"CTHEAD", "L", "CT head"},
		StudyInstanceUID: fmt.Sprintf("1.2.826.0.1.3680043.8.498.7.%d", i), ScheduledProcedureStepID: fmt.Sprintf("SPS%06d", i),
		Modality: "CT", ScheduledStationAETitle: fmt.Sprintf("ST%02d", st), ScheduledProcedureStepStartDate: day.Format("20060102"),
		ScheduledProcedureStepStartTime: fmt.Sprintf("%02d%02d00", 7+i%12, i%60), ScheduledProtocolCode: Code{"P1", "L", "Protocol"},
		ScheduledProcedureStepDescription: "CT head", ScheduledProcedureStepStatus: StatusScheduled,
	}
}

// measure runs query n times on as and returns the sorted durations.
func measure(b *testing.B, as *dicomnet.Association, q dicomjson.DataSet, want int) []time.Duration {
	var ds []time.Duration
	for b.Loop() {
		began := time.Now()
		got, err := Find(context.Background(), as, q)
		ds = append(ds, time.Since(began))
		if err != nil || len(got) != want {
			b.Fatalf("%d matches, want %d: %v", len(got), want, err)
		}
	}
	slices.Sort(ds)
	return ds
}

func report(b *testing.B, ds []time.Duration) {
	pct := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func benchQuery(today time.Time) dicomjson.DataSet {
	q := Query{ScheduledStationAETitle: "ST07", ScheduledProcedureStepStartDate: today.Format("20060102")}
	return q.DataSet()
}

// BenchmarkMWLFind measures an MWL C-FIND for one station and today over
// a real association against a hub holding 20,000 items, on SQLite or on
// the PostgreSQL of IMAGINGHUB_TEST_DATABASE_URL.
func BenchmarkMWLFind(b *testing.B) {
	var in *ingest.Ingest
	rt := hubtest.Start(b, hubtest.Config(b), func(rt *hub.Runtime) {
		var err error
		if in, err = ingest.New(rt); err != nil {
			b.Fatal(err)
		}
		if _, err = New(rt, in.Registry, Options{}); err != nil {
			b.Fatal(err)
		}
		rt.Server.Add(in)
	})
	today := time.Now()
	ctx := context.Background()
	for start := 0; start < benchItems; start += 2000 {
		err := rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
			for i := start; i < start+2000; i++ {
				it := benchItem(i, today)
				if err := insertItem(ctx, tx, &it, "", today); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	as, err := dicomnet.Dial(ctx, in.Addr(), dicomnet.DialOptions{CallingAETitle: "ST07", CalledAETitle: "IMAGINGHUB", PresentationContexts: ProposedContexts()})
	if err != nil {
		b.Fatal(err)
	}
	defer as.Release(ctx)
	b.Logf("catalog %s, %d items", rt.Catalog.Backend(), benchItems)
	report(b, measure(b, as, benchQuery(today), benchItems/benchStations/benchDays))
}

// BenchmarkWlmscpfs serves the same 20,000 items from .wl files with
// DCMTK's wlmscpfs and measures the same query, for bench/worklist.sh to
// compare.
func BenchmarkWlmscpfs(b *testing.B) {
	if _, err := exec.LookPath("wlmscpfs"); err != nil {
		b.Skip("DCMTK wlmscpfs not installed")
	}
	dir := b.TempDir()
	ae := filepath.Join(dir, "WLM")
	if err := os.MkdirAll(ae, 0o755); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(ae, "lockfile"), nil, 0o644)
	today := time.Now()
	for i := range benchItems {
		it := benchItem(i, today)
		ds := ItemDataSet(it)
		delete(ds, tagReferencedPatientSequence)
		body, err := EncodeDataSet(ds, dicomnet.ExplicitVRLittleEndian)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := dicomfile.WriteFileMeta(&buf, dicomfile.FileMeta{
			MediaStorageSOPClassUID: ModalityWorklistFind, MediaStorageSOPInstanceUID: fmt.Sprintf("1.2.826.0.1.3680043.8.498.8.%d", i),
			TransferSyntaxUID: dicomnet.ExplicitVRLittleEndian, ImplementationClassUID: dicomnet.ImplementationClassUID,
		}); err != nil {
			b.Fatal(err)
		}
		buf.Write(body)
		if err := os.WriteFile(filepath.Join(ae, fmt.Sprintf("item%05d.wl", i)), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("wlmscpfs", "-dfp", dir, "-dfr", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx := context.Background()
	var as *dicomnet.Association
	for range 100 {
		if as, err = dicomnet.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), dicomnet.DialOptions{CallingAETitle: "ST07", CalledAETitle: "WLM", PresentationContexts: ProposedContexts()}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer as.Release(ctx)
	report(b, measure(b, as, benchQuery(today), benchItems/benchStations/benchDays))
}
