package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"
	eppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/endpoint_go_proto"
	ispb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/imaging_study_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"
	subpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/subscription_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
)

// ErrBadSearch is returned (wrapped) for a search the server cannot run:
// an unknown parameter or a malformed value (FHIR R4 §3.1.1.5: 400).
var ErrBadSearch = errors.New("fhir: bad search")

type paramKind int

const (
	kindToken paramKind = iota
	kindReference
	kindDate
	kindString
)

type searchParam struct {
	kind paramKind
	// index is the name in fhir_search, shared by aliases.
	index string
	// target is the resource type a bare reference id points to.
	target string
}

// searchParams are the search parameters the hub supports per resource
// type (names as in the R4 SearchParameter registry; "basedOn" and
// "based-on" are accepted for ImagingStudy's "basedon").
var searchParams = map[string]map[string]searchParam{
	"ImagingStudy": {
		"identifier": {kindToken, "identifier", ""},
		"patient":    {kindReference, "patient", "Patient"},
		"subject":    {kindReference, "patient", "Patient"},
		"started":    {kindDate, "started", ""},
		"modality":   {kindToken, "modality", ""},
		"status":     {kindToken, "status", ""},
		"basedon":    {kindReference, "basedon", "ServiceRequest"},
		"basedOn":    {kindReference, "basedon", "ServiceRequest"},
		"based-on":   {kindReference, "basedon", "ServiceRequest"},
		"endpoint":   {kindReference, "endpoint", "Endpoint"},
	},
	"Patient": {
		"identifier": {kindToken, "identifier", ""},
		"name":       {kindString, "name", ""},
		"family":     {kindString, "family", ""},
		"given":      {kindString, "given", ""},
		"birthdate":  {kindDate, "birthdate", ""},
		"gender":     {kindToken, "gender", ""},
	},
	"ServiceRequest": {
		"identifier": {kindToken, "identifier", ""},
		"patient":    {kindReference, "patient", "Patient"},
		"subject":    {kindReference, "patient", "Patient"},
		"status":     {kindToken, "status", ""},
	},
	"DiagnosticReport": {
		"identifier":   {kindToken, "identifier", ""},
		"patient":      {kindReference, "patient", "Patient"},
		"subject":      {kindReference, "patient", "Patient"},
		"based-on":     {kindReference, "based-on", "ServiceRequest"},
		"status":       {kindToken, "status", ""},
		"imagingstudy": {kindReference, "imagingstudy", "ImagingStudy"},
	},
	"Endpoint": {
		"identifier":      {kindToken, "identifier", ""},
		"status":          {kindToken, "status", ""},
		"connection-type": {kindToken, "connection-type", ""},
	},
	"Subscription": {
		"status": {kindToken, "status", ""},
		"type":   {kindToken, "type", ""},
	},
}

