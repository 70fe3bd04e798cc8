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

// target is one DICOMweb origin under measurement.
type target struct {
	system string // its name in the results; "hub…" for ours
	base   string // DICOMweb base URL, no trailing slash
}

// hub reports whether t is the hub; its answers must be exact, a peer's
// are reported.
func (t target) hub() bool { return isHub(t.system) }

// measureFlags are the flags every timing subcommand shares.
type measureFlags struct {
	targets          []target
	results, section string
}

func (m *measureFlags) register(fs *flag.FlagSet) {
	fs.Func("target", `"SYSTEM=BASE-URL", e.g. "hub (SQLite)=http://127.0.0.1:8080/dicomweb"; repeat it to compare origins request by request`,
		func(v string) error {
			system, base, ok := strings.Cut(v, "=")
			if !ok || system == "" || !strings.HasPrefix(base, "http") {
				return fmt.Errorf("want SYSTEM=http://host:port/root, got %q", v)
			}
			m.targets = append(m.targets, target{system, strings.TrimRight(base, "/")})
			return nil
		})
	fs.StringVar(&m.results, "results", "", "append the measurements to this JSON lines file")
	fs.StringVar(&m.section, "section", "", "comparison the measurements belong to")
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
	if len(m.targets) == 0 || m.results == "" {
		return errors.New("-target and -results are required")
	}
	return nil
}

