package dicomweb_test

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomweb"
)

// benchStudy stores n instances of one study and returns the study UID.
func benchStudy(b *testing.B, e *env, n, size int, seed int64) string {
	b.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e.store(b, instance(b, synth.Options{Seed: seed, Rows: size, Columns: size, InstanceNumber: i + 1,
				SOPInstanceUID: synth.DerivedUID(seed, "instance/"+strconv.Itoa(i))}))
		}()
	}
	wg.Wait()
	return synth.DerivedUID(seed, "study")
}

func fetch(b *testing.B, url, accept string) int64 {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	return n
}

// BenchmarkMetadata1000 measures WADO-RS Retrieve Metadata of a study of
// 1,000 instances over HTTP (target: under 150 ms).
func BenchmarkMetadata1000(b *testing.B) {
	e := start(b, dicomweb.Options{})
	study := benchStudy(b, e, 1000, 64, 100)
	url := e.base + "/studies/" + study + "/metadata"
	var n int64
	b.ResetTimer()
	for b.Loop() {
		n = fetch(b, url, "application/dicom+json")
	}
	b.ReportMetric(float64(n)/1e6, "MB/response")
}

// BenchmarkRetrieveStudy measures WADO-RS Retrieve Study throughput of
// 20 Implicit VR instances of 512×512×16 bits (SetBytes: MB/s), sent as
// stored and re-encoded to the default Explicit VR Little Endian.
func BenchmarkRetrieveStudy(b *testing.B) {
	e := start(b, dicomweb.Options{})
	study := benchStudy(b, e, 20, 512, 101)
	url := e.base + "/studies/" + study
	for _, bc := range []struct{ name, accept string }{
		{"stored", `multipart/related; type="application/dicom"; transfer-syntax=*`},
		{"explicit", `multipart/related; type="application/dicom"`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(fetch(b, url, bc.accept))
			for b.Loop() {
				fetch(b, url, bc.accept)
			}
		})
	}
}

// BenchmarkQIDOStudies measures a QIDO-RS study search with a name
// wildcard and a date range over 1,000 studies.
func BenchmarkQIDOStudies(b *testing.B) {
	e := start(b, dicomweb.Options{})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range 1000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e.store(b, instance(b, synth.Options{Seed: int64(1000 + i), Rows: 2, Columns: 2, PatientName: "SYN^" + strconv.Itoa(i),
				StudyDate: "2025" + []string{"01", "02", "03"}[i%3] + "15"}))
		}()
	}
	wg.Wait()
	url := e.base + "/studies?PatientName=SYN*&StudyDate=20250201-20250228&limit=50"
	b.ResetTimer()
	for b.Loop() {
		fetch(b, url, "application/dicom+json")
	}
}

// BenchmarkMetadata1000Uncached is BenchmarkMetadata1000 with every
// header read from its file on each request.
func BenchmarkMetadata1000Uncached(b *testing.B) {
	e := start(b, dicomweb.Options{MetadataCacheBytes: -1})
	study := benchStudy(b, e, 1000, 64, 100)
	url := e.base + "/studies/" + study + "/metadata"
	b.ResetTimer()
	for b.Loop() {
		fetch(b, url, "application/dicom+json")
	}
}
