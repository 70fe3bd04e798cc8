package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomweb"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/internal/testenv"
)

func TestQIDOQueries(t *testing.T) {
	const studies = 3000
	names, dates := qidoQueries(studies, 50, 7)
	again, _ := qidoQueries(studies, 50, 7)
	for i, q := range names {
		if q != again[i] {
			t.Fatalf("query %d differs with the same seed: %+v, %+v", i, q, again[i])
		}
		if want := 2 + i%2 + 1; len(q.value) != want || !strings.HasSuffix(q.value, "*") {
			t.Errorf("PatientName query %d = %q, want %d letters and *", i, q.value, want-1)
		}
		if q.matches == 0 {
			t.Errorf("PatientName=%s matches no study of the archive", q.value)
		}
	}
	first := catalog.SyntheticEpoch.Format("20060102")
	last := catalog.SyntheticEpoch.AddDate(0, 0, catalog.SyntheticDays).Format("20060102")
	for _, q := range dates {
		lo, hi, ok := strings.Cut(q.value, "-")
		if !ok || len(lo) != 8 || len(hi) != 8 || lo > hi || lo < first || hi > last {
			t.Errorf("StudyDate range %q is not inside %s-%s", q.value, first, last)
		}
	}
}

// startHub runs a hub with ingest and DICOMweb on real sockets, its
// catalog bulk-loaded with a synthetic archive of the given size.
func startHub(t *testing.T, studies int) (*hub.Runtime, *ingest.Ingest, string) {
	t.Helper()
	var in *ingest.Ingest
	rt := hubtest.Start(t, hubtest.Config(t), func(rt *hub.Runtime) {
		var err error
		if in, err = ingest.New(rt); err != nil {
			t.Fatal(err)
		}
		web, err := dicomweb.New(rt, in.Storer, dicomweb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rt.Server.Add(in)
		rt.Server.Add(web)
	})
	if err := rt.Catalog.BulkLoadSynthetic(context.Background(), studies); err != nil {
		t.Fatal(err)
	}
	return rt, in, "http://" + rt.Server.HTTPAddr() + dicomweb.BasePath
}

// storeStudy files a synthetic study of n instances through the ingest
// Storer, as C-STORE does, and returns its Study Instance UID.
func storeStudy(t *testing.T, in *ingest.Ingest, n, size int, seed int64) string {
	t.Helper()
	dir := t.TempDir()
	paths, err := synth.WriteStudy(dir, n, synth.Options{Seed: seed, Rows: size, Columns: size})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(bytes.NewReader(b))
		meta, err := dicomfile.ReadFileMeta(br)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.Storer.Store(context.Background(), ingest.Request{
			SOPClassUID: meta.MediaStorageSOPClassUID, SOPInstanceUID: meta.MediaStorageSOPInstanceUID,
			TransferSyntaxUID: meta.TransferSyntaxUID, Data: br,
		}); err != nil {
			t.Fatal(err)
		}
	}
	return synthStudyUID(seed)
}

// TestAgainstHub runs the timing subcommands against a real hub over HTTP,
// the hub named twice (as itself and as a "peer") so that the report has
// ratios, and checks what they record and refuse.
func TestAgainstHub(t *testing.T) {
	const studies = 1000
	_, in, base := startHub(t, studies)
	results := filepath.Join(t.TempDir(), "results.jsonl")
	hubT, peerT := "hub (SQLite)="+base, "peer="+base
	ctx := context.Background()
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, &out, &errOut)
		return out.String() + errOut.String(), err
	}

	// QIDO-RS first, while the catalog holds only the synthetic archive.
	qido := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"exact answers", []string{"-target", hubT, "-target", peerT, "-studies", "1000"}, ""},
		// Told the archive is another size, the expected counts are
		// wrong and the hub's answers must be refused.
		{"wrong archive size", []string{"-target", hubT, "-studies", "1200"}, "wrong QIDO-RS results"},
		{"no target", []string{"-studies", "1000"}, "-target"},
	}
	for _, tt := range qido {
		t.Run("qido/"+tt.name, func(t *testing.T) {
			out, err := run(append([]string{"qido", "-queries", "20", "-results", results, "-section", "test"}, tt.args...)...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("qido: %v\n%s", err, out)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("qido error = %v, want %q\n%s", err, tt.wantErr, out)
			}
		})
	}

	meta := storeStudy(t, in, 12, 16, 1)
	big := storeStudy(t, in, 3, 128, 2)
	others := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"metadata", []string{"metadata", "-target", hubT, "-target", peerT, "-study", meta, "-instances", "12", "-warm", "3"}, ""},
		{"metadata wrong count", []string{"metadata", "-target", hubT, "-study", meta, "-instances", "13", "-warm", "1"}, "want 13"},
		{"metadata unknown study", []string{"metadata", "-target", hubT, "-study", "2.25.1", "-instances", "1", "-warm", "1"}, "404"},
		{"retrieve as stored", []string{"retrieve", "-target", hubT, "-target", peerT, "-study", big, "-instances", "3", "-repeat", "2", "-transfer-syntax", "*"}, ""},
		{"retrieve default syntax", []string{"retrieve", "-target", hubT, "-study", big, "-instances", "3", "-repeat", "1", "-transfer-syntax", ""}, ""},
		{"retrieve wrong count", []string{"retrieve", "-target", hubT, "-study", big, "-instances", "4", "-repeat", "1"}, "want 4"},
	}
	for _, tt := range others {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(append(tt.args, "-results", results, "-section", "test")...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("%s: %v\n%s", tt.name, err, out)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("%s error = %v, want %q\n%s", tt.name, err, tt.wantErr, out)
			}
		})
	}

	b, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("results line %q: %v", line, err)
		}
		kinds[r.Kind+"/"+r.System]++
		if r.Wrong != 0 || (r.Kind != "retrieve" && (r.P50 <= 0 || r.P99 < r.P50)) || (r.Kind == "retrieve" && (r.MBps <= 0 || r.Bytes <= 0)) {
			t.Errorf("implausible record %+v", r)
		}
	}
	want := map[string]int{
		"qido/hub (SQLite)": 2, "qido/peer": 2,
		"metadata/hub (SQLite)": 1, "metadata/peer": 1,
		"retrieve/hub (SQLite)": 2, "retrieve/peer": 1,
	}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s records, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}

	out, err := run("report", "-results", results)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	for _, s := range []string{
		"QIDO-RS studies by PatientName prefix, limit 100",
		"QIDO-RS studies by StudyDate range, limit 100",
		"ratio peer / hub (SQLite), QIDO-RS PatientName prefix",
		"ratio peer / hub (SQLite), metadata 12-instance study",
		"ratio hub (SQLite) / peer, retrieve (transfer-syntax=*)",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("report lacks %q:\n%s", s, out)
		}
	}
}

