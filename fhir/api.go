package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	cspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/capability_statement_go_proto"
	oopb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/operation_outcome_go_proto"
	vspb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/valuesets_go_proto"
)

// ContentType is the media type of every FHIR body the hub writes
// (FHIR R4 §3.1.0.1.11 / §2.6.2 JSON).
const ContentType = "application/fhir+json; charset=utf-8"

// maxBodyBytes bounds a request body (a Subscription).
const maxBodyBytes = 1 << 20

func (f *FHIR) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /fhir/metadata", f.metadata)
	mux.HandleFunc("GET /fhir/{type}", f.search)
	mux.HandleFunc("POST /fhir/{type}/_search", f.search)
	mux.HandleFunc("GET /fhir/{type}/{id}", f.read)
	mux.HandleFunc("GET /fhir/{type}/{id}/_history/{vid}", f.vread)
	mux.HandleFunc("POST /fhir/Subscription", f.createSubscription)
	mux.HandleFunc("PUT /fhir/Subscription/{id}", f.updateSubscription)
	mux.HandleFunc("DELETE /fhir/Subscription/{id}", f.deleteSubscription)
	mux.HandleFunc("/fhir/", func(w http.ResponseWriter, r *http.Request) {
		typ, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/fhir/"), "/")
		if _, ok := searchParams[typ]; !ok && typ != "metadata" {
			f.fail(w, r, http.StatusNotFound, cpb.IssueTypeCode_NOT_SUPPORTED, fmt.Sprintf("resource type %q is not supported", typ))
			return
		}
		f.fail(w, r, http.StatusMethodNotAllowed, cpb.IssueTypeCode_NOT_SUPPORTED, r.Method+" is not supported here")
	})
}