func (m *measureFlags) save(t target, r record) error {
	r.Section, r.System = m.section, t.system
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
// prefix and by StudyDate range, each query sent to every target in turn
// so that all of them meet the same load on the machine. The hub's
// responses must hold exactly min(limit, matches) studies (a search that
// answers fast but wrongly is not measured); a peer's wrong answers are
// counted and shown.
func (m *measureFlags) qido(ctx context.Context, studies, n, limit int, seed int64, stdout io.Writer) error {
	if err := m.check(); err != nil {
		return err
	}
	if n <= 0 || studies <= 0 {
		return errors.New("-queries and -studies must be positive")
	}
	names, dates := qidoQueries(studies, n, seed)
	// The warm-up queries are others than those timed: a timed query
	// never finds its own answer cached.
	warmNames, warmDates := qidoQueries(studies, 20, seed+1)
	kinds := []struct {
		name          string
		queries, warm []qidoQuery
	}{
		{"PatientName prefix", names, warmNames},
		{"StudyDate range", dates, warmDates},
	}
	run := func(t target, q qidoQuery) (time.Duration, int, error) {
		// '*' is left as it is: RFC 3986 §3.4 allows it in a query,
		// and Orthanc does not match a percent-encoded one.
		v := strings.ReplaceAll(url.QueryEscape(q.value), "%2A", "*")
		return getJSONArray(ctx, fmt.Sprintf("%s/studies?%s=%s&limit=%d", t.base, q.key, v, limit))
	}
	type stats struct {
		lat          []time.Duration
		total, wrong int
		firstWrong   string
		slowest      time.Duration
		slowestQuery string
	}
	for _, k := range kinds {
		// Warm-up: connection set-up and first-use costs stay out of the
		// sample, on every origin.
		for _, q := range k.warm {
			for _, t := range m.targets {
				if _, _, err := run(t, q); err != nil {
					return err
				}
			}
		}
		st := make([]stats, len(m.targets))
		for _, q := range k.queries {
			for i, t := range m.targets {
				d, got, err := run(t, q)
				if err != nil {
					return err
				}
				s := &st[i]
				s.lat = append(s.lat, d)
				s.total += got
				if d > s.slowest {
					s.slowest, s.slowestQuery = d, q.key+"="+q.value
				}
				if want := min(limit, q.matches); got != want {
					if s.wrong == 0 {
						s.firstWrong = fmt.Sprintf("%s=%s: %d results, want %d", q.key, q.value, got, want)
					}
					s.wrong++
					if t.hub() {
						return fmt.Errorf("%s: wrong QIDO-RS results (%s)", t.system, s.firstWrong)
					}
				}
			}
		}
		for i, t := range m.targets {
			s := st[i]
			r := record{Kind: "qido", Name: k.name, N: len(s.lat), P50: percentile(s.lat, 0.50), P99: percentile(s.lat, 0.99),
				Results: float64(s.total) / float64(len(s.lat)), Wrong: s.wrong}
			fmt.Fprintf(stdout, "  %-32s QIDO-RS %-18s p50 %7.2f ms  p99 %7.2f ms  (%d requests, %.1f results each; slowest %s %.1f ms)\n",
				t.system, k.name, r.P50, r.P99, r.N, r.Results, s.slowestQuery, float64(s.slowest.Microseconds())/1000)
			if s.wrong > 0 {
				fmt.Fprintf(stdout, "  %-32s %d of %d responses had the wrong number of results, e.g. %s\n", t.system, s.wrong, r.N, s.firstWrong)
			}
			if err := m.save(t, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// metadata times WADO-RS study metadata (PS3.18 §10.4.1.1.2): the first
// request after the study was stored, then warm more, targets in turn.
func (m *measureFlags) metadata(ctx context.Context, study string, instances, warm int, stdout io.Writer) error {
	if err := m.check(); err != nil {
		return err
	}
	if study == "" || warm <= 0 {
		return errors.New("-study and -warm > 0 are required")
	}
	lat := make([][]time.Duration, len(m.targets))
	cold := make([]time.Duration, len(m.targets))
	for r := range warm + 1 {
		for i, t := range m.targets {
			d, got, err := getJSONArray(ctx, t.base+"/studies/"+study+"/metadata")
			if err != nil {
				return err
			}
			if got != instances {
				return fmt.Errorf("%s: metadata of %d instances, want %d", t.system, got, instances)
			}
			if r == 0 {
				cold[i] = d
			} else {
				lat[i] = append(lat[i], d)
			}
		}
	}
	for i, t := range m.targets {
		r := record{Kind: "metadata", Name: fmt.Sprintf("%d-instance study", instances), N: len(lat[i]),
			Cold: float64(cold[i].Microseconds()) / 1000, P50: percentile(lat[i], 0.50), P99: percentile(lat[i], 0.99), Results: float64(instances)}
		fmt.Fprintf(stdout, "  %-32s WADO-RS metadata, %d instances: first %7.1f ms, then p50 %7.1f ms  p99 %7.1f ms (%d requests)\n",
			t.system, instances, r.Cold, r.P50, r.P99, r.N)
		if err := m.save(t, r); err != nil {
			return err
		}
	}
	return nil
}

// retrieve times WADO-RS retrieval of a whole study (PS3.18 §10.4.1.1.1)
// as multipart/related, reading every part to its end; targets in turn.
func (m *measureFlags) retrieve(ctx context.Context, study, syntax string, repeat, instances int, stdout io.Writer) error {
	if err := m.check(); err != nil {
		return err
	}
	if study == "" || repeat <= 0 {
		return errors.New("-study and -repeat > 0 are required")
	}
	accept := `multipart/related; type="application/dicom"`
	name := "default syntax"
	if syntax != "" {
		// PS3.18 §8.7.3.5.2: "*" asks for the instances as stored.
		accept += "; transfer-syntax=" + syntax
		name = "transfer-syntax=" + syntax
	}
	rates := make([][]float64, len(m.targets))
	sizes := make([]int64, len(m.targets))
	for range repeat {
		for i, t := range m.targets {
			var bytes int64
			parts := 0
			d, err := get(ctx, t.base+"/studies/"+study, accept, func(resp *http.Response) error {
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
			if parts != instances {
				return fmt.Errorf("%s: retrieve of %d instances, want %d", t.system, parts, instances)
			}
			sizes[i] = bytes
			rates[i] = append(rates[i], float64(bytes)/1e6/d.Seconds())
		}
	}
	for i, t := range m.targets {
		slices.Sort(rates[i])
		r := record{Kind: "retrieve", Name: name, N: repeat, Results: float64(instances), Bytes: sizes[i], MBps: rates[i][len(rates[i])/2]}
		fmt.Fprintf(stdout, "  %-32s WADO-RS retrieve, %d instances, %.1f MB, %s: %7.1f MB/s (median of %d)\n",
			t.system, instances, float64(sizes[i])/1e6, name, r.MBps, repeat)
		if err := m.save(t, r); err != nil {
			return err
		}
	}
	return nil
}
