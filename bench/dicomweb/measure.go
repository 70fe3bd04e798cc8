package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"
)

// record is one measurement, a JSON line of the results file.
type record struct {
	Section string `json:"section"` // which comparison it belongs to
	System  string `json:"system"`  // what was measured
	Kind    string `json:"kind"`    // qido, metadata, retrieve
	Name    string `json:"name"`    // the query or resource

	N       int     `json:"n"`                 // requests timed
	P50     float64 `json:"p50_ms"`            // milliseconds
	P99     float64 `json:"p99_ms"`            // milliseconds
	Cold    float64 `json:"cold_ms,omitempty"` // first request, milliseconds
	Results float64 `json:"results,omitempty"` // mean results (QIDO) or instances (metadata, retrieve)
	Wrong   int     `json:"wrong,omitempty"`   // responses whose result count was not the expected one

	Bytes int64   `json:"bytes,omitempty"` // retrieve: body bytes of one study
	MBps  float64 `json:"mbps,omitempty"`  // retrieve: median of the repeats, 10⁶ bytes/s
}

// measureFlags are the flags every timing subcommand shares.
type measureFlags struct {
	base, results, section, system string
	strict                         bool
}

func (m *measureFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.base, "base", "", "DICOMweb base URL, e.g. http://127.0.0.1:8080/dicomweb")
	fs.StringVar(&m.results, "results", "", "append the measurement to this JSON lines file")
	fs.StringVar(&m.section, "section", "", "comparison the measurement belongs to")
	fs.StringVar(&m.system, "system", "", "name of what is measured")
	fs.BoolVar(&m.strict, "strict", true, "fail when a response does not have the expected number of results")
}

// client makes one connection at a time and keeps it, as a viewer does;
// no compression, so that neither origin pays for gzip on loopback.
var client = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
	Timeout:   5 * time.Minute,
}

// get fetches u, checks for 200 and hands the body to read; it returns
// the time until the body was read to its end.
func get(ctx context.Context, u, accept string, read func(resp *http.Response) error) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", accept)
	began := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	if err := read(resp); err != nil {
		return 0, fmt.Errorf("GET %s: %w", u, err)
	}
	return time.Since(began), nil
}

// getJSONArray fetches a DICOM JSON array and returns its length.
func getJSONArray(ctx context.Context, u string) (time.Duration, int, error) {
	var body []byte
	d, err := get(ctx, u, "application/dicom+json", func(resp *http.Response) (err error) {
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(body, &arr); err != nil {
		return 0, 0, fmt.Errorf("GET %s: not a JSON array: %w", u, err)
	}
	return d, len(arr), nil
}

func percentile(lat []time.Duration, p float64) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*p)].Microseconds()) / 1000
}

func (m *measureFlags) check() error {
	if m.base == "" || m.results == "" || m.system == "" {
		return errors.New("-base, -results and -system are required")
	}
	m.base = strings.TrimRight(m.base, "/")
	return nil
}