// base is the FHIR base URL resources are named under.
func (f *FHIR) base(r *http.Request) string {
	if f.opts.BaseURL != "" {
		return strings.TrimRight(f.opts.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/fhir"
}

// wantsJSON checks _format and Accept (R4 §3.1.0.1.11): the hub speaks
// JSON only.
func wantsJSON(r *http.Request) bool {
	if ft := r.URL.Query().Get("_format"); ft != "" {
		return ft == "json" || strings.Contains(ft, "json")
	}
	acc := r.Header.Get("Accept")
	if acc == "" {
		return true
	}
	for _, a := range strings.Split(acc, ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(a), ";")
		switch mt {
		case "*/*", "application/*", "application/json", "application/fhir+json", "application/json+fhir":
			return true
		}
	}
	return false
}

func (f *FHIR) write(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func (f *FHIR) writeStored(w http.ResponseWriter, r *http.Request, status int, st Stored) {
	w.Header().Set("ETag", st.ETag())
	w.Header().Set("Last-Modified", st.LastUpdated.UTC().Format(http.TimeFormat))
	if status == http.StatusCreated {
		w.Header().Set("Location", f.base(r)+"/"+st.Type+"/"+st.ID+"/_history/"+strconv.FormatInt(st.VersionID, 10))
	}
	f.write(w, r, status, st.JSON)
}

// OperationOutcome builds the outcome of a failed interaction.
func OperationOutcome(severity cpb.IssueSeverityCode_Value, code cpb.IssueTypeCode_Value, diagnostics string) *oopb.OperationOutcome {
	return &oopb.OperationOutcome{Issue: []*oopb.OperationOutcome_Issue{{
		Severity:    &oopb.OperationOutcome_Issue_SeverityCode{Value: severity},
		Code:        &oopb.OperationOutcome_Issue_CodeType{Value: code},
		Diagnostics: fstr(diagnostics),
	}}}
}

// fail answers with an OperationOutcome (R4 §3.1.0.4.1: errors carry
// one).
func (f *FHIR) fail(w http.ResponseWriter, r *http.Request, status int, code cpb.IssueTypeCode_Value, msg string) {
	b, err := Marshal(OperationOutcome(cpb.IssueSeverityCode_ERROR, code, msg))
	if err != nil {
		http.Error(w, msg, status)
		return
	}
	f.write(w, r, status, b)
}

// failErr maps store and search errors to their HTTP answers.
func (f *FHIR) failErr(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		f.fail(w, r, http.StatusNotFound, cpb.IssueTypeCode_NOT_FOUND, err.Error())
	case errors.Is(err, ErrGone):
		f.fail(w, r, http.StatusGone, cpb.IssueTypeCode_DELETED, err.Error())
	case errors.Is(err, ErrBadSearch):
		f.fail(w, r, http.StatusBadRequest, cpb.IssueTypeCode_INVALID, err.Error())
	case errors.Is(err, ErrInvalidResource):
		f.fail(w, r, http.StatusBadRequest, cpb.IssueTypeCode_STRUCTURE, err.Error())
	case errors.Is(err, errUnprocessable):
		f.fail(w, r, http.StatusUnprocessableEntity, cpb.IssueTypeCode_PROCESSING, err.Error())
	default:
		f.log.ErrorContext(r.Context(), "FHIR request failed", "path", r.URL.Path, "err", err)
		f.fail(w, r, http.StatusInternalServerError, cpb.IssueTypeCode_EXCEPTION, "internal error")
	}
}

func (f *FHIR) checkType(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !wantsJSON(r) {
		f.fail(w, r, http.StatusNotAcceptable, cpb.IssueTypeCode_NOT_SUPPORTED, "only application/fhir+json is served")
		return "", false
	}
	typ := r.PathValue("type")
	if _, ok := searchParams[typ]; !ok {
		f.fail(w, r, http.StatusNotFound, cpb.IssueTypeCode_NOT_SUPPORTED, fmt.Sprintf("resource type %q is not supported", typ))
		return "", false
	}
	return typ, true
}

func (f *FHIR) read(w http.ResponseWriter, r *http.Request) {
	typ, ok := f.checkType(w, r)
	if !ok {
		return
	}
	st, err := f.store.Get(r.Context(), typ, r.PathValue("id"))
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	// Conditional read (R4 §3.1.0.4.2).
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.TrimPrefix(inm, "W/") == strings.TrimPrefix(st.ETag(), "W/") {
		w.Header().Set("ETag", st.ETag())
		w.WriteHeader(http.StatusNotModified)
		return
	}
	f.writeStored(w, r, http.StatusOK, st)
}

func (f *FHIR) vread(w http.ResponseWriter, r *http.Request) {
	typ, ok := f.checkType(w, r)
	if !ok {
		return
	}
	v, err := strconv.ParseInt(r.PathValue("vid"), 10, 64)
	if err != nil || v < 1 {
		f.fail(w, r, http.StatusNotFound, cpb.IssueTypeCode_NOT_FOUND, "no such version")
		return
	}
	st, err := f.store.VRead(r.Context(), typ, r.PathValue("id"), v)
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	f.writeStored(w, r, http.StatusOK, st)
}

func (f *FHIR) search(w http.ResponseWriter, r *http.Request) {
	typ, ok := f.checkType(w, r)
	if !ok {
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		if err := r.ParseForm(); err != nil {
			f.fail(w, r, http.StatusBadRequest, cpb.IssueTypeCode_INVALID, "form: "+err.Error())
			return
		}
		for k, vs := range r.PostForm {
			params[k] = append(params[k], vs...)
		}
	}
	q, err := ParseQuery(typ, params)
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	res, more, err := f.store.Search(r.Context(), q)
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	b, err := searchBundle(f.base(r), q, res, more)
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	f.write(w, r, http.StatusOK, b)
}

// searchBundle renders a searchset Bundle (R4 §3.1.1.2) with self, next
// and previous links that carry _offset.
func searchBundle(base string, q Query, res []Stored, more bool) ([]byte, error) {
	link := func(rel string, offset int) *bcrpb.Bundle_Link {
		v := url.Values{}
		for k, vs := range q.Params {
			v[k] = vs
		}
		v.Set("_count", strconv.Itoa(q.Count))
		if offset > 0 {
			v.Set("_offset", strconv.Itoa(offset))
		}
		return &bcrpb.Bundle_Link{Relation: fstr(rel), Url: furi(base + "/" + q.Type + "?" + v.Encode())}
	}
	b := &bcrpb.Bundle{
		Type:      &bcrpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_SEARCHSET},
		Timestamp: instant(time.Now()),
		Link:      []*bcrpb.Bundle_Link{link("self", q.Offset)},
	}
	if !more {
		// The whole result is known only on its last page.
		b.Total = fuint(q.Offset + len(res))
	}
	if more {
		b.Link = append(b.Link, link("next", q.Offset+q.Count))
	}
	if q.Offset > 0 {
		b.Link = append(b.Link, link("previous", max(0, q.Offset-q.Count)))
	}
	for _, st := range res {
		b.Entry = append(b.Entry, &bcrpb.Bundle_Entry{
			FullUrl: furi(base + "/" + st.Type + "/" + st.ID),
			Search:  &bcrpb.Bundle_Entry_Search{Mode: &bcrpb.Bundle_Entry_Search_ModeCode{Value: cpb.SearchEntryModeCode_MATCH}},
		})
	}
	return spliceEntries(b, res)
}

