package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"
)

// searchBackends opens a fresh catalog on each backend: SQLite always,
// PostgreSQL when IMAGINGHUB_TEST_DATABASE_URL is set.
var searchBackends = []struct {
	name string
	open func(tb testing.TB) *Catalog
}{
	{"sqlite", func(tb testing.TB) *Catalog {
		return openSearchCatalog(tb, "", Options{DataDir: tb.TempDir()})
	}},
	{"postgres", func(tb testing.TB) *Catalog {
		return openSearchCatalog(tb, testenv.PostgresURL(tb), Options{MaxConns: 8})
	}},
}

func openSearchCatalog(tb testing.TB, u string, o Options) *Catalog {
	tb.Helper()
	o.Logger = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := Open(context.Background(), u, o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// searchFixture is a small synthetic archive: five studies of four
// patients, chosen to exercise case, wildcards, escaping, empty dates,
// multi-valued ModalitiesInStudy and non-ASCII names.
type fixtureInstance struct {
	patient  Patient
	study    Study
	seriesNo int
	modality string
	sopClass string
	number   int
}

const (
	uidS1 = "2.25.4242.1"
	uidS2 = "2.25.4242.2"
	uidS3 = "2.25.4242.3"
	uidS4 = "2.25.4242.4"
	uidS5 = "2.25.4242.5"

	ctImage = "1.2.840.10008.5.1.4.1.1.2"
	srDoc   = "1.2.840.10008.5.1.4.1.1.88.11"
	mrImage = "1.2.840.10008.5.1.4.1.1.4"
	usImage = "1.2.840.10008.5.1.4.1.1.6.1"
)

var (
	patJane  = Patient{PatientID: "PAT-1", IssuerOfPatientID: "SYNTH", PatientName: "DOE^JANE", PatientBirthDate: "19800101", PatientSex: "F"}
	patJohn  = Patient{PatientID: "PAT-2", IssuerOfPatientID: "SYNTH", PatientName: "doe^john", PatientBirthDate: "19900505", PatientSex: "M"}
	patAnna  = Patient{PatientID: "PAT-3", IssuerOfPatientID: "SYNTH", PatientName: "Müller^Anna", PatientSex: "F"}
	patSmith = Patient{PatientID: "PAT-4", IssuerOfPatientID: "OTHER", PatientName: "SM[ITH]^BOB", PatientBirthDate: "19500101", PatientSex: "M"}

	studyS1 = Study{StudyInstanceUID: uidS1, StudyDate: "20240102", StudyTime: "101500", AccessionNumber: "ACC1", StudyDescription: "CHEST CT", StudyID: "1", ReferringPhysicianName: "REF^ONE"}
	studyS2 = Study{StudyInstanceUID: uidS2, StudyDate: "20231231", StudyTime: "235959.5", AccessionNumber: "ABCD1", StudyDescription: "HEAD MR", StudyID: "2", ReferringPhysicianName: "ref^two"}
	studyS3 = Study{StudyInstanceUID: uidS3, StudyDate: "20240115", StudyTime: "080000", AccessionNumber: "AB%1", StudyDescription: "HEAD MR", StudyID: "3"}
	studyS4 = Study{StudyInstanceUID: uidS4, AccessionNumber: "AB_2", StudyDescription: "ABDOMEN US", StudyID: "4"}
	studyS5 = Study{StudyInstanceUID: uidS5, StudyDate: "20240201", StudyTime: "1100", AccessionNumber: "ACC5", StudyDescription: "CHEST CT", StudyID: "5"}
)

var searchFixture = []fixtureInstance{
	{patJane, studyS1, 1, "CT", ctImage, 2},
	{patJane, studyS1, 1, "CT", ctImage, 1},
	{patJane, studyS1, 2, "SR", srDoc, 1},
	{patJane, studyS2, 1, "MR", mrImage, 1},
	{patJohn, studyS3, 1, "MR", mrImage, 1},
	{patAnna, studyS4, 1, "US", usImage, 1},
	{patSmith, studyS5, 7, "CT", ctImage, 1},
}

func storeSearchFixture(t *testing.T, c *Catalog) {
	t.Helper()
	for _, f := range searchFixture {
		seriesUID := fmt.Sprintf("%s.%d", f.study.StudyInstanceUID, f.seriesNo)
		rec := InstanceRecord{
			Patient: f.patient,
			Study:   f.study,
			Series: Series{SeriesInstanceUID: seriesUID, Modality: f.modality, SeriesNumber: f.seriesNo,
				SeriesDescription: "SERIES " + f.modality, BodyPartExamined: "CHEST"},
			Instance: Instance{SOPInstanceUID: fmt.Sprintf("%s.%d", seriesUID, f.number), SOPClassUID: f.sopClass,
				InstanceNumber: f.number, TransferSyntaxUID: "1.2.840.10008.1.2.1",
				BlobKey: "blobs/" + seriesUID + fmt.Sprint(f.number), SizeBytes: 1000},
		}
		if _, err := c.StoreInstance(context.Background(), rec, KeepFirst); err != nil {
			t.Fatalf("StoreInstance: %v", err)
		}
	}
}

// resultKey names a result by the UID (or Patient ID) of its level.
func resultKey(l Level, r Result) string {
	switch l {
	case PatientLevel:
		return r.Patient.PatientID
	case StudyLevel:
		return r.Study.StudyInstanceUID
	case SeriesLevel:
		return r.Series.SeriesInstanceUID
	}
	return r.Instance.SOPInstanceUID
}

func TestSearch(t *testing.T) {
	cases := []struct {
		name    string
		q       Query
		want    []string
		invalid bool
	}{
		// Universal matching and ordering.
		{name: "studies universal, newest first, empty date last", q: Query{Level: StudyLevel},
			want: []string{uidS5, uidS3, uidS1, uidS2, uidS4}},
		{name: "empty and star values are universal", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "", "StudyDate": "*", "AccessionNumber": "  "}},
			want: []string{uidS5, uidS3, uidS1, uidS2, uidS4}},
		{name: "patients bytewise by name", q: Query{Level: PatientLevel},
			want: []string{"PAT-1", "PAT-3", "PAT-4", "PAT-2"}},
		{name: "limit", q: Query{Level: StudyLevel, Limit: 2}, want: []string{uidS5, uidS3}},
		{name: "offset", q: Query{Level: StudyLevel, Offset: 3}, want: []string{uidS2, uidS4}},
		{name: "limit and offset", q: Query{Level: StudyLevel, Limit: 2, Offset: 1}, want: []string{uidS3, uidS1}},

		// Person names: case-sensitive unless fuzzy.
		{name: "PN exact is case-sensitive", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "DOE^JOHN"}}},
		{name: "PN exact", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "doe^john"}}, want: []string{uidS3}},
		{name: "PN exact fuzzy", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "DOE^JOHN"}, FuzzyMatching: true}, want: []string{uidS3}},
		{name: "PN prefix", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "DOE*"}}, want: []string{uidS1, uidS2}},
		{name: "PN prefix fuzzy", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "doe*"}, FuzzyMatching: true}, want: []string{uidS3, uidS1, uidS2}},
		{name: "PN question mark", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "D?E^JAN?"}}, want: []string{uidS1, uidS2}},
		{name: "PN inner star", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "*^J*"}}, want: []string{uidS1, uidS2}},
		{name: "PN bracket is literal", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "SM[ITH]*"}}, want: []string{uidS5}},
		{name: "PN bracket fuzzy", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "sm[ith]*"}, FuzzyMatching: true}, want: []string{uidS5}},
		{name: "PN non-ASCII", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "Müller^Anna"}}, want: []string{uidS4}},
		{name: "PN non-ASCII prefix", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "Mü*"}}, want: []string{uidS4}},
		{name: "referring physician fuzzy", q: Query{Level: StudyLevel, Filters: map[string]string{"ReferringPhysicianName": "REF*"}, FuzzyMatching: true}, want: []string{uidS1, uidS2}},
		{name: "referring physician case-sensitive", q: Query{Level: StudyLevel, Filters: map[string]string{"ReferringPhysicianName": "REF*"}}, want: []string{uidS1}},

		// Strings: literal wildcard characters of SQL are escaped.
		{name: "percent is literal", q: Query{Level: StudyLevel, Filters: map[string]string{"AccessionNumber": "AB%*"}}, want: []string{uidS3}},
		{name: "underscore is literal", q: Query{Level: StudyLevel, Filters: map[string]string{"AccessionNumber": "AB_*"}}, want: []string{uidS4}},
		{name: "question mark is one character", q: Query{Level: StudyLevel, Filters: map[string]string{"AccessionNumber": "AB??"}}, want: []string{uidS3, uidS4}},
		{name: "trailing space ignored", q: Query{Level: StudyLevel, Filters: map[string]string{"AccessionNumber": "ACC1 "}}, want: []string{uidS1}},
		{name: "string list", q: Query{Level: StudyLevel, Filters: map[string]string{"AccessionNumber": `ACC1\ACC5`}}, want: []string{uidS5, uidS1}},
		{name: "string is case-sensitive", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDescription": "head*"}, FuzzyMatching: true}},
		{name: "patient ID", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientID": "PAT-1"}}, want: []string{uidS1, uidS2}},
		{name: "patient ID and issuer", q: Query{Level: PatientLevel, Filters: map[string]string{"PatientID": "PAT-*", "IssuerOfPatientID": "OTHER"}}, want: []string{"PAT-4"}},
		{name: "patient sex", q: Query{Level: PatientLevel, Filters: map[string]string{"PatientSex": "M"}}, want: []string{"PAT-4", "PAT-2"}},

		// Dates and times.
		{name: "date single", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20240102"}}, want: []string{uidS1}},
		{name: "date range", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20240101-20240131"}}, want: []string{uidS3, uidS1}},
		{name: "date from", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20240102-"}}, want: []string{uidS5, uidS3, uidS1}},
		{name: "date until excludes empty", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "-20231231"}}, want: []string{uidS2}},
		{name: "birth date range at patient level", q: Query{Level: PatientLevel, Filters: map[string]string{"PatientBirthDate": "19700101-19991231"}}, want: []string{"PAT-1", "PAT-2"}},
		{name: "time range", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyTime": "1000-1100"}}, want: []string{uidS5, uidS1}},
		{name: "time until minute includes its seconds", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyTime": "-0800"}}, want: []string{uidS3}},
		{name: "time fraction", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyTime": "2359-"}}, want: []string{uidS2}},
		{name: "date and name", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20240101-", "PatientName": "DOE*"}}, want: []string{uidS1}},

		// UIDs.
		{name: "UID single", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyInstanceUID": uidS2}}, want: []string{uidS2}},
		{name: "UID list", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyInstanceUID": uidS1 + `\` + uidS3 + `\2.25.1`}}, want: []string{uidS3, uidS1}},

		// ModalitiesInStudy matches any of the study's modalities.
		{name: "modality in study", q: Query{Level: StudyLevel, Filters: map[string]string{"ModalitiesInStudy": "SR"}}, want: []string{uidS1}},
		{name: "modality in study shared", q: Query{Level: StudyLevel, Filters: map[string]string{"ModalitiesInStudy": "CT"}}, want: []string{uidS5, uidS1}},
		{name: "modality in study list", q: Query{Level: StudyLevel, Filters: map[string]string{"ModalitiesInStudy": `SR\MR`}}, want: []string{uidS3, uidS1, uidS2}},
		{name: "modality in study wildcard", q: Query{Level: StudyLevel, Filters: map[string]string{"ModalitiesInStudy": "U?"}}, want: []string{uidS4}},
		{name: "modality in study not a substring", q: Query{Level: StudyLevel, Filters: map[string]string{"ModalitiesInStudy": "C"}}},

		// Series and instances: relational within the upper unique keys.
		{name: "series of a study", q: Query{Level: SeriesLevel, Filters: map[string]string{"StudyInstanceUID": uidS1}}, want: []string{uidS1 + ".1", uidS1 + ".2"}},
		{name: "series by modality across studies", q: Query{Level: SeriesLevel, Filters: map[string]string{"Modality": "CT"}}, want: []string{uidS5 + ".7", uidS1 + ".1"}},
		{name: "series by number", q: Query{Level: SeriesLevel, Filters: map[string]string{"SeriesNumber": "7"}}, want: []string{uidS5 + ".7"}},
		{name: "series with upper-level key", q: Query{Level: SeriesLevel, Filters: map[string]string{"PatientName": "DOE^JANE", "Modality": "MR"}}, want: []string{uidS2 + ".1"}},
		{name: "instances of a series by number", q: Query{Level: InstanceLevel, Filters: map[string]string{"SeriesInstanceUID": uidS1 + ".1"}}, want: []string{uidS1 + ".1.1", uidS1 + ".1.2"}},
		{name: "instances by SOP class", q: Query{Level: InstanceLevel, Filters: map[string]string{"SOPClassUID": srDoc}}, want: []string{uidS1 + ".2.1"}},
		{name: "instance by number list", q: Query{Level: InstanceLevel, Filters: map[string]string{"StudyInstanceUID": uidS1, "InstanceNumber": `2\9`}}, want: []string{uidS1 + ".1.2"}},
		{name: "instance by UID", q: Query{Level: InstanceLevel, Filters: map[string]string{"SOPInstanceUID": uidS3 + ".1.1"}}, want: []string{uidS3 + ".1.1"}},

		// Invalid queries.
		{name: "no level", q: Query{}, invalid: true},
		{name: "unknown keyword", q: Query{Level: StudyLevel, Filters: map[string]string{"PatientWeight": "70"}}, invalid: true},
		{name: "lower-level key", q: Query{Level: StudyLevel, Filters: map[string]string{"Modality": "CT"}}, invalid: true},
		{name: "wildcard in date", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "2024*"}}, invalid: true},
		{name: "malformed date", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "2024-01-01"}}, invalid: true},
		{name: "month 13", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20241301"}}, invalid: true},
		{name: "lone dash", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "-"}}, invalid: true},
		{name: "malformed time", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyTime": "25"}}, invalid: true},
		{name: "wildcard in UID", q: Query{Level: StudyLevel, Filters: map[string]string{"StudyInstanceUID": "1.2.*"}}, invalid: true},
		{name: "malformed integer", q: Query{Level: SeriesLevel, Filters: map[string]string{"SeriesNumber": "x"}}, invalid: true},
		{name: "negative limit", q: Query{Level: StudyLevel, Limit: -1}, invalid: true},
	}
	for _, be := range searchBackends {
		t.Run(be.name, func(t *testing.T) {
			c := be.open(t)
			storeSearchFixture(t, c)
			ctx := context.Background()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					res, err := c.Search(ctx, tc.q)
					if tc.invalid {
						if !errors.Is(err, ErrInvalid) {
							t.Fatalf("Search(%+v) = %d results, %v; want ErrInvalid", tc.q, len(res), err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Search(%+v): %v", tc.q, err)
					}
					got := make([]string, 0, len(res))
					for _, r := range res {
						got = append(got, resultKey(tc.q.Level, r))
					}
					if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
						t.Errorf("Search(%+v) = %q, want %q", tc.q, got, tc.want)
					}
				})
			}
		})
	}
}

// TestSearchResultFields checks that every level above the queried one is
// filled in and the levels below are zero.
func TestSearchResultFields(t *testing.T) {
	for _, be := range searchBackends {
		t.Run(be.name, func(t *testing.T) {
			c := be.open(t)
			storeSearchFixture(t, c)
			ctx := context.Background()

			res, err := c.Search(ctx, Query{Level: StudyLevel, Filters: map[string]string{"StudyInstanceUID": uidS1}})
			if err != nil || len(res) != 1 {
				t.Fatalf("study search: %d results, %v", len(res), err)
			}
			st := res[0].Study
			if res[0].Patient != patJane {
				t.Errorf("Patient = %+v, want %+v", res[0].Patient, patJane)
			}
			if st.StudyDate != "20240102" || st.StudyTime != "101500" || st.AccessionNumber != "ACC1" ||
				st.StudyDescription != "CHEST CT" || st.ReferringPhysicianName != "REF^ONE" || st.StudyID != "1" {
				t.Errorf("Study = %+v", st)
			}
			if !slices.Equal(st.ModalitiesInStudy, []string{"CT", "SR"}) || st.NumberOfStudyRelatedSeries != 2 || st.NumberOfStudyRelatedInstances != 3 {
				t.Errorf("Study counts = %q %d %d, want [CT SR] 2 3", st.ModalitiesInStudy, st.NumberOfStudyRelatedSeries, st.NumberOfStudyRelatedInstances)
			}
			if st.CreatedAt.IsZero() || time.Since(st.LastReceived) > time.Hour {
				t.Errorf("Study timestamps = %v %v", st.CreatedAt, st.LastReceived)
			}
			if res[0].Series != (Series{}) || res[0].Instance != (Instance{}) {
				t.Errorf("levels below STUDY filled: %+v %+v", res[0].Series, res[0].Instance)
			}

			res, err = c.Search(ctx, Query{Level: PatientLevel, Filters: map[string]string{"PatientID": "PAT-3"}})
			if err != nil || len(res) != 1 {
				t.Fatalf("patient search: %d results, %v", len(res), err)
			}
			if res[0].Patient != patAnna || res[0].Study.StudyInstanceUID != "" {
				t.Errorf("patient result = %+v", res[0])
			}

			res, err = c.Search(ctx, Query{Level: InstanceLevel, Filters: map[string]string{"SOPInstanceUID": uidS1 + ".2.1"}})
			if err != nil || len(res) != 1 {
				t.Fatalf("instance search: %d results, %v", len(res), err)
			}
			r := res[0]
			if r.Series.Modality != "SR" || r.Series.SeriesNumber != 2 || r.Series.NumberOfSeriesRelatedInstances != 1 || r.Series.BodyPartExamined != "CHEST" {
				t.Errorf("Series = %+v", r.Series)
			}
			in := r.Instance
			if in.SOPClassUID != srDoc || in.InstanceNumber != 1 || in.TransferSyntaxUID != "1.2.840.10008.1.2.1" ||
				in.BlobKey == "" || in.SizeBytes != 1000 || in.ReceivedAt.IsZero() ||
				in.SeriesInstanceUID != uidS1+".2" || in.StudyInstanceUID != uidS1 {
				t.Errorf("Instance = %+v", in)
			}
			if r.Study.StudyInstanceUID != uidS1 || r.Patient.PatientID != "PAT-1" {
				t.Errorf("upper levels = %+v %+v", r.Study, r.Patient)
			}
		})
	}
}

func TestQueryKeys(t *testing.T) {
	for _, tc := range []struct {
		l          Level
		has, hasnt string
	}{
		{PatientLevel, "PatientName", "StudyDate"},
		{StudyLevel, "ModalitiesInStudy", "Modality"},
		{SeriesLevel, "PatientID", "SOPInstanceUID"},
		{InstanceLevel, "SOPClassUID", "PatientWeight"},
	} {
		keys := QueryKeys(tc.l)
		if !slices.Contains(keys, tc.has) || slices.Contains(keys, tc.hasnt) || !slices.IsSorted(keys) {
			t.Errorf("QueryKeys(%v) = %q: want sorted, with %s and without %s", tc.l, keys, tc.has, tc.hasnt)
		}
		for _, k := range keys {
			if l, ok := QueryKeyLevel(k); !ok || l > tc.l {
				t.Errorf("QueryKeyLevel(%s) = %v, %v", k, l, ok)
			}
		}
	}
	if QueryKeys(0) != nil {
		t.Errorf("QueryKeys(0) not nil")
	}
	if got := InstanceLevel.String(); got != "IMAGE" {
		t.Errorf("InstanceLevel.String() = %q", got)
	}
}

// BenchmarkSearch100k measures Search over 100,000 studies and reports the
// latency percentiles a QIDO-RS or C-FIND client sees.
func BenchmarkSearch100k(b *testing.B) {
	const studies = 100_000
	queries := []struct {
		name string
		q    Query
	}{
		{"PatientNamePrefix3", Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "KQZ*"}, Limit: 100}},
		{"PatientNamePrefix2", Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "KQ*"}, Limit: 100}},
		{"PatientNamePrefixFuzzy", Query{Level: StudyLevel, Filters: map[string]string{"PatientName": "kq*"}, FuzzyMatching: true, Limit: 100}},
		{"StudyDateDay", Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20200301"}, Limit: 100}},
		{"StudyDateMonth", Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20200301-20200331"}, Limit: 100}},
		{"StudyDateRangeAndName", Query{Level: StudyLevel, Filters: map[string]string{"StudyDate": "20180101-20201231", "PatientName": "KQ*"}, Limit: 100}},
		{"Universal", Query{Level: StudyLevel, Limit: 100}},
		{"AccessionNumber", Query{Level: StudyLevel, Filters: map[string]string{"AccessionNumber": "BACC0054321"}}},
	}
	for _, be := range searchBackends {
		b.Run(be.name, func(b *testing.B) {
			c := be.open(b)
			ctx := context.Background()
			if err := c.BulkLoadSynthetic(ctx, studies); err != nil {
				b.Fatalf("BulkLoadSynthetic: %v", err)
			}
			for _, bq := range queries {
				b.Run(bq.name, func(b *testing.B) {
					lat := make([]time.Duration, 0, b.N)
					matches := 0
					for b.Loop() {
						t0 := time.Now()
						res, err := c.Search(ctx, bq.q)
						lat = append(lat, time.Since(t0))
						if err != nil {
							b.Fatalf("Search: %v", err)
						}
						matches = len(res)
					}
					if matches == 0 {
						b.Fatalf("%s matched nothing", bq.name)
					}
					slices.Sort(lat)
					pct := func(p float64) float64 {
						return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
					}
					b.ReportMetric(pct(0.50), "p50-ms")
					b.ReportMetric(pct(0.99), "p99-ms")
					b.ReportMetric(float64(matches), "results")
				})
			}
		})
	}
}
