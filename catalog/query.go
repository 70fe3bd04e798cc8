package catalog

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Level is a level of the Query/Retrieve information model (PS3.4 §C.3):
// the kind of entity a Query returns.
type Level int

// The four levels of the Patient Root and Study Root information models
// (PS3.4 §C.6.1, §C.6.2). The zero Level is invalid.
const (
	PatientLevel Level = iota + 1
	StudyLevel
	SeriesLevel
	InstanceLevel
)

// String returns the Query/Retrieve Level (0008,0052) value for l:
// PATIENT, STUDY, SERIES or IMAGE (PS3.4 §C.4.1.1.1).
func (l Level) String() string {
	switch l {
	case PatientLevel:
		return "PATIENT"
	case StudyLevel:
		return "STUDY"
	case SeriesLevel:
		return "SERIES"
	case InstanceLevel:
		return "IMAGE"
	}
	return "Level(" + strconv.Itoa(int(l)) + ")"
}

// Query is a hierarchical search (PS3.4 §C.4.1): at Level, constrained by
// Filters on attributes of that level and the levels above. Matching is
// relational-free in the sense of C-FIND: the unique keys of the levels
// above narrow it, and other upper-level keys are allowed too, as QIDO-RS
// allows them (PS3.18 §10.6.1.2).
type Query struct {
	Level Level
	// Filters maps DICOM keywords (QueryKeys lists them per level) to
	// values matched as PS3.4 §C.2.2.2 says:
	//
	//	""              universal matching: no constraint (§C.2.2.2.3)
	//	"*"             universal matching too (§C.2.2.2.4)
	//	"DOE^JOHN"      single value matching (§C.2.2.2.1)
	//	"DOE*", "D?E"   wild card matching on string VRs (§C.2.2.2.4)
	//	"A-B" "A-" "-B" range matching on DA and TM (§C.2.2.2.5)
	//	`1.2.3\1.2.4`   list of UID matching on UI (§C.2.2.2.2)
	//
	// Values of other VRs may also be lists separated by '\'; an entity
	// matches when it matches any of them. Trailing spaces are not
	// significant (PS3.5 §6.2) and are ignored.
	Filters map[string]string
	// FuzzyMatching makes person name (PN) matching case-insensitive
	// (QIDO-RS fuzzymatching=true, PS3.18 §8.3.4.6). Without it PN
	// matching is literal and case-sensitive, which PS3.4 §C.2.2.2.1
	// allows. Case folding is Unicode on PostgreSQL and ASCII-only on
	// SQLite.
	FuzzyMatching bool
	// Limit caps the number of results; 0 means no limit. Offset skips
	// that many results first.
	Limit, Offset int
}

// Result is one match of a Query, filled down to the queried level: Study
// is zero at PatientLevel, Series above SeriesLevel, Instance above
// InstanceLevel.
type Result struct {
	Patient  Patient
	Study    Study
	Series   Series
	Instance Instance
}

// matchKind is how a key's values are matched, after its VR.
type matchKind int

const (
	matchString     matchKind = iota // AE, CS, LO, SH: literal, case-sensitive
	matchPN                          // PN: literal, case-insensitive with FuzzyMatching
	matchDate                        // DA: single value or range
	matchTime                        // TM: single value or range
	matchUID                         // UI: single value or list
	matchInt                         // IS
	matchMultiValue                  // CS with VM 1-n stored joined by '\'
)

type queryKey struct {
	level  Level
	column string
	kind   matchKind
}