func (m *measureFlags) save(r record) error {
	r.Section, r.System = m.section, m.system
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(m.results, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// qidoQuery is one study search and the number of studies that match it
// in the synthetic archive.
type qidoQuery struct {
	key, value string
	matches    int
}

// qidoQueries draws n PatientName prefixes (two and three letters in
// turn, each taken from a study of the archive, so every query matches)
// and n StudyDate ranges (7 to 90 days inside the archive's ten years),
// with the count of matching studies computed from the archive itself.
func qidoQueries(studies, n int, seed int64) (names, dates []qidoQuery) {
	archive := make([]catalog.SyntheticStudy, studies)
	for i := range archive {
		archive[i] = catalog.SyntheticStudyAt(i, studies)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	for q := range n {
		prefix := archive[rng.IntN(studies)].PatientName[:2+q%2]
		m := 0
		for _, s := range archive {
			if strings.HasPrefix(s.PatientName, prefix) {
				m++
			}
		}
		names = append(names, qidoQuery{"PatientName", prefix + "*", m})

		first := catalog.SyntheticEpoch.AddDate(0, 0, rng.IntN(catalog.SyntheticDays-90))
		lo := first.Format("20060102")
		hi := first.AddDate(0, 0, 6+rng.IntN(84)).Format("20060102")
		m = 0
		for _, s := range archive {
			if s.StudyDate >= lo && s.StudyDate <= hi {
				m++
			}
		}
		dates = append(dates, qidoQuery{"StudyDate", lo + "-" + hi, m})
	}
	return names, dates
}

// qido times study-level QIDO-RS searches (PS3.18 §10.6) by PatientName
// prefix and by StudyDate range. Each response must hold min(limit,
// matches) studies: a search that answers fast but wrongly is not
// measured.
func (m *measureFlags) qido(ctx context.Context, studies, n, limit int, seed int64, stdout io.Writer) error {
	if err := m.check(); err != nil {
		return err
	}
	if n <= 0 || studies <= 0 {
		return errors.New("-queries and -studies must be positive")
	}
	names, dates := qidoQueries(studies, n, seed)
	kinds := []struct {
		name    string
		queries []qidoQuery
	}{
		{"PatientName prefix", names},
		{"StudyDate range", dates},
	}
	for _, k := range kinds {
		run := func(q qidoQuery) (time.Duration, int, error) {
			// '*' is left as it is: RFC 3986 §3.4 allows it in a query,
			// and Orthanc does not match a percent-encoded one.
			v := strings.ReplaceAll(url.QueryEscape(q.value), "%2A", "*")
			u := fmt.Sprintf("%s/studies?%s=%s&limit=%d", m.base, q.key, v, limit)
			return getJSONArray(ctx, u)
		}
		// A few requests first, so that connection set-up and first-use
		// costs are not in the sample, on either origin.
		for _, q := range k.queries[:min(5, len(k.queries))] {
			if _, _, err := run(q); err != nil {
				return err
			}
		}
		lat := make([]time.Duration, 0, len(k.queries))
		wrong, total := 0, 0
		var firstWrong string
		for _, q := range k.queries {
			d, got, err := run(q)
			if err != nil {
				return err
			}
			lat = append(lat, d)
			total += got
			if want := min(limit, q.matches); got != want {
				if wrong == 0 {
					firstWrong = fmt.Sprintf("%s=%s: %d results, want %d", q.key, q.value, got, want)
				}
				wrong++
			}
		}
		r := record{Kind: "qido", Name: k.name, N: len(lat), P50: percentile(lat, 0.50), P99: percentile(lat, 0.99),
			Results: float64(total) / float64(len(lat)), Wrong: wrong}
		fmt.Fprintf(stdout, "  %-32s QIDO-RS %-18s p50 %7.2f ms  p99 %7.2f ms  (%d requests, %.1f results each)\n",
			m.system, k.name, r.P50, r.P99, r.N, r.Results)
		if wrong > 0 {
			fmt.Fprintf(stdout, "  %-32s %d of %d responses had the wrong number of results, e.g. %s\n", m.system, wrong, len(lat), firstWrong)
			if m.strict {
				return fmt.Errorf("%s: wrong QIDO-RS results (%s)", m.system, firstWrong)
			}
		}
		if err := m.save(r); err != nil {
			return err
		}
	}
	return nil
}

// metadata times WADO-RS study metadata (PS3.18 §10.4.1.1.2): the first
// request after the study was stored, then warm more.
func (m *measureFlags) metadata(ctx context.Context, study string, instances, warm int, stdout io.Writer) error {
	if err := m.check(); err != nil {
		return err
	}
	if study == "" || warm <= 0 {
		return errors.New("-study and -warm > 0 are required")
	}
	u := m.base + "/studies/" + study + "/metadata"
	var lat []time.Duration
	var cold time.Duration
	for i := range warm + 1 {
		d, got, err := getJSONArray(ctx, u)
		if err != nil {
			return err
		}
		if got != instances {
			return fmt.Errorf("%s: metadata of %d instances, want %d", m.system, got, instances)
		}
		if i == 0 {
			cold = d
		} else {
			lat = append(lat, d)
		}
	}
	r := record{Kind: "metadata", Name: fmt.Sprintf("%d-instance study", instances), N: len(lat),
		Cold: float64(cold.Microseconds()) / 1000, P50: percentile(lat, 0.50), P99: percentile(lat, 0.99), Results: float64(instances)}
	fmt.Fprintf(stdout, "  %-32s WADO-RS metadata, %d instances: first %7.1f ms, then p50 %7.1f ms  p99 %7.1f ms (%d requests)\n",
		m.system, instances, r.Cold, r.P50, r.P99, r.N)
	return m.save(r)
}

// retrieve times WADO-RS retrieval of a whole study (PS3.18 §10.4.1.1.1)
// as multipart/related, reading every part to its end.
func (m *measureFlags) retrieve(ctx context.Context, study, syntax string, repeat int, stdout io.Writer) error {
	if err := m.check(); err != nil {
		return err
	}
	if study == "" || repeat <= 0 {
		return errors.New("-study and -repeat > 0 are required")
	}
	accept := `multipart/related; type="application/dicom"`
	name := "study, origin's default syntax"
	if syntax != "" {
		accept += "; transfer-syntax=" + syntax
		name = "study, transfer-syntax=" + syntax
	}
	u := m.base + "/studies/" + study
	var rates []float64
	var bytes int64
	parts := 0
	for range repeat {
		bytes, parts = 0, 0
		d, err := get(ctx, u, accept, func(resp *http.Response) error {
			mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if err != nil || mt != "multipart/related" {
				return fmt.Errorf("Content-Type %q, want multipart/related", resp.Header.Get("Content-Type"))
			}
			mr := multipart.NewReader(resp.Body, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				n, err := io.Copy(io.Discard, p)
				if err != nil {
					return err
				}
				bytes += n
				parts++
			}
		})
		if err != nil {
			return err
		}
		rates = append(rates, float64(bytes)/1e6/d.Seconds())
	}
	slices.Sort(rates)
	r := record{Kind: "retrieve", Name: name, N: repeat, Results: float64(parts), Bytes: bytes, MBps: rates[len(rates)/2]}
	fmt.Fprintf(stdout, "  %-32s WADO-RS retrieve, %d instances, %.1f MB: %7.1f MB/s (median of %d)\n",
		m.system, parts, float64(bytes)/1e6, r.MBps, repeat)
	return m.save(r)
}
