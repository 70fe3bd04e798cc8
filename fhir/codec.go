package fhir

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// ErrInvalidResource is returned (wrapped) when JSON is not a valid FHIR
// R4 resource: not JSON, an unknown resourceType, or a resource that fails
// the structural validation of google/fhir/go.
var ErrInvalidResource = errors.New("fhir: invalid resource")

var codec struct {
	once sync.Once
	m    *jsonformat.Marshaller
	u    *jsonformat.Unmarshaller
	err  error
}

func initCodec() error {
	codec.once.Do(func() {
		codec.m, codec.err = jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
		if codec.err != nil {
			return
		}
		// Times without an offset are read as UTC; every time the hub
		// writes carries one.
		codec.u, codec.err = jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	})
	return codec.err
}

// Marshal serializes an R4 resource proto (an ImagingStudy, a Patient, …)
// as FHIR JSON.
func Marshal(r proto.Message) ([]byte, error) {
	if err := initCodec(); err != nil {
		return nil, err
	}
	b, err := codec.m.MarshalResource(r)
	if err != nil {
		return nil, fmt.Errorf("fhir: marshal %s: %w", r.ProtoReflect().Descriptor().Name(), err)
	}
	return b, nil
}

// Unmarshal parses and validates FHIR R4 JSON (required elements,
// cardinalities, value sets of codes, primitive formats) and returns the
// resource in its ContainedResource wrapper.
func Unmarshal(b []byte) (*bcrpb.ContainedResource, error) {
	if err := initCodec(); err != nil {
		return nil, err
	}
	m, err := codec.u.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidResource, err)
	}
	cr, ok := m.(*bcrpb.ContainedResource)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected %T", ErrInvalidResource, m)
	}
	return cr, nil
}

// Resource returns the resource a ContainedResource holds.
func Resource(cr *bcrpb.ContainedResource) proto.Message {
	rm := cr.ProtoReflect()
	od := rm.Descriptor().Oneofs().ByName("oneof_resource")
	f := rm.WhichOneof(od)
	if f == nil {
		return nil
	}
	return rm.Get(f).Message().Interface()
}

// ResourceType is the FHIR name of a resource proto ("ImagingStudy").
func ResourceType(r proto.Message) string { return string(r.ProtoReflect().Descriptor().Name()) }

// contentHash identifies a resource's content apart from its meta.
func contentHash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// The constructors below keep the mapping readable: FHIR primitives are
// messages in google/fhir/go.

func fstr(s string) *dpb.String {
	if s == "" {
		return nil
	}
	return &dpb.String{Value: s}
}
func furi(s string) *dpb.Uri { return &dpb.Uri{Value: s} }
func fid(s string) *dpb.Id   { return &dpb.Id{Value: s} }
func fcode(s string) *dpb.Code {
	return &dpb.Code{Value: s}
}
func fuint(n int) *dpb.UnsignedInt { return &dpb.UnsignedInt{Value: uint32(max(n, 0))} }

func coding(system, code, display string) *dpb.Coding {
	c := &dpb.Coding{Display: fstr(display)}
	if system != "" {
		c.System = furi(system)
	}
	if code != "" {
		c.Code = fcode(code)
	}
	return c
}

func concept(text string, codings ...*dpb.Coding) *dpb.CodeableConcept {
	return &dpb.CodeableConcept{Coding: codings, Text: fstr(text)}
}

// ref is a literal reference ("Patient/123"); google/fhir/go keeps
// relative references typed, but the untyped form serializes the same.
func ref(reference string) *dpb.Reference {
	return &dpb.Reference{Reference: &dpb.Reference_Uri{Uri: &dpb.String{Value: reference}}}
}

func displayRef(display string) *dpb.Reference {
	if display == "" {
		return nil
	}
	return &dpb.Reference{Display: fstr(display)}
}

// identifierRef is a logical reference (R4 §2.3.0.4 Reference.identifier).
func identifierRef(typ string, id *dpb.Identifier) *dpb.Reference {
	return &dpb.Reference{Type: furi(typ), Identifier: id}
}

func identifier(system, value string) *dpb.Identifier {
	id := &dpb.Identifier{Value: fstr(value)}
	if system != "" {
		id.System = furi(system)
	}
	return id
}

// typedIdentifier is an identifier with a type from HL7 v2 table 0203
// (http://terminology.hl7.org/CodeSystem/v2-0203): ACSN, MR, PLAC, FILL, …
func typedIdentifier(typeCode, system, value string) *dpb.Identifier {
	id := identifier(system, value)
	if typeCode != "" {
		id.Type = concept("", coding(systemV20203, typeCode, ""))
	}
	return id
}

