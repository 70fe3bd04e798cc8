package fhir

import (
	"errors"
	"net/url"
	"testing"
)

// FuzzParseQuery feeds search query strings from the network: ParseQuery
// either accepts them or says why with ErrBadSearch, and never panics.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"patient=Patient/p-1&status=available",
		"identifier=urn:dicom:uid|urn:oid:1.2.3&_count=5&_offset=10",
		"started=ge2025-01-01&started=lt2025-02-01T10:00:00Z",
		"modality=CT,MR&basedon=ServiceRequest/order-1",
		"name=test&family:exact=x&birthdate=1980",
		"_id=a,b&_lastUpdated=gt2026-01-01",
		"started=ne2025", "_count=-1", "foo=bar", "patient:missing=true", "started=2025-13-45",
	} {
		f.Add("ImagingStudy", s)
		f.Add("Patient", s)
	}
	f.Fuzz(func(t *testing.T, typ, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(typ, v)
		if err != nil {
			if !errors.Is(err, ErrBadSearch) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("ParseQuery(%q, %q): untyped error %v", typ, raw, err)
			}
			return
		}
		if q.Count < 0 || q.Count > MaxCount || q.Offset < 0 {
			t.Fatalf("ParseQuery(%q): count %d offset %d", raw, q.Count, q.Offset)
		}
		for _, pc := range q.params {
			if pc.where == "" {
				t.Fatalf("ParseQuery(%q): empty condition for %s", raw, pc.param)
			}
		}
	})
}

// FuzzSubscription feeds Subscription bodies as POST /fhir/Subscription
// gets them: the validating parser and the hub's checks answer or refuse,
// never panic.
func FuzzSubscription(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Subscription","status":"requested","reason":"r","criteria":"ImagingStudy?status=available","channel":{"type":"rest-hook","endpoint":"https://emr.example/hook","payload":"application/fhir+json","header":["Authorization: Bearer x"]}}`))
	f.Add([]byte(`{"resourceType":"Subscription","status":"off","reason":"r","criteria":"DiagnosticReport?patient=p","channel":{"type":"rest-hook","endpoint":"http://h/"}}`))
	f.Add([]byte(`{"resourceType":"Subscription","status":"active","criteria":"Observation?x=1","channel":{"type":"email"}}`))
	f.Add([]byte(`{"resourceType":"Subscription","status":"requested","reason":"r","criteria":"http://imaginghub/SubscriptionTopic/imagingstudy","_criteria":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria","valueString":"ImagingStudy?patient=Patient/p-1"}]},"channel":{"type":"rest-hook","endpoint":"https://emr.example/hook","payload":"application/fhir+json","_payload":{"extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content","valueCode":"id-only"}]}}}`))
	f.Add([]byte(`{"resourceType": "Subscription", "status": `))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		cr, err := Unmarshal(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidResource) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if s := cr.GetSubscription(); s != nil {
			if err := checkSubscription(s); err != nil && !errors.Is(err, errUnprocessable) {
				t.Fatalf("checkSubscription: untyped error %v", err)
			}
		}
	})
}

// FuzzDateRange checks that date search values give sane ranges.
func FuzzDateRange(f *testing.F) {
	for _, s := range []string{"2025", "ge2025-01", "lt2025-01-02", "eq2025-01-02T10:00:00Z", "sa2025-01-02T10:00:00+02:00", "xx2025", "2025-02-30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := dateRange(s)
		if err != nil {
			if !errors.Is(err, ErrBadSearch) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if lo == "" && hi == "" {
			t.Fatalf("dateRange(%q): no bound", s)
		}
		if lo != "" && hi != "" && lo > hi {
			t.Fatalf("dateRange(%q): %q > %q", s, lo, hi)
		}
	})
}