// spliceEntries marshals a Bundle whose entries lack their resources and
// puts in each the stored JSON, which google/fhir/go serialized and
// validated when it was stored: parsing every stored resource again only
// to serialize it back would cost more than the search.
func spliceEntries(b *bcrpb.Bundle, res []Stored) ([]byte, error) {
	shell, err := Marshal(b)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return shell, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(shell, &doc); err != nil {
		return nil, err
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(doc["entry"], &entries); err != nil {
		return nil, err
	}
	for i := range entries {
		entries[i]["resource"] = json.RawMessage(res[i].JSON)
	}
	raw, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	doc["entry"] = raw
	return json.Marshal(doc)
}

func enumName(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(c)
	}
	return strings.ToUpper(b.String())
}

// CapabilityStatement describes what this server does (R4 §3.1.0.14).
func CapabilityStatement(base string) *cspb.CapabilityStatement {
	cs := &cspb.CapabilityStatement{
		Status:      &cspb.CapabilityStatement_StatusCode{Value: cpb.PublicationStatusCode_ACTIVE},
		Date:        dateTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), dpb.DateTime_DAY),
		Name:        fstr("ImaginghubFHIR"),
		Title:       fstr("imaginghub FHIR R4 server"),
		Kind:        &cspb.CapabilityStatement_KindCode{Value: cpb.CapabilityStatementKindCode_INSTANCE},
		Software:    &cspb.CapabilityStatement_Software{Name: fstr("imaginghub")},
		FhirVersion: &cspb.CapabilityStatement_FhirVersionCode{Value: cpb.FHIRVersionCode_V_4_0_1},
		Format:      []*cspb.CapabilityStatement_FormatCode{{Value: "json"}, {Value: "application/fhir+json"}},
		Implementation: &cspb.CapabilityStatement_Implementation{
			Description: fstr("imaginghub: ImagingStudy, Patient, ServiceRequest, DiagnosticReport, Endpoint and Subscription"),
			Url:         &dpb.Url{Value: base},
		},
	}
	rest := &cspb.CapabilityStatement_Rest{Mode: &cspb.CapabilityStatement_Rest_ModeCode{Value: cpb.RestfulCapabilityModeCode_SERVER}}
	kinds := map[paramKind]cpb.SearchParamTypeCode_Value{
		kindToken: cpb.SearchParamTypeCode_TOKEN, kindReference: cpb.SearchParamTypeCode_REFERENCE,
		kindDate: cpb.SearchParamTypeCode_DATE, kindString: cpb.SearchParamTypeCode_STRING,
	}
	for _, typ := range ResourceTypes() {
		res := &cspb.CapabilityStatement_Rest_Resource{
			Type:        &cspb.CapabilityStatement_Rest_Resource_TypeCode{Value: cpb.ResourceTypeCode_Value(cpb.ResourceTypeCode_Value_value[enumName(typ)])},
			Versioning:  &cspb.CapabilityStatement_Rest_Resource_VersioningCode{Value: cpb.ResourceVersionPolicyCode_VERSIONED},
			ReadHistory: &dpb.Boolean{Value: true},
		}
		inter := []string{"READ", "VREAD", "SEARCH_TYPE"}
		if typ == "Subscription" {
			inter = append(inter, "CREATE", "UPDATE", "DELETE")
			// Subscriptions Backport IG: the topics this server offers.
			res.Extension = append(res.Extension, &dpb.Extension{
				Url:   furi(backportBase + "capabilitystatement-subscriptiontopic-canonical"),
				Value: &dpb.Extension_ValueX{Choice: &dpb.Extension_ValueX_Canonical{Canonical: &dpb.Canonical{Value: TopicImagingStudy}}},
			})
		}
		for _, i := range inter {
			res.Interaction = append(res.Interaction, &cspb.CapabilityStatement_Rest_Resource_ResourceInteraction{
				Code: &cspb.CapabilityStatement_Rest_Resource_ResourceInteraction_CodeType{Value: vspb.TypeRestfulInteractionValueSet_Value(vspb.TypeRestfulInteractionValueSet_Value_value[i])},
			})
		}
		var names []string
		for n := range searchParams[typ] {
			names = append(names, n)
		}
		sortStrings(names)
		for _, n := range names {
			res.SearchParam = append(res.SearchParam, &cspb.CapabilityStatement_Rest_Resource_SearchParam{
				Name: fstr(n),
				Type: &cspb.CapabilityStatement_Rest_Resource_SearchParam_TypeCode{Value: kinds[searchParams[typ][n].kind]},
			})
		}
		rest.Resource = append(rest.Resource, res)
	}
	cs.Rest = []*cspb.CapabilityStatement_Rest{rest}
	return cs
}

func (f *FHIR) metadata(w http.ResponseWriter, r *http.Request) {
	if !wantsJSON(r) {
		f.fail(w, r, http.StatusNotAcceptable, cpb.IssueTypeCode_NOT_SUPPORTED, "only application/fhir+json is served")
		return
	}
	b, err := Marshal(CapabilityStatement(f.base(r)))
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	f.write(w, r, http.StatusOK, b)
}