// ResourceTypes are the resource types the hub serves.
func ResourceTypes() []string {
	var ts []string
	for t := range searchParams {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

type indexValue struct{ param, value string }

func tokenValues(param, system, code string) []indexValue {
	if code == "" {
		return nil
	}
	return []indexValue{{param, code}, {param, system + "|" + code}}
}

func identifierValues(ids []*dpb.Identifier) []indexValue {
	var out []indexValue
	for _, id := range ids {
		out = append(out, tokenValues("identifier", id.GetSystem().GetValue(), id.GetValue().GetValue())...)
	}
	return out
}

// refString renders a reference as "Type/id" whichever form
// google/fhir/go holds it in.
func refString(r *dpb.Reference) string {
	if r == nil {
		return ""
	}
	if u := r.GetUri(); u != nil {
		return u.GetValue()
	}
	m := r.ProtoReflect()
	f := m.WhichOneof(m.Descriptor().Oneofs().ByName("reference"))
	if f == nil {
		return ""
	}
	rid, ok := m.Get(f).Message().Interface().(*dpb.ReferenceId)
	if !ok {
		return ""
	}
	name := strings.TrimSuffix(string(f.Name()), "_id")
	var typ strings.Builder
	for _, part := range strings.Split(name, "_") {
		if part != "" {
			typ.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return typ.String() + "/" + rid.GetValue()
}

func dateValue(dt *dpb.DateTime) string {
	if dt == nil {
		return ""
	}
	t := time.UnixMicro(dt.GetValueUs()).UTC()
	if dt.GetPrecision() <= dpb.DateTime_DAY {
		// A date alone names a local day; keep the day as given.
		if loc, err := time.Parse("-07:00", strings.Replace(dt.GetTimezone(), "Z", "+00:00", 1)); err == nil {
			t = t.In(loc.Location())
		}
		return t.Format("2006-01-02")
	}
	return t.Format("2006-01-02T15:04:05Z")
}

// indexValues are the search parameter values of a resource.
func indexValues(res proto.Message) []indexValue {
	var out []indexValue
	switch r := res.(type) {
	case *ispb.ImagingStudy:
		out = append(out, identifierValues(r.Identifier)...)
		out = append(out, indexValue{"patient", refString(r.Subject)}, indexValue{"started", dateValue(r.Started)})
		out = append(out, tokenValues("status", "http://hl7.org/fhir/imagingstudy-status", statusCode(r.Status))...)
		for _, m := range r.Modality {
			out = append(out, tokenValues("modality", m.GetSystem().GetValue(), m.GetCode().GetValue())...)
		}
		for _, s := range r.Series {
			out = append(out, tokenValues("modality", s.GetModality().GetSystem().GetValue(), s.GetModality().GetCode().GetValue())...)
		}
		for _, b := range r.BasedOn {
			out = append(out, indexValue{"basedon", refString(b)})
		}
		for _, e := range r.Endpoint {
			out = append(out, indexValue{"endpoint", refString(e)})
		}
	case *ppb.Patient:
		out = append(out, identifierValues(r.Identifier)...)
		for _, n := range r.Name {
			fam := strings.ToLower(n.GetFamily().GetValue())
			out = append(out, indexValue{"family", fam}, indexValue{"name", fam})
			for _, g := range n.Given {
				gv := strings.ToLower(g.GetValue())
				out = append(out, indexValue{"given", gv}, indexValue{"name", gv})
			}
		}
		if r.BirthDate != nil {
			out = append(out, indexValue{"birthdate", time.UnixMicro(r.BirthDate.GetValueUs()).UTC().Format("2006-01-02")})
		}
		out = append(out, tokenValues("gender", "http://hl7.org/fhir/administrative-gender", statusCode(r.Gender))...)
	case *srpb.ServiceRequest:
		out = append(out, identifierValues(r.Identifier)...)
		out = append(out, indexValue{"patient", refString(r.Subject)})
		out = append(out, tokenValues("status", "http://hl7.org/fhir/request-status", statusCode(r.Status))...)
	case *drpb.DiagnosticReport:
		out = append(out, identifierValues(r.Identifier)...)
		out = append(out, indexValue{"patient", refString(r.Subject)})
		out = append(out, tokenValues("status", "http://hl7.org/fhir/diagnostic-report-status", statusCode(r.Status))...)
		for _, b := range r.BasedOn {
			out = append(out, indexValue{"based-on", refString(b)})
		}
		for _, s := range r.ImagingStudy {
			out = append(out, indexValue{"imagingstudy", refString(s)})
		}
	case *eppb.Endpoint:
		out = append(out, identifierValues(r.Identifier)...)
		out = append(out, tokenValues("status", "http://hl7.org/fhir/endpoint-status", statusCode(r.Status))...)
		out = append(out, tokenValues("connection-type", r.GetConnectionType().GetSystem().GetValue(), r.GetConnectionType().GetCode().GetValue())...)
	case *subpb.Subscription:
		out = append(out, tokenValues("status", "http://hl7.org/fhir/subscription-status", statusCode(r.Status))...)
		out = append(out, tokenValues("type", "http://hl7.org/fhir/subscription-channel-type", statusCode(r.GetChannel().GetType()))...)
	}
	return out
}

// statusCode is the FHIR code of a google/fhir/go code message (its enum
// value name, lower case with hyphens).
func statusCode(m proto.Message) string {
	if m == nil {
		return ""
	}
	rm := m.ProtoReflect()
	if !rm.IsValid() {
		return ""
	}
	f := rm.Descriptor().Fields().ByName("value")
	if f == nil {
		return ""
	}
	ev := f.Enum().Values().ByNumber(rm.Get(f).Enum())
	if ev == nil || ev.Number() == 0 {
		return ""
	}
	return strings.ToLower(strings.ReplaceAll(string(ev.Name()), "_", "-"))
}

// Query is a parsed search (FHIR R4 §3.1.1).
type Query struct {
	Type string
	// conds and args restrict the resource row r itself (_id,
	// _lastUpdated); params are the conditions on the search index.
	conds  []string
	args   []any
	params []paramCond
	Count  int
	Offset int
	// byID marks a test of one resource (Matches): no planning needed.
	byID bool
	// Params are the search parameters as given, for paging links.
	Params url.Values
}

// DefaultCount and MaxCount bound the page size of searchsets.
const (
	DefaultCount = 20
	MaxCount     = 1000
)

// ParseQuery parses the search parameters of a search on typ. Unknown
// parameters are an error, as R4 §3.1.1.5 allows with
// Prefer: handling=strict, which the hub always applies so that a typo
// never widens a search to all patients' records.
func ParseQuery(typ string, params url.Values) (Query, error) {
	defs, ok := searchParams[typ]
	if !ok {
		return Query{}, fmt.Errorf("%w: resource type %q is not supported", ErrNotFound, typ)
	}
	q := Query{Type: typ, Count: DefaultCount, Params: url.Values{}}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, raw := range params[name] {
			if err := q.add(defs, name, raw); err != nil {
				return Query{}, err
			}
		}
	}
	return q, nil
}

func (q *Query) add(defs map[string]searchParam, name, raw string) error {
	switch name {
	case "_count":
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: _count %q is not a non-negative integer", ErrBadSearch, raw)
		}
		q.Count = min(n, MaxCount)
		q.Params.Set(name, strconv.Itoa(q.Count))
		return nil
	case "_offset":
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: _offset %q is not a non-negative integer", ErrBadSearch, raw)
		}
		q.Offset = n
		return nil
	case "_format", "_pretty", "_total":
		return nil
	case "_summary":
		if raw != "false" {
			return fmt.Errorf("%w: _summary=%s is not supported", ErrBadSearch, raw)
		}
		return nil
	case "_sort":
		// Results always come newest first; asking for that is fine,
		// asking for another order is not silently ignored.
		if raw != "-_lastUpdated" {
			return fmt.Errorf("%w: _sort %q is not supported (results are sorted by -_lastUpdated)", ErrBadSearch, raw)
		}
		return nil
	case "_id":
		ids := strings.Split(raw, ",")
		q.conds = append(q.conds, "r.id IN ("+placeholders(len(ids))+")")
		for _, id := range ids {
			q.args = append(q.args, id)
		}
		q.Params.Add(name, raw)
		return nil
	case "_lastUpdated":
		lo, hi, err := dateRange(raw)
		if err != nil {
			return err
		}
		if lo != "" {
			q.conds, q.args = append(q.conds, "r.last_updated >= ?"), append(q.args, lo)
		}
		if hi != "" {
			q.conds, q.args = append(q.conds, "r.last_updated < ?"), append(q.args, hi)
		}
		q.Params.Add(name, raw)
		return nil
	}
	base, modifier, _ := strings.Cut(name, ":")
	def, ok := defs[base]
	if !ok {
		return fmt.Errorf("%w: unknown search parameter %q for %s", ErrBadSearch, name, q.Type)
	}
	if modifier != "" && !(modifier == "exact" && def.kind == kindString) {
		return fmt.Errorf("%w: modifier %q of %q is not supported", ErrBadSearch, modifier, base)
	}
	if raw == "" {
		return fmt.Errorf("%w: %s has no value", ErrBadSearch, name)
	}
	q.Params.Add(name, raw)
	pc := paramCond{param: def.index}
	var sub string
	var args []any
	switch def.kind {
	case kindToken, kindReference:
		vals := strings.Split(raw, ",")
		for i, v := range vals {
			if def.kind == kindReference {
				vals[i] = normalizeRef(v, def.target)
			}
		}
		sub = "s.value IN (" + placeholders(len(vals)) + ")"
		for _, v := range vals {
			args = append(args, v)
		}
	case kindString:
		v := strings.ToLower(raw)
		if modifier == "exact" {
			sub = "s.value = ?"
			args = append(args, v)
		} else {
			// Default string matching: case-insensitive, starts with
			// (R4 §3.1.1.5.3).
			sub = "s.value >= ? AND s.value < ?"
			args = append(args, v, v+"\uffff")
		}
	case kindDate:
		lo, hi, err := dateRange(raw)
		if err != nil {
			return err
		}
		var c []string
		if lo != "" {
			c, args = append(c, "s.value >= ?"), append(args, lo)
		}
		if hi != "" {
			c, args = append(c, "s.value < ?"), append(args, hi)
		}
		sub = strings.Join(c, " AND ")
	}
	pc.where, pc.args = sub, args
	q.params = append(q.params, pc)
	return nil
}

// paramCond is one search parameter's condition on the index rows,
// written against the alias s.
type paramCond struct {
	param string
	where string
	args  []any
}

// exists is the condition as a correlated subquery on the resource row r,
// probed through the (resource_type, id, param, value) index for each row
// the search walks. PostgreSQL would turn an EXISTS into a semi-join that
// first collects every matching index row (all "available" studies, say);
// a scalar subquery it runs per row, which is what a page of newest
// results needs.
func (c paramCond) exists(backend string) (string, []any) {
	sub := "SELECT 1 FROM fhir_search s WHERE s.resource_type = r.resource_type AND s.id = r.id AND s.param = ? AND " + c.where
	args := append([]any{c.param}, c.args...)
	if backend == "postgres" {
		return "(" + sub + " LIMIT 1) IS NOT NULL", args
	}
	return "EXISTS (" + sub + ")", args
}

// normalizeRef makes a reference search value "Type/id": a bare id gets
// the parameter's target type, an absolute URL loses its base.
func normalizeRef(v, target string) string {
	v = strings.TrimSpace(v)
	parts := strings.Split(strings.TrimRight(v, "/"), "/")
	if len(parts) >= 2 {
		if i := indexOf(parts, "_history"); i >= 2 {
			parts = parts[:i]
		}
		return parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	return target + "/" + v
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// dateRange turns a date search value with its prefix (R4 §3.1.1.5.6:
// eq, ne is not supported, lt, le, gt, ge, sa, eb) into a half-open text
// range over the stored ISO 8601 values. A value stands for the whole
// period its precision names: eq2026-01-05 is that day.
func dateRange(raw string) (lo, hi string, err error) {
	prefix := "eq"
	if len(raw) > 2 && raw[0] >= 'a' && raw[0] <= 'z' {
		prefix, raw = raw[:2], raw[2:]
	}
	v, err := normalizeDate(raw)
	if err != nil {
		return "", "", err
	}
	end := v + "\uffff" // just past every value inside the period
	switch prefix {
	case "eq":
		return v, end, nil
	case "ge":
		return v, "", nil
	case "gt", "sa":
		return end, "", nil
	case "le":
		return "", end, nil
	case "lt", "eb":
		return "", v, nil
	}
	return "", "", fmt.Errorf("%w: date prefix %q is not supported", ErrBadSearch, prefix)
}

// normalizeDate checks a FHIR date or dateTime search value and returns it
// in the stored form: a date as is, a time in UTC.
func normalizeDate(s string) (string, error) {
	for _, layout := range []string{"2006", "2006-01", "2006-01-02"} {
		if _, err := time.Parse(layout, s); err == nil {
			return s, nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC().Format("2006-01-02T15:04:05Z"), nil
		}
	}
	if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return t.Format("2006-01-02T15:04:05Z"), nil
	}
	return "", fmt.Errorf("%w: %q is not a FHIR date or dateTime", ErrBadSearch, s)
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Search runs q and returns one page of results, newest first, and
// whether more follow.
func (s *Store) Search(ctx context.Context, q Query) ([]Stored, bool, error) {
	var out []Stored
	more := false
	err := s.cat.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		var err error
		out, more, err = searchQ(ctx, tx, q)
		return err
	})
	return out, more, err
}

// driveLimit is the number of index rows under which a search starts from
// its most selective parameter rather than from the newest resources.
const driveLimit = 1000

// searchQ plans and runs a search. The results come newest first, so a
// search whose parameters all match many resources walks the
// last-updated index and tests each resource until the page is full; one
// with a selective parameter (a patient, an identifier, a day) starts from
// that parameter's few index rows and sorts them. Which is which is
// measured, capped at driveLimit rows, rather than guessed: the
// databases' planners see neither the page size nor the skew of values.
func searchQ(ctx context.Context, tx catalog.Querier, q Query) ([]Stored, bool, error) {
	drive := -1
	if len(q.params) > 0 && !q.byID {
		best := driveLimit + 1
		for i, pc := range q.params {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM fhir_search s WHERE s.resource_type = ? AND s.param = ? AND `+pc.where+` LIMIT `+strconv.Itoa(driveLimit+1)+`) x`,
				append([]any{q.Type, pc.param}, pc.args...)...).Scan(&n)
			if err != nil {
				return nil, false, fmt.Errorf("fhir: search %s: %w", q.Type, err)
			}
			if n < best {
				best, drive = n, i
			}
			if n == 0 {
				return nil, false, nil
			}
		}
		if best > driveLimit {
			drive = -1
		}
	}
	var sqlText string
	var args []any
	const cols = "r.id, r.version_id, r.last_updated, r.content"
	if drive >= 0 {
		d := q.params[drive]
		// CROSS JOIN keeps SQLite from reordering the join; PostgreSQL
		// treats it as an inner join.
		sqlText = "SELECT " + cols + " FROM (SELECT DISTINCT s.id FROM fhir_search s WHERE s.resource_type = ? AND s.param = ? AND " + d.where + ") m" +
			" CROSS JOIN fhir_resources r WHERE r.resource_type = ? AND r.id = m.id"
		args = append(append([]any{q.Type, d.param}, d.args...), q.Type)
	} else {
		from := "fhir_resources r"
		if tx.Backend() == "sqlite" && !q.byID {
			from += " INDEXED BY fhir_resources_last_updated"
		}
		sqlText = "SELECT " + cols + " FROM " + from + " WHERE r.resource_type = ?"
		args = []any{q.Type}
	}
	for i, pc := range q.params {
		if i == drive {
			continue
		}
		c, a := pc.exists(tx.Backend())
		sqlText += " AND " + c
		args = append(args, a...)
	}
	for _, c := range q.conds {
		sqlText += " AND " + c
	}
	args = append(args, q.args...)
	sqlText += " ORDER BY r.last_updated DESC, r.id DESC LIMIT ? OFFSET ?"
	args = append(args, q.Count+1, q.Offset)
	rows, err := tx.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, false, fmt.Errorf("fhir: search %s: %w", q.Type, err)
	}
	defer rows.Close()
	var out []Stored
	for rows.Next() {
		st := Stored{Type: q.Type}
		var lu string
		if err := rows.Scan(&st.ID, &st.VersionID, &lu, &st.JSON); err != nil {
			return nil, false, err
		}
		st.LastUpdated, _ = time.Parse(instantLayout, lu)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > q.Count
	if more {
		out = out[:q.Count]
	}
	return out, more, nil
}

// Matches reports whether the resource typ/id satisfies q, for
// subscription criteria.
func (s *Store) Matches(ctx context.Context, tx catalog.Querier, q Query, id string) (bool, error) {
	q.conds = append(append([]string(nil), q.conds...), "r.id = ?")
	q.args = append(append([]any(nil), q.args...), id)
	q.Count, q.Offset, q.byID = 1, 0, true
	res, _, err := searchQ(ctx, tx, q)
	return len(res) > 0, err
}
