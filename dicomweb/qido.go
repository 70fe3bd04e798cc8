package dicomweb

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomjson"
)

// Return keys of QIDO-RS responses (PS3.18 §10.6.3, Tables 10.6.3-3 to
// 10.6.3-5), by level. required are always returned (empty when the
// value is unknown); optional are returned when asked for with
// includefield or "all" and the archive has a value.
type returnKey struct {
	tag      dicomjson.Tag
	vr       string
	required bool
	value    func(res *catalog.Result, base string) []string
}

func str(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func num(n int, known bool) []string {
	if !known {
		return nil
	}
	return []string{strconv.Itoa(n)}
}

var studyKeys = []returnKey{
	{0x00080005, "CS", true, func(*catalog.Result, string) []string { return []string{"ISO_IR 192"} }},
	{0x00080020, "DA", true, func(r *catalog.Result, _ string) []string { return str(r.Study.StudyDate) }},
	{0x00080030, "TM", true, func(r *catalog.Result, _ string) []string { return str(r.Study.StudyTime) }},
	{0x00080050, "SH", true, func(r *catalog.Result, _ string) []string { return str(r.Study.AccessionNumber) }},
	{0x00080056, "CS", true, func(*catalog.Result, string) []string { return []string{"ONLINE"} }},
	{0x00080061, "CS", true, func(r *catalog.Result, _ string) []string { return r.Study.ModalitiesInStudy }},
	{0x00080090, "PN", true, func(r *catalog.Result, _ string) []string { return str(r.Study.ReferringPhysicianName) }},
	{0x00081030, "LO", false, func(r *catalog.Result, _ string) []string { return str(r.Study.StudyDescription) }},
	{0x00081190, "UR", true, func(r *catalog.Result, base string) []string {
		return []string{base + "/studies/" + r.Study.StudyInstanceUID}
	}},
	{0x00100010, "PN", true, func(r *catalog.Result, _ string) []string { return str(r.Patient.PatientName) }},
	{0x00100020, "LO", true, func(r *catalog.Result, _ string) []string { return str(r.Patient.PatientID) }},
	{0x00100021, "LO", false, func(r *catalog.Result, _ string) []string { return str(r.Patient.IssuerOfPatientID) }},
	{0x00100030, "DA", true, func(r *catalog.Result, _ string) []string { return str(r.Patient.PatientBirthDate) }},
	{0x00100040, "CS", true, func(r *catalog.Result, _ string) []string { return str(r.Patient.PatientSex) }},
	{0x0020000D, "UI", true, func(r *catalog.Result, _ string) []string { return str(r.Study.StudyInstanceUID) }},
	{0x00200010, "SH", true, func(r *catalog.Result, _ string) []string { return str(r.Study.StudyID) }},
	{0x00201206, "IS", true, func(r *catalog.Result, _ string) []string { return num(r.Study.NumberOfStudyRelatedSeries, true) }},
	{0x00201208, "IS", true, func(r *catalog.Result, _ string) []string { return num(r.Study.NumberOfStudyRelatedInstances, true) }},
}

var seriesKeys = []returnKey{
	{0x00080021, "DA", false, func(r *catalog.Result, _ string) []string { return str(r.Series.SeriesDate) }},
	{0x00080031, "TM", false, func(r *catalog.Result, _ string) []string { return str(r.Series.SeriesTime) }},
	{0x00080060, "CS", true, func(r *catalog.Result, _ string) []string { return str(r.Series.Modality) }},
	{0x00080080, "LO", false, func(r *catalog.Result, _ string) []string { return str(r.Series.InstitutionName) }},
	{0x00081010, "SH", false, func(r *catalog.Result, _ string) []string { return str(r.Series.StationName) }},
	{0x0008103E, "LO", true, func(r *catalog.Result, _ string) []string { return str(r.Series.SeriesDescription) }},
	{0x00081190, "UR", true, func(r *catalog.Result, base string) []string {
		return []string{base + "/studies/" + r.Study.StudyInstanceUID + "/series/" + r.Series.SeriesInstanceUID}
	}},
	{0x00180015, "CS", false, func(r *catalog.Result, _ string) []string { return str(r.Series.BodyPartExamined) }},
	{0x0020000E, "UI", true, func(r *catalog.Result, _ string) []string { return str(r.Series.SeriesInstanceUID) }},
	{0x00200011, "IS", true, func(r *catalog.Result, _ string) []string {
		return num(r.Series.SeriesNumber, r.Series.SeriesNumber != 0)
	}},
	{0x00200060, "CS", false, func(r *catalog.Result, _ string) []string { return str(r.Series.Laterality) }},
	{0x00201209, "IS", true, func(r *catalog.Result, _ string) []string {
		return num(r.Series.NumberOfSeriesRelatedInstances, true)
	}},
}

var instanceKeys = []returnKey{
	{0x00080016, "UI", true, func(r *catalog.Result, _ string) []string { return str(r.Instance.SOPClassUID) }},
	{0x00080018, "UI", true, func(r *catalog.Result, _ string) []string { return str(r.Instance.SOPInstanceUID) }},
	{0x00080056, "CS", true, func(*catalog.Result, string) []string { return []string{"ONLINE"} }},
	{0x00081190, "UR", true, func(r *catalog.Result, base string) []string {
		return []string{base + "/studies/" + r.Study.StudyInstanceUID + "/series/" + r.Series.SeriesInstanceUID + "/instances/" + r.Instance.SOPInstanceUID}
	}},
	{0x00083002, "UI", false, func(r *catalog.Result, _ string) []string { return str(r.Instance.TransferSyntaxUID) }},
	{0x00200013, "IS", true, func(r *catalog.Result, _ string) []string {
		return num(r.Instance.InstanceNumber, r.Instance.InstanceNumber != 0)
	}},
	{0x00280008, "IS", true, func(r *catalog.Result, _ string) []string {
		return num(r.Instance.NumberOfFrames, r.Instance.NumberOfFrames != 0)
	}},
	{0x00280010, "US", true, func(r *catalog.Result, _ string) []string { return num(r.Instance.Rows, r.Instance.Rows != 0) }},
	{0x00280011, "US", true, func(r *catalog.Result, _ string) []string { return num(r.Instance.Columns, r.Instance.Columns != 0) }},
}

// qidoRequest is a parsed QIDO-RS query (PS3.18 §8.3.4).
type qidoRequest struct {
	query   catalog.Query
	include map[dicomjson.Tag]bool
	all     bool
}

// parseQIDO reads the query parameters: matching keys by keyword or tag,
// includefield, fuzzymatching, limit and offset. Anything else is 400.
func parseQIDO(r *http.Request, level catalog.Level, maxResults int) (*qidoRequest, error) {
	q := &qidoRequest{query: catalog.Query{Level: level, Filters: map[string]string{}}, include: map[dicomjson.Tag]bool{}}
	for key, vals := range r.URL.Query() {
		switch key {
		case "":
			// "?&includefield=…", as some viewers write it: no parameter.
		case "includefield":
			for _, v := range vals {
				for _, f := range strings.Split(v, ",") {
					f = strings.TrimSpace(f)
					if f == "all" {
						q.all = true
						continue
					}
					t, ok := attributeID(f)
					if !ok {
						return nil, errorf(http.StatusBadRequest, "includefield %q is not a keyword or tag", f)
					}
					q.include[t] = true
				}
			}
		case "fuzzymatching":
			b, err := strconv.ParseBool(vals[0])
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "fuzzymatching is true or false")
			}
			q.query.FuzzyMatching = b
		case "limit", "offset":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 0 {
				return nil, errorf(http.StatusBadRequest, "%s is a non-negative integer", key)
			}
			if key == "limit" {
				q.query.Limit = n
			} else {
				q.query.Offset = n
			}
		default:
			t, ok := attributeID(key)
			if !ok {
				return nil, errorf(http.StatusBadRequest, "unknown query parameter %q", key)
			}
			kw := dicomjson.Keyword(t)
			if _, ok := catalog.QueryKeyLevel(kw); !ok {
				return nil, errorf(http.StatusBadRequest, "matching on %s is not supported", key)
			}
			v := strings.Join(vals, `\`)
			if strings.HasSuffix(kw, "UID") {
				// UID lists may be comma-separated (PS3.18 §8.3.4.1).
				v = strings.ReplaceAll(v, ",", `\`)
			}
			q.query.Filters[kw] = v
			q.include[t] = true
		}
	}
	if q.query.Limit == 0 || q.query.Limit > maxResults {
		q.query.Limit = maxResults
	}
	return q, nil
}

// attributeID reads a keyword ("PatientName") or a tag ("00100010").
func attributeID(s string) (dicomjson.Tag, bool) {
	if t, err := dicomjson.ParseTag(s); err == nil {
		return t, true
	}
	return dicomjson.LookupKeyword(s)
}

// search serves QIDO-RS Search for Studies, Series and Instances (PS3.18
// §10.6), optionally within a study or series named in the path.
func (s *Service) search(level catalog.Level) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		study, series, _, err := pathUIDs(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ctype, ok := negotiateJSON(r)
		if !ok {
			s.fail(w, r, errorf(http.StatusNotAcceptable, "search results are application/dicom+json"))
			return
		}
		q, err := parseQIDO(r, level, s.opts.MaxQueryResults)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		ctx := r.Context()
		// A study or series named in the path must exist (404), and it
		// scopes the search.
		if study != "" {
			if _, err := s.cat.GetStudy(ctx, study); err != nil {
				s.fail(w, r, err)
				return
			}
			q.query.Filters["StudyInstanceUID"] = study
		}
		if series != "" {
			found, err := s.cat.Search(ctx, catalog.Query{Level: catalog.SeriesLevel, Filters: map[string]string{"StudyInstanceUID": study, "SeriesInstanceUID": series}, Limit: 1})
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if len(found) == 0 {
				s.fail(w, r, errorf(http.StatusNotFound, "series not found in this study"))
				return
			}
			q.query.Filters["SeriesInstanceUID"] = series
		}
		limit := q.query.Limit
		q.query.Limit++ // one more tells whether results were cut
		results, err := s.cat.Search(ctx, q.query)
		if err != nil {
			if errors.Is(err, catalog.ErrInvalid) {
				err = errorf(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "catalog: "))
			}
			s.fail(w, r, err)
			return
		}
		if len(results) > limit {
			// More results than returned: say so (PS3.18 §8.3.4.4).
			results = results[:limit]
			w.Header().Add("Warning", `299 imaginghub: "There are additional results that can be requested"`)
		}
		// Levels above the one searched are returned when the path does
		// not already fix them (PS3.18 §10.6.3.3).
		var keys []returnKey
		switch level {
		case catalog.StudyLevel:
			keys = studyKeys
		case catalog.SeriesLevel:
			keys = seriesKeys
			if study == "" {
				keys = append(upperKeys(studyKeys), seriesKeys...)
			}
		case catalog.InstanceLevel:
			keys = instanceKeys
			if series == "" {
				keys = append(upperKeys(seriesKeys), keys...)
			}
			if study == "" {
				keys = append(upperKeys(studyKeys), keys...)
			}
		}
		base := s.base(r)
		out := make([]dicomjson.DataSet, 0, len(results))
		for i := range results {
			out = append(out, q.dataSet(&results[i], keys, base))
		}
		w.Header().Set("Content-Type", ctype)
		w.Write(dicomjson.AppendArray(make([]byte, 0, 1024*len(out)+2), out))
	}
}

// upperKeys drops RetrieveURL from an upper level's keys: the result's own
// RetrieveURL names the entity returned.
func upperKeys(keys []returnKey) []returnKey {
	out := make([]returnKey, 0, len(keys))
	for _, k := range keys {
		if k.tag != 0x00081190 {
			out = append(out, k)
		}
	}
	return out
}

func (q *qidoRequest) dataSet(res *catalog.Result, keys []returnKey, base string) dicomjson.DataSet {
	ds := dicomjson.DataSet{}
	for _, k := range keys {
		if !k.required && !q.all && !q.include[k.tag] {
			continue
		}
		vals := k.value(res, base)
		if len(vals) == 0 && !k.required && !q.include[k.tag] {
			continue
		}
		a := &dicomjson.Attribute{VR: k.vr}
		if k.vr == "PN" {
			for _, v := range vals {
				a.PersonNames = append(a.PersonNames, dicomjson.ParsePersonName(v))
			}
		} else {
			a.Strings = vals
		}
		ds[k.tag] = a
	}
	return ds
}