// queryKeys are the matching keys Search supports, by DICOM keyword
// (PS3.6 §6), at the level whose table holds them.
var queryKeys = map[string]queryKey{
	"PatientName":       {PatientLevel, "p.patient_name", matchPN},
	"PatientID":         {PatientLevel, "p.patient_id", matchString},
	"IssuerOfPatientID": {PatientLevel, "p.issuer_of_patient_id", matchString},
	"PatientBirthDate":  {PatientLevel, "p.patient_birth_date", matchDate},
	"PatientSex":        {PatientLevel, "p.patient_sex", matchString},

	"StudyInstanceUID":       {StudyLevel, "st.study_instance_uid", matchUID},
	"StudyDate":              {StudyLevel, "st.study_date", matchDate},
	"StudyTime":              {StudyLevel, "st.study_time", matchTime},
	"AccessionNumber":        {StudyLevel, "st.accession_number", matchString},
	"ReferringPhysicianName": {StudyLevel, "st.referring_physician_name", matchPN},
	"StudyDescription":       {StudyLevel, "st.study_description", matchString},
	"StudyID":                {StudyLevel, "st.study_id", matchString},
	"ModalitiesInStudy":      {StudyLevel, "st.modalities_in_study", matchMultiValue},

	"SeriesInstanceUID": {SeriesLevel, "se.series_instance_uid", matchUID},
	"Modality":          {SeriesLevel, "se.modality", matchString},
	"SeriesNumber":      {SeriesLevel, "se.series_number", matchInt},
	"SeriesDescription": {SeriesLevel, "se.series_description", matchString},
	"BodyPartExamined":  {SeriesLevel, "se.body_part_examined", matchString},
	"Laterality":        {SeriesLevel, "se.laterality", matchString},
	"SeriesDate":        {SeriesLevel, "se.series_date", matchDate},
	"SeriesTime":        {SeriesLevel, "se.series_time", matchTime},
	"StationName":       {SeriesLevel, "se.station_name", matchString},
	"InstitutionName":   {SeriesLevel, "se.institution_name", matchString},

	"SOPInstanceUID": {InstanceLevel, "i.sop_instance_uid", matchUID},
	"SOPClassUID":    {InstanceLevel, "i.sop_class_uid", matchUID},
	"InstanceNumber": {InstanceLevel, "i.instance_number", matchInt},
}

