package fhir_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/fhir"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	ms := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStableToPush measures the latency from the commit of
// ih.dicom.study.stable to the EMR's acceptance of the ImagingStudy (one
// study of one instance per iteration, pushed with its Patient).
func BenchmarkStableToPush(b *testing.B) {
	var mu sync.Mutex
	arrived := map[string]chan time.Time{}
	emr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/Patient" {
			w.Header().Set("Location", "Patient/1/_history/1")
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.WriteHeader(http.StatusOK)
		q, _ := url.ParseQuery(r.URL.RawQuery)
		uid := strings.TrimPrefix(q.Get("identifier"), "urn:dicom:uid|urn:oid:")
		mu.Lock()
		ch := arrived[uid]
		mu.Unlock()
		if ch != nil {
			select {
			case ch <- time.Now():
			default:
			}
		}
	}))
	defer emr.Close()
	cfg := hubtest.Config(b)
	cfg.Study.StableAfter = time.Hour // the benchmark emits the event itself
	rt := hubtest.Start(b, cfg, func(rt *hub.Runtime) {
		f, err := fhir.New(rt, fhir.Options{Targets: []fhir.Target{{Name: "emr", URL: emr.URL}}, Location: time.UTC})
		if err != nil {
			b.Fatal(err)
		}
		rt.Server.Add(f)
	})
	ctx := context.Background()
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		uid := fmt.Sprintf("1.2.826.0.1.3680043.10.543.9.%d.%d", time.Now().UnixNano()%1e9, i)
		rec := catalog.InstanceRecord{
			Patient:  catalog.Patient{PatientID: fmt.Sprintf("BENCH-%d", i%50), IssuerOfPatientID: "BENCHHOSP", PatientName: "Bench^Patient"},
			Study:    catalog.Study{StudyInstanceUID: uid, StudyDate: "20260105", StudyTime: "101010", AccessionNumber: fmt.Sprintf("B%d", i)},
			Series:   catalog.Series{SeriesInstanceUID: uid + ".1", Modality: "CT", SeriesNumber: 1},
			Instance: catalog.Instance{SOPInstanceUID: uid + ".1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: 1, BlobKey: "bench/" + uid, TransferSyntaxUID: "1.2.840.10008.1.2"},
		}
		b.StopTimer()
		if _, err := rt.Catalog.StoreInstance(ctx, rec, catalog.KeepFirst); err != nil {
			b.Fatal(err)
		}
		ch := make(chan time.Time, 1)
		mu.Lock()
		arrived[uid] = ch
		mu.Unlock()
		b.StartTimer()
		start := time.Now()
		if err := ingest.EmitStable(ctx, rt, uid); err != nil {
			b.Fatal(err)
		}
		rt.Relay.Kick()
		select {
		case at := <-ch:
			lat = append(lat, at.Sub(start))
		case <-time.After(30 * time.Second):
			b.Fatalf("study %d never reached the EMR", i)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkSearch100k measures ImagingStudy searches over HTTP with
// 100,000 studies of 10,000 patients in the resource table (rows
// bulk-inserted, not built one by one).
func BenchmarkSearch100k(b *testing.B) {
	const studies, patients = 100_000, 10_000
	cfg := hubtest.Config(b)
	var f *fhir.FHIR
	rt := hubtest.Start(b, cfg, func(rt *hub.Runtime) {
		var err error
		if f, err = fhir.New(rt, fhir.Options{Location: time.UTC}); err != nil {
			b.Fatal(err)
		}
		rt.Server.Add(f)
	})
	t0 := time.Now()
	if err := fhir.BulkLoadStudies(context.Background(), rt.Catalog, studies, patients); err != nil {
		b.Fatal(err)
	}
	if cfg.Database.URL != "" {
		// What autovacuum does to a table in service: statistics, and the
		// visibility map that lets index-only scans skip the heap.
		db, err := sql.Open("pgx", cfg.Database.URL)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec("VACUUM ANALYZE fhir_resources, fhir_search"); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	b.Logf("%d studies loaded in %v (%s)", studies, time.Since(t0).Round(time.Millisecond), rt.Catalog.Backend())
	base := "http://" + rt.Server.HTTPAddr() + "/fhir/ImagingStudy?"
	rng := rand.New(rand.NewPCG(1, 2))
	queries := map[string]func() string{
		"patient":           func() string { return fmt.Sprintf("patient=Patient/bench-p%d", rng.IntN(patients)) },
		"identifier":        func() string { return "identifier=urn:dicom:uid|urn:oid:" + fhir.BenchStudyUID(rng.IntN(studies)) },
		"accession":         func() string { return fmt.Sprintf("identifier=BA%d", rng.IntN(studies)) },
		"modality+started":  func() string { return fmt.Sprintf("modality=MR&started=ge2025-%02d-01&_count=20", 1+rng.IntN(12)) },
		"status":            func() string { return "status=available&_count=20" },
		"patient+status":    func() string { return fmt.Sprintf("patient=bench-p%d&status=available", rng.IntN(patients)) },
		"all, 20 per page":  func() string { return "_count=20" },
		"basedOn":           func() string { return fmt.Sprintf("basedon=ServiceRequest/order-%d", rng.IntN(studies)) },
		"started (one day)": func() string { return fmt.Sprintf("started=2025-%02d-%02d", 1+rng.IntN(12), 1+rng.IntN(28)) },
	}
	names := make([]string, 0, len(queries))
	for n := range queries {
		names = append(names, n)
	}
	sort.Strings(names)
	client := &http.Client{}
	for _, name := range names {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			var lat []time.Duration
			for i := range b.N + 20 {
				u := base + queries[name]()
				start := time.Now()
				rsp, err := client.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, rsp.Body)
				rsp.Body.Close()
				if rsp.StatusCode != 200 {
					b.Fatalf("%s: %s", u, rsp.Status)
				}
				if i >= 20 { // the first queries warm the page cache
					lat = append(lat, time.Since(start))
				}
			}
			reportPercentiles(b, lat)
		})
	}
}