// TestSynthArchive checks that the files sent to peers carry the patients,
// dates and UIDs the bulk loader writes, so both hold the same archive.
func TestSynthArchive(t *testing.T) {
	const studies = 40
	dir := t.TempDir()
	if out, err := runOut(t, "synth", "-studies", "40", "-dir", dir, "-size", "8"); err != nil {
		t.Fatalf("synth: %v\n%s", err, out)
	}
	for _, i := range []int{0, 1, 19, 20, 39} {
		want := catalog.SyntheticStudyAt(i, studies)
		ds, err := dicom.ParseFile(filepath.Join(dir, want.SOPInstanceUID+".dcm"), nil, dicom.SkipPixelData())
		if err != nil {
			t.Fatalf("study %d: %v", i, err)
		}
		for _, c := range []struct {
			tag  tag.Tag
			want string
		}{
			{tag.PatientName, want.PatientName},
			{tag.PatientID, want.PatientID},
			{tag.StudyDate, want.StudyDate},
			{tag.StudyTime, want.StudyTime},
			{tag.AccessionNumber, want.AccessionNumber},
			{tag.StudyInstanceUID, want.StudyInstanceUID},
			{tag.SeriesInstanceUID, want.SeriesInstanceUID},
			{tag.SOPInstanceUID, want.SOPInstanceUID},
		} {
			e, err := ds.FindElementByTag(c.tag)
			if err != nil {
				t.Fatalf("study %d: %v: %v", i, c.tag, err)
			}
			if got := dicom.MustGetStrings(e.Value); len(got) != 1 || got[0] != c.want {
				t.Errorf("study %d: %v = %q, want %q", i, c.tag, got, c.want)
			}
		}
	}
}

// TestLoadAndDatabase runs load on SQLite and, when
// IMAGINGHUB_TEST_DATABASE_URL is set, createdb, load and dropdb on
// PostgreSQL.
func TestLoadAndDatabase(t *testing.T) {
	dir := t.TempDir()
	if out, err := runOut(t, "load", "-data-dir", dir, "-studies", "300"); err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	if out, err := runOut(t, "load", "-data-dir", dir, "-studies", "300"); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Fatalf("second load into the same catalog = %v, want an error\n%s", err, out)
	}
	base := os.Getenv(testenv.EnvDatabaseURL)
	if base == "" {
		t.Skipf("PostgreSQL part: %s not set", testenv.EnvDatabaseURL)
	}
	out, err := runOut(t, "createdb", "-url", base)
	if err != nil {
		t.Fatalf("createdb: %v\n%s", err, out)
	}
	u := strings.TrimSpace(out)
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(parsed.Path, "/")
	dropped := false
	t.Cleanup(func() {
		if !dropped {
			runOut(t, "dropdb", "-url", base, "-name", name)
		}
	})
	if out, err := runOut(t, "load", "-database", u, "-studies", "300"); err != nil {
		t.Fatalf("load into PostgreSQL: %v\n%s", err, out)
	}
	if out, err := runOut(t, "dropdb", "-url", base, "-name", name); err != nil {
		t.Fatalf("dropdb: %v\n%s", err, out)
	}
	dropped = true
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %s still there (%d, %v)", name, n, err)
	}
}

func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}