// QueryKeys returns the keywords Search can match at level l: those of l
// and of the levels above it, sorted. It returns nil for an invalid level.
func QueryKeys(l Level) []string {
	if l < PatientLevel || l > InstanceLevel {
		return nil
	}
	var out []string
	for k, qk := range queryKeys {
		if qk.level <= l {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// QueryKeyLevel returns the level whose entity holds the matching key
// keyword, and whether Search supports the key at all.
func QueryKeyLevel(keyword string) (Level, bool) {
	qk, ok := queryKeys[keyword]
	return qk.level, ok
}

const (
	patientColumns = `p.patient_id, p.issuer_of_patient_id, p.patient_name, p.patient_birth_date, p.patient_sex`
	studyColumns   = `, st.study_instance_uid, st.study_date, st.study_time, st.accession_number, st.issuer_of_accession_number,
 st.referring_physician_name, st.study_description, st.study_id, st.modalities_in_study,
 st.number_of_study_related_series, st.number_of_study_related_instances, st.created_at, st.updated_at, st.last_received`
	seriesColumns = `, se.series_instance_uid, se.modality, se.series_number, se.series_description, se.body_part_examined,
 se.laterality, se.series_date, se.series_time, se.station_name, se.institution_name, se.number_of_series_related_instances`
	searchInstanceColumns = `, i.sop_instance_uid, i.sop_class_uid, i.instance_number, i.transfer_syntax_uid,
 i.number_of_frames, i."rows", i."columns", i.blob_key, i.size_bytes, i.calling_ae, i.received_at`
)

// searchOrder returns the ORDER BY list that makes results deterministic.
// Studies come newest first, in the order of the studies_search_order
// index (migration 00010), so a limited search need not sort the whole
// table. On PostgreSQL the comparison is bytewise (COLLATE "C", as the
// index is built) so that the order does not depend on the database's
// collation and is the same as on SQLite.
func searchOrder(d *dialect, l Level) string {
	c := ""
	if d.name == "postgres" {
		c = ` COLLATE "C"`
	}
	order := `st.study_date` + c + ` DESC, st.study_time` + c + ` DESC, st.study_instance_uid` + c
	switch l {
	case PatientLevel:
		return `p.patient_name` + c + `, p.patient_id` + c + `, p.issuer_of_patient_id` + c + `, p.id`
	case SeriesLevel:
		order += `, se.series_number, se.series_instance_uid` + c
	case InstanceLevel:
		order += `, se.series_number, se.series_instance_uid` + c + `, i.instance_number, i.sop_instance_uid` + c
	}
	return order
}

// Search returns the entities at q.Level that match q.Filters, in a
// deterministic order: patients by name and ID; studies newest first (by
// StudyDate, StudyTime, then Study Instance UID); series and instances
// within their study by number, then UID.
//
// An invalid level, an unknown keyword, a keyword of a level below
// q.Level, a malformed value (a date that is not YYYYMMDD, a wildcard in a
// UID or date) or a negative Limit or Offset is an error wrapping
// ErrInvalid.
func (c *Catalog) Search(ctx context.Context, q Query) ([]Result, error) {
	sqlText, args, err := c.searchSQL(q)
	if err != nil {
		return nil, err
	}
	if c.d.name == "postgres" {
		// An unnamed statement is planned with the values bound, so that
		// LIKE 'prefix%' uses the text_pattern_ops index and a date range
		// is costed by its width. A cached prepared statement would move
		// to a generic plan after five runs, which cannot do either.
		args = append([]any{pgx.QueryExecModeExec}, args...)
	}
	rows, err := c.query(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: search: %w", err)
	}
	defer rows.Close()
	var out []Result
	for rows.Next() {
		r, err := scanResult(rows, q.Level)
		if err != nil {
			return nil, fmt.Errorf("catalog: search: %w", c.d.wrap(err))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: search: %w", c.d.wrap(err))
	}
	return out, nil
}

// searchSQL builds the SELECT for q, with "?" placeholders.
func (c *Catalog) searchSQL(q Query) (string, []any, error) {
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(patientColumns)
	var from string
	switch q.Level {
	case PatientLevel:
		from = ` FROM patients p`
	case StudyLevel:
		b.WriteString(studyColumns)
		from = ` FROM studies st JOIN patients p ON p.id = st.patient_ref`
	case SeriesLevel:
		b.WriteString(studyColumns + seriesColumns)
		from = ` FROM series se JOIN studies st ON st.id = se.study_ref JOIN patients p ON p.id = st.patient_ref`
	case InstanceLevel:
		b.WriteString(studyColumns + seriesColumns + searchInstanceColumns)
		from = ` FROM instances i JOIN series se ON se.id = i.series_ref JOIN studies st ON st.id = se.study_ref JOIN patients p ON p.id = st.patient_ref`
	default:
		return "", nil, fmt.Errorf("%w: query level %d", ErrInvalid, int(q.Level))
	}
	if q.Limit < 0 || q.Offset < 0 {
		return "", nil, fmt.Errorf("%w: negative limit or offset", ErrInvalid)
	}
	b.WriteString(from)

	// Keys in a fixed order so that the same query is the same statement
	// (and hits the same prepared-statement cache entry).
	keys := make([]string, 0, len(q.Filters))
	for k := range q.Filters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	demoteRanges := c.d.name == "sqlite" && selectivePatientKey(q.Filters)
	var args []any
	first := true
	for _, k := range keys {
		qk, ok := queryKeys[k]
		if !ok {
			return "", nil, fmt.Errorf("%w: %q is not a supported matching key", ErrInvalid, k)
		}
		if qk.level > q.Level {
			return "", nil, fmt.Errorf("%w: %s is a %s level key, not allowed in a %s level query", ErrInvalid, k, qk.level, q.Level)
		}
		if demoteRanges && (qk.kind == matchDate || qk.kind == matchTime) && strings.Contains(q.Filters[k], "-") {
			// SQLite keeps no statistics, so it cannot tell a range of
			// years from one of days and prefers a date range over a
			// name prefix. When a patient is named, finding the
			// patient first reads far fewer rows; the unary + keeps the
			// range out of the index choice (sqlite.org/optoverview.html
			// §"Disqualifying WHERE clause terms").
			qk.column = "+" + qk.column
		}
		cond, cargs, err := c.d.matchCondition(qk, q.Filters[k], q.FuzzyMatching)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s: %w", ErrInvalid, k, err)
		}
		if cond == "" {
			continue // universal matching
		}
		if first {
			b.WriteString(" WHERE ")
			first = false
		} else {
			b.WriteString(" AND ")
		}
		b.WriteString(cond)
		args = append(args, cargs...)
	}
	b.WriteString(" ORDER BY ")
	b.WriteString(searchOrder(c.d, q.Level))
	switch {
	case q.Limit > 0:
		b.WriteString(" LIMIT ?")
		args = append(args, q.Limit)
	case q.Offset > 0 && c.d.name == "sqlite":
		b.WriteString(" LIMIT -1") // SQLite has OFFSET only after LIMIT
	}
	if q.Offset > 0 {
		b.WriteString(" OFFSET ?")
		args = append(args, q.Offset)
	}
	return b.String(), args, nil
}

// selectivePatientKey reports whether filters name a patient closely
// enough (a PatientName or PatientID value starting with at least two
// literal characters) that searching from the patient is cheaper than
// from a date range.
func selectivePatientKey(filters map[string]string) bool {
	for _, k := range []string{"PatientName", "PatientID"} {
		v := strings.TrimRight(filters[k], " ")
		if strings.Contains(v, `\`) {
			continue
		}
		n := strings.IndexAny(v, "*?")
		if n < 0 {
			n = len(v)
		}
		if n >= 2 {
			return true
		}
	}
	return false
}

func scanResult(r rowScanner, l Level) (Result, error) {
	var res Result
	p, st, se, in := &res.Patient, &res.Study, &res.Series, &res.Instance
	dest := []any{&p.PatientID, &p.IssuerOfPatientID, &p.PatientName, &p.PatientBirthDate, &p.PatientSex}
	var modalities string
	var created, updated, last, received dbTime
	if l >= StudyLevel {
		dest = append(dest, &st.StudyInstanceUID, &st.StudyDate, &st.StudyTime, &st.AccessionNumber, &st.IssuerOfAccessionNumber,
			&st.ReferringPhysicianName, &st.StudyDescription, &st.StudyID, &modalities,
			&st.NumberOfStudyRelatedSeries, &st.NumberOfStudyRelatedInstances, &created, &updated, &last)
	}
	if l >= SeriesLevel {
		dest = append(dest, &se.SeriesInstanceUID, &se.Modality, &se.SeriesNumber, &se.SeriesDescription, &se.BodyPartExamined,
			&se.Laterality, &se.SeriesDate, &se.SeriesTime, &se.StationName, &se.InstitutionName,
			&se.NumberOfSeriesRelatedInstances)
	}
	if l >= InstanceLevel {
		dest = append(dest, &in.SOPInstanceUID, &in.SOPClassUID, &in.InstanceNumber, &in.TransferSyntaxUID,
			&in.NumberOfFrames, &in.Rows, &in.Columns, &in.BlobKey, &in.SizeBytes, &in.CallingAE, &received)
	}
	if err := r.Scan(dest...); err != nil {
		return Result{}, err
	}
	st.ModalitiesInStudy = splitMultiValue(modalities)
	st.CreatedAt, st.UpdatedAt, st.LastReceived = created.t, updated.t, last.t
	if l >= InstanceLevel {
		in.ReceivedAt = received.t
		in.SeriesInstanceUID = se.SeriesInstanceUID
		in.StudyInstanceUID = st.StudyInstanceUID
	}
	return res, nil
}

// matchCondition returns the SQL condition (empty for universal matching)
// and its arguments for one key and value.
func (d *dialect) matchCondition(qk queryKey, value string, fuzzy bool) (string, []any, error) {
	value = strings.TrimRight(value, " ")
	if value == "" || value == "*" {
		// PS3.4 §C.2.2.2.3: a zero-length value matches every entity;
		// §C.2.2.2.4: so does a value of a single "*".
		return "", nil, nil
	}
	switch qk.kind {
	case matchDate, matchTime:
		if d.name == "postgres" {
			// Compare bytewise, as the studies_search_order index is
			// built, so one index serves both the range and the order.
			qk.column += ` COLLATE "C"`
		}
		return rangeCondition(qk, value)
	case matchUID:
		return uidCondition(qk, value)
	case matchInt:
		return intCondition(qk, value)
	}
	// String VRs: a list of alternatives, each literal or with wildcards.
	var conds []string
	var args []any
	for _, v := range strings.Split(value, `\`) {
		v = strings.TrimRight(v, " ")
		if v == "" || v == "*" {
			return "", nil, nil // one universal alternative matches all
		}
		cond, arg := d.stringCondition(qk, v, fuzzy && qk.kind == matchPN)
		conds = append(conds, cond)
		args = append(args, arg)
	}
	return orConditions(conds), args, nil
}

func orConditions(conds []string) string {
	if len(conds) == 1 {
		return conds[0]
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

// stringCondition matches one value of a string VR, literally or with the
// wildcards "*" (any sequence) and "?" (one character) of PS3.4
// §C.2.2.2.4.
//
// SQLite's LIKE ignores ASCII case, so case-sensitive patterns use GLOB;
// both use an index on a prefix before the first wildcard (SQLite "The
// LIKE optimization"; PostgreSQL through the text_pattern_ops indexes).
func (d *dialect) stringCondition(qk queryKey, v string, caseInsensitive bool) (string, any) {
	wild := strings.ContainsAny(v, "*?")
	col := qk.column
	if qk.kind == matchMultiValue {
		// The column holds the values joined by '\'; wrapping both the
		// column and the pattern in delimiters finds a whole value.
		col = `('\' || ` + col + ` || '\')`
		wild = true
	}
	switch {
	case !wild && !caseInsensitive:
		return col + " = ?", v
	case d.name == "sqlite" && !caseInsensitive:
		p := globPattern(v)
		if qk.kind == matchMultiValue {
			p = `*\` + p + `\*`
		}
		return col + " GLOB ?", p
	case d.name == "sqlite":
		// LIKE with the NOCASE index patients_patient_name_nocase.
		return col + ` LIKE ? ESCAPE '\'`, likePattern(v)
	case caseInsensitive:
		// Matches the lower(patient_name) text_pattern_ops index.
		return "lower(" + col + `) LIKE ?`, likePattern(strings.ToLower(v))
	default:
		p := likePattern(v)
		if qk.kind == matchMultiValue {
			p = `%\\` + p + `\\%`
		}
		return col + " LIKE ?", p
	}
}

// likePattern turns a DICOM value with wildcards into a LIKE pattern with
// backslash as the escape character (PostgreSQL's default; SQLite is told
// with ESCAPE).
func likePattern(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '*':
			b.WriteByte('%')
		case '?':
			b.WriteByte('_')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// globPattern turns a DICOM value with wildcards into an SQLite GLOB
// pattern; GLOB has no escape character, so its own metacharacters go in
// a one-character class.
func globPattern(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch r {
		case '[':
			b.WriteString("[[]")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// rangeCondition matches DA and TM values: a single value, or a range
// "A-B", "A-" or "-B", inclusive (PS3.4 §C.2.2.2.5). The catalog stores
// DA and TM as their DICOM strings, whose fixed-width digits order as
// strings.
func rangeCondition(qk queryKey, value string) (string, []any, error) {
	valid, upper := validDate, upperDate
	if qk.kind == matchTime {
		valid, upper = validTime, upperTime
	}
	lo, hi, isRange := strings.Cut(value, "-")
	if !isRange {
		if !valid(value) {
			return "", nil, fmt.Errorf("malformed value %q", value)
		}
		return qk.column + " = ?", []any{value}, nil
	}
	if strings.Contains(hi, "-") || lo == "" && hi == "" {
		return "", nil, fmt.Errorf("malformed range %q", value)
	}
	if lo != "" && !valid(lo) || hi != "" && !valid(hi) {
		return "", nil, fmt.Errorf("malformed range %q", value)
	}
	// An entity with no value does not match a range: the empty string
	// would otherwise sort below every lower bound.
	conds := []string{qk.column + " <> ''"}
	var args []any
	if lo != "" {
		conds = append(conds, qk.column+" >= ?")
		args = append(args, lo)
	}
	if hi != "" {
		conds = append(conds, qk.column+" <= ?")
		args = append(args, upper(hi))
	}
	return strings.Join(conds, " AND "), args, nil
}

// validDate reports whether s is a DA value YYYYMMDD (PS3.5 §6.2).
func validDate(s string) bool {
	if len(s) != 8 || !allDigits(s) {
		return false
	}
	m, _ := strconv.Atoi(s[4:6])
	day, _ := strconv.Atoi(s[6:8])
	return m >= 1 && m <= 12 && day >= 1 && day <= 31
}

func upperDate(s string) string { return s }

// validTime reports whether s is a TM value HH[MM[SS[.F{1,6}]]]
// (PS3.5 §6.2).
func validTime(s string) bool {
	hms, frac, hasFrac := strings.Cut(s, ".")
	if len(hms) < 2 || len(hms) > 6 || len(hms)%2 != 0 || !allDigits(hms) {
		return false
	}
	if hasFrac && (len(hms) != 6 || len(frac) < 1 || len(frac) > 6 || !allDigits(frac)) {
		return false
	}
	h, _ := strconv.Atoi(hms[:2])
	if h > 23 {
		return false
	}
	if len(hms) >= 4 {
		if m, _ := strconv.Atoi(hms[2:4]); m > 59 {
			return false
		}
	}
	if len(hms) == 6 {
		if sec, _ := strconv.Atoi(hms[4:6]); sec > 60 {
			return false
		}
	}
	return true
}

// upperTime widens a TM upper bound given to a lower precision to the end
// of the period it names, so that "-1100" includes 11:00:30: a value
// given to the minute covers that whole minute (PS3.4 §C.2.2.2.5.1 treats
// the bound at the precision given). Padding with 9s is above every valid
// stored value of the period and below the next one.
func upperTime(s string) string {
	hms, frac, _ := strings.Cut(s, ".")
	if len(hms) < 6 {
		hms += strings.Repeat("9", 6-len(hms))
	}
	return hms + "." + frac + strings.Repeat("9", 6-len(frac))
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// uidCondition matches a UID or a list of UIDs (PS3.4 §C.2.2.2.2).
// Wildcards are not defined for UI (§C.2.2.2.4).
func uidCondition(qk queryKey, value string) (string, []any, error) {
	uids := strings.Split(value, `\`)
	args := make([]any, 0, len(uids))
	for _, u := range uids {
		u = strings.Trim(u, " \x00")
		if !validUID(u) {
			return "", nil, fmt.Errorf("malformed UID %q", u)
		}
		args = append(args, u)
	}
	if len(args) == 1 {
		return qk.column + " = ?", args, nil
	}
	return qk.column + " IN (?" + strings.Repeat(", ?", len(args)-1) + ")", args, nil
}

// validUID reports whether s has the form of a UID: dot-separated
// components of digits, at most 64 characters (PS3.5 §9.1).
func validUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, comp := range strings.Split(s, ".") {
		if comp == "" || !allDigits(comp) {
			return false
		}
	}
	return true
}

// intCondition matches IS values, single or a list.
func intCondition(qk queryKey, value string) (string, []any, error) {
	parts := strings.Split(value, `\`)
	args := make([]any, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		if err != nil {
			return "", nil, fmt.Errorf("malformed integer %q", p)
		}
		args = append(args, n)
	}
	if len(args) == 1 {
		return qk.column + " = ?", args, nil
	}
	return qk.column + " IN (?" + strings.Repeat(", ?", len(args)-1) + ")", args, nil
}