func tzString(t time.Time) string {
	_, off := t.Zone()
	if off == 0 {
		return "Z"
	}
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	return fmt.Sprintf("%s%02d:%02d", sign, off/3600, off%3600/60)
}

func instant(t time.Time) *dpb.Instant {
	t = t.UTC()
	return &dpb.Instant{ValueUs: t.UnixMicro(), Timezone: "Z", Precision: dpb.Instant_MICROSECOND}
}

func dateTime(t time.Time, p dpb.DateTime_Precision) *dpb.DateTime {
	return &dpb.DateTime{ValueUs: t.UnixMicro(), Timezone: tzString(t), Precision: p}
}

// dicomDateTime turns a DICOM DA (YYYYMMDD) and TM (HHMMSS.FFFFFF, any
// trailing components absent; PS3.5 §6.2) into a FHIR dateTime in loc, the
// time zone the modality's local times are in. It returns nil when the date
// is absent or malformed.
func dicomDateTime(da, tm string, loc *time.Location) *dpb.DateTime {
	da = strings.TrimSpace(da)
	if len(da) != 8 {
		return nil
	}
	d, err := time.ParseInLocation("20060102", da, loc)
	if err != nil {
		return nil
	}
	tm = strings.TrimSpace(strings.ReplaceAll(tm, ":", ""))
	if tm == "" {
		return dateTime(d, dpb.DateTime_DAY)
	}
	frac := ""
	if i := strings.IndexByte(tm, '.'); i >= 0 {
		tm, frac = tm[:i], tm[i+1:]
	}
	tm += strings.Repeat("0", max(0, 6-len(tm)))
	if len(tm) != 6 {
		return dateTime(d, dpb.DateTime_DAY)
	}
	clock, err := time.Parse("150405", tm)
	if err != nil {
		return dateTime(d, dpb.DateTime_DAY)
	}
	t := time.Date(d.Year(), d.Month(), d.Day(), clock.Hour(), clock.Minute(), clock.Second(), 0, loc)
	p := dpb.DateTime_SECOND
	if frac != "" {
		frac = (frac + "000000")[:6]
		var us int
		if _, err := fmt.Sscanf(frac, "%06d", &us); err == nil {
			t = t.Add(time.Duration(us) * time.Microsecond)
			p = dpb.DateTime_MICROSECOND
			if us%1000 == 0 {
				p = dpb.DateTime_MILLISECOND
			}
		}
	}
	return dateTime(t, p)
}

// dicomDate turns a DICOM DA into a FHIR date.
func dicomDate(da string) *dpb.Date {
	d, err := time.ParseInLocation("20060102", strings.TrimSpace(da), time.UTC)
	if err != nil {
		return nil
	}
	return &dpb.Date{ValueUs: d.UnixMicro(), Timezone: "Z", Precision: dpb.Date_DAY}
}

// rfc3339DateTime parses the RFC 3339 times the bridges normalise HL7 TS
// values to.
func rfc3339DateTime(s string) *dpb.DateTime {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	p := dpb.DateTime_SECOND
	if t.Nanosecond() != 0 {
		p = dpb.DateTime_MICROSECOND
	}
	return dateTime(t, p)
}

// Code systems and identifier systems used by the mapping.
const (
	// systemDICOMUID holds DICOM UIDs as urn:oid: values (FHIR R4
	// ImagingStudy.identifier notes: system urn:dicom:uid).
	systemDICOMUID = "urn:dicom:uid"
	// systemDCM is the DICOM Controlled Terminology (PS3.16) code system.
	systemDCM = "http://dicom.nema.org/resources/ontology/DCM"
	// systemIETF3986 is used for SOP Class UIDs as urn:oid: codes.
	systemIETF3986   = "urn:ietf:rfc:3986"
	systemV20203     = "http://terminology.hl7.org/CodeSystem/v2-0203"
	systemV20074     = "http://terminology.hl7.org/CodeSystem/v2-0074"
	systemSNOMED     = "http://snomed.info/sct"
	systemLOINC      = "http://loinc.org"
	systemConnection = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	// systemHubIssuer prefixes identifier systems for assigning
	// authorities that are not OIDs or URIs.
	systemHubIssuer = "urn:imaginghub:issuer:"
	// systemHubReport identifies reports by the hub's report number.
	systemHubReport = "urn:imaginghub:report"
)

func protoValue(m proto.Message) protoreflect.Value {
	return protoreflect.ValueOfMessage(m.ProtoReflect())
}
