package fhir

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"
	eppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/endpoint_go_proto"
	ispb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/imaging_study_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// EndpointID is the id of the Endpoint resource describing this hub's
// WADO-RS service, which every ImagingStudy references.
const EndpointID = "dicomweb"

// StudyInput is what an ImagingStudy is built from: the catalog's study
// (nil fields while only ordered), its series and instances, and the order
// it fulfils.
type StudyInput struct {
	StudyInstanceUID string
	// Study is the archived study; nil when nothing has arrived yet.
	Study  *catalog.StudyRecord
	Series []SeriesInput
	// Order is the order the study fulfils, if known.
	Order *risbridge.Order
	// Subject is the Patient reference ("Patient/p-…"); BasedOn the
	// ServiceRequest references.
	Subject string
	BasedOn []string
	// Location is the time zone the modalities' local dates and times
	// are in (DICOM DA/TM carry none); nil means UTC.
	Location *time.Location
}

// SeriesInput is one series with its instances.
type SeriesInput struct {
	Series    catalog.Series
	Instances []catalog.Instance
}

// ImagingStudyID is the resource id of a study: its Study Instance UID,
// which satisfies the FHIR id syntax ([A-Za-z0-9.-]{1,64}).
func ImagingStudyID(studyInstanceUID string) string { return studyInstanceUID }

// ServiceRequestID is the resource id of an order of the ris-bridge.
func ServiceRequestID(orderID int64) string { return "order-" + strconv.FormatInt(orderID, 10) }

// DiagnosticReportID is the resource id of a report of the ris-bridge.
func DiagnosticReportID(reportID int64) string { return "report-" + strconv.FormatInt(reportID, 10) }

// PatientID is the resource id of the patient identified by an
// identifier: derived from it, so that every process and every rebuild
// names the same patient alike.
func PatientID(id *dpb.Identifier) string {
	h := sha256.Sum256([]byte(id.GetSystem().GetValue() + "|" + id.GetValue().GetValue()))
	return "p-" + hex.EncodeToString(h[:12])
}

// IssuerSystem is the Identifier.system for an assigning authority: an
// ISO OID (bare, or the universal id of an HD "namespace&oid&ISO") as
// urn:oid:, a URI as is, any other name under urn:imaginghub:issuer:, and
// no system for none.
func IssuerSystem(issuer string) string {
	issuer = strings.TrimSpace(issuer)
	if parts := strings.Split(issuer, "&"); len(parts) == 3 {
		if strings.EqualFold(parts[2], "ISO") && dicomfile.ValidUID(parts[1]) {
			return "urn:oid:" + parts[1]
		}
		if parts[0] != "" {
			issuer = parts[0]
		} else {
			issuer = parts[1]
		}
	}
	switch {
	case issuer == "":
		return ""
	case dicomfile.ValidUID(issuer) && strings.Contains(issuer, "."):
		return "urn:oid:" + issuer
	case strings.HasPrefix(issuer, "urn:") || strings.HasPrefix(issuer, "http://") || strings.HasPrefix(issuer, "https://"):
		return issuer
	}
	return systemHubIssuer + url.PathEscape(issuer)
}

// StudyIdentifier is the identifier of a study by its UID, as pushes use
// it for conditional updates.
func StudyIdentifier(studyInstanceUID string) *dpb.Identifier {
	return identifier(systemDICOMUID, "urn:oid:"+studyInstanceUID)
}

func accessionIdentifier(accession, issuer string) *dpb.Identifier {
	id := typedIdentifier("ACSN", IssuerSystem(issuer), accession)
	if id.System == nil && issuer != "" {
		id.Assigner = displayRef(issuer)
	}
	return id
}

// ImagingStudy maps a study (FHIR R4 ImagingStudy, with the DICOM
// mapping of PS3.17 Annex ImagingStudy and IHE RAD-107 conventions).
func ImagingStudy(in StudyInput) *ispb.ImagingStudy {
	loc := in.Location
	if loc == nil {
		loc = time.UTC
	}
	is := &ispb.ImagingStudy{
		Id:         fid(ImagingStudyID(in.StudyInstanceUID)),
		Identifier: []*dpb.Identifier{StudyIdentifier(in.StudyInstanceUID)},
		Endpoint:   []*dpb.Reference{ref("Endpoint/" + EndpointID)},
	}
	var accession, issuer string
	if in.Order != nil {
		accession = in.Order.AccessionNumber
	}
	instances := 0
	if in.Study != nil {
		st := in.Study.Study
		if st.AccessionNumber != "" {
			accession, issuer = st.AccessionNumber, st.IssuerOfAccessionNumber
		}
		is.Started = dicomDateTime(st.StudyDate, st.StudyTime, loc)
		is.Referrer = displayRef(personName(st.ReferringPhysicianName))
		is.Description = fstr(st.StudyDescription)
		is.NumberOfSeries = fuint(st.NumberOfStudyRelatedSeries)
		is.NumberOfInstances = fuint(st.NumberOfStudyRelatedInstances)
		instances = st.NumberOfStudyRelatedInstances
		for _, m := range st.ModalitiesInStudy {
			is.Modality = append(is.Modality, coding(systemDCM, m, ""))
		}
	}
	if accession != "" {
		is.Identifier = append(is.Identifier, accessionIdentifier(accession, issuer))
	}
	// Status (R4 ImagingStudy.status): registered while only ordered,
	// available once images exist, cancelled when the order was cancelled
	// before any arrived.
	status := cpb.ImagingStudyStatusCode_REGISTERED
	switch {
	case instances > 0:
		status = cpb.ImagingStudyStatusCode_AVAILABLE
	case in.Order != nil && (in.Order.Status == "CA" || in.Order.Status == "DC" || in.Order.OrderControl == "CA" || in.Order.OrderControl == "DC"):
		status = cpb.ImagingStudyStatusCode_CANCELLED
	}
	is.Status = &ispb.ImagingStudy_StatusCode{Value: status}
	if in.Subject != "" {
		is.Subject = ref(in.Subject)
	} else {
		// subject is 1..1: a study whose patient is unknown still names
		// one, by the DICOM attributes it came with.
		is.Subject = &dpb.Reference{Display: fstr("unknown")}
	}
	for _, b := range in.BasedOn {
		is.BasedOn = append(is.BasedOn, ref(b))
	}
	if in.Order != nil {
		if pc := orderCode(in.Order.RequestedProcedure); pc != nil {
			is.ProcedureCode = []*dpb.CodeableConcept{pc}
		}
		if is.Referrer == nil {
			is.Referrer = displayRef(personName(in.Order.ReferringProvider))
		}
	}
	for _, s := range in.Series {
		is.Series = append(is.Series, imagingSeries(s, loc))
	}
	return is
}

func imagingSeries(in SeriesInput, loc *time.Location) *ispb.ImagingStudy_Series {
	s := in.Series
	se := &ispb.ImagingStudy_Series{
		Uid:               fid(s.SeriesInstanceUID),
		Description:       fstr(s.SeriesDescription),
		NumberOfInstances: fuint(max(s.NumberOfSeriesRelatedInstances, len(in.Instances))),
		BodySite:          bodySite(s.BodyPartExamined),
		Laterality:        laterality(s.Laterality),
		Started:           dicomDateTime(s.SeriesDate, s.SeriesTime, loc),
	}
	if s.SeriesNumber > 0 {
		se.Number = fuint(s.SeriesNumber)
	}
	m := s.Modality
	if m == "" {
		m = "OT" // modality is 1..1; OT is "Other" in PS3.3 §C.7.3.1.1.1
	}
	se.Modality = coding(systemDCM, m, "")
	for _, i := range in.Instances {
		title, _ := dicomfile.StorageSOPClassName(i.SOPClassUID)
		inst := &ispb.ImagingStudy_Series_Instance{
			Uid:      fid(i.SOPInstanceUID),
			SopClass: coding(systemIETF3986, "urn:oid:"+i.SOPClassUID, ""),
			Title:    fstr(title),
		}
		if i.InstanceNumber > 0 {
			inst.Number = fuint(i.InstanceNumber)
		}
		se.Instance = append(se.Instance, inst)
	}
	return se
}

// bodyParts maps common Body Part Examined values (0018,0015) to SNOMED CT
// as PS3.16 Annex L does.
var bodyParts = map[string][2]string{
	"ABDOMEN":   {"818981001", "Abdomen"},
	"ANKLE":     {"70258002", "Ankle joint"},
	"BRAIN":     {"12738006", "Brain"},
	"BREAST":    {"76752008", "Breast"},
	"CHEST":     {"51185008", "Thorax"},
	"CSPINE":    {"122494005", "Cervical spine"},
	"ELBOW":     {"127949000", "Elbow"},
	"EXTREMITY": {"66019005", "Limb"},
	"FOOT":      {"56459004", "Foot"},
	"HAND":      {"85562004", "Hand"},
	"HEAD":      {"69536005", "Head"},
	"HEART":     {"80891009", "Heart"},
	"HIP":       {"29836001", "Hip"},
	"KNEE":      {"72696002", "Knee"},
	"LSPINE":    {"122496007", "Lumbar spine"},
	"NECK":      {"45048000", "Neck"},
	"PELVIS":    {"816092008", "Pelvis"},
	"SHOULDER":  {"16982005", "Shoulder"},
	"SKULL":     {"89546000", "Skull"},
	"TSPINE":    {"122495006", "Thoracic spine"},
	"WRIST":     {"74670003", "Wrist joint"},
}

func bodySite(bpe string) *dpb.Coding {
	bpe = strings.ToUpper(strings.TrimSpace(bpe))
	if bpe == "" {
		return nil
	}
	if c, ok := bodyParts[bpe]; ok {
		return coding(systemSNOMED, c[0], c[1])
	}
	return coding("", "", bpe)
}

// laterality maps Laterality (0020,0060) to SNOMED CT (PS3.16 CID 244).
func laterality(l string) *dpb.Coding {
	switch strings.ToUpper(strings.TrimSpace(l)) {
	case "R":
		return coding(systemSNOMED, "24028007", "Right")
	case "L":
		return coding(systemSNOMED, "7771000", "Left")
	case "B":
		return coding(systemSNOMED, "51440002", "Right and left")
	}
	return nil
}

// personName renders a DICOM PN or an HL7 XCN ("Family^Given^Middle^
// Prefix^Suffix", an XCN with the id first) for display.
func personName(pn string) string {
	pn = strings.TrimSpace(pn)
	if pn == "" {
		return ""
	}
	if i := strings.IndexByte(pn, '='); i >= 0 {
		pn = pn[:i] // the alphabetic representation (PS3.5 §6.2.1.1)
	}
	c := strings.Split(pn, "^")
	get := func(i int) string {
		if i < len(c) {
			return strings.TrimSpace(c[i])
		}
		return ""
	}
	parts := []string{get(3), get(1), get(2), get(0), get(4)}
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}

// codingSystems maps HL7 v2 coding system names (table 0396) to FHIR
// system URIs.
var codingSystems = map[string]string{
	"LN":    systemLOINC,
	"SCT":   systemSNOMED,
	"SNM":   systemSNOMED,
	"DCM":   systemDCM,
	"RADLX": "http://www.radlex.org",
	"C4":    "http://www.ama-assn.org/go/cpt",
}

func orderCode(c risbridge.Code) *dpb.CodeableConcept {
	if c.Code == "" && c.Text == "" {
		return nil
	}
	cc := &dpb.CodeableConcept{Text: fstr(c.Text)}
	if c.Code != "" {
		sys := codingSystems[strings.ToUpper(c.CodingScheme)]
		if sys == "" && c.CodingScheme != "" {
			sys = systemHubIssuer + url.PathEscape(c.CodingScheme)
		}
		cc.Coding = []*dpb.Coding{coding(sys, c.Code, c.Text)}
	}
	return cc
}

// PatientInput is a patient as the HIS registry or a DICOM header gives it.
type PatientInput struct {
	Identifiers []hisbridge.Identifier
	Name        hisbridge.PersonName
	BirthDate   string // YYYYMMDD
	Sex         string // HL7 table 0001 / DICOM (0010,0040)
	Address     hisbridge.Address
	Phone       string
	// ReplacedBy is the surviving patient's reference of a record merged
	// away (IHE PIR); Replaces those it absorbed.
	ReplacedBy string
	Replaces   []string
}

// PatientIdentifiers maps identifiers (HL7 CX) to FHIR, with the type
// from table 0203 when the CX carried one.
func PatientIdentifiers(ids []hisbridge.Identifier) []*dpb.Identifier {
	var out []*dpb.Identifier
	for _, id := range ids {
		if id.IDNumber == "" {
			continue
		}
		fi := typedIdentifier(id.IdentifierTypeCode, IssuerSystem(id.AssigningAuthority), id.IDNumber)
		if fi.System == nil && id.AssigningAuthority != "" {
			fi.Assigner = displayRef(id.AssigningAuthority)
		}
		out = append(out, fi)
	}
	return out
}

// Patient maps a patient (FHIR R4 Patient; HL7 v2 PID mapping of the
// v2-to-FHIR IG). id is its resource id.
func Patient(id string, in PatientInput) *ppb.Patient {
	p := &ppb.Patient{
		Id:         fid(id),
		Identifier: PatientIdentifiers(in.Identifiers),
		Active:     &dpb.Boolean{Value: in.ReplacedBy == ""},
		BirthDate:  dicomDate(in.BirthDate),
	}
	n := in.Name
	if n.Family != "" || n.Given != "" {
		hn := &dpb.HumanName{Family: fstr(n.Family)}
		for _, g := range []string{n.Given, n.Middle} {
			if g != "" {
				hn.Given = append(hn.Given, fstr(g))
			}
		}
		if n.Prefix != "" {
			hn.Prefix = []*dpb.String{fstr(n.Prefix)}
		}
		if n.Suffix != "" {
			hn.Suffix = []*dpb.String{fstr(n.Suffix)}
		}
		p.Name = []*dpb.HumanName{hn}
	}
	if g, ok := genders[strings.ToUpper(in.Sex)]; ok {
		p.Gender = &ppb.Patient_GenderCode{Value: g}
	}
	a := in.Address
	if a != (hisbridge.Address{}) {
		fa := &dpb.Address{City: fstr(a.City), State: fstr(a.State), PostalCode: fstr(a.PostalCode), Country: fstr(a.Country)}
		for _, l := range []string{a.Street, a.Other} {
			if l != "" {
				fa.Line = append(fa.Line, fstr(l))
			}
		}
		p.Address = []*dpb.Address{fa}
	}
	if in.Phone != "" {
		p.Telecom = []*dpb.ContactPoint{{
			System: &dpb.ContactPoint_SystemCode{Value: cpb.ContactPointSystemCode_PHONE},
			Value:  fstr(in.Phone),
		}}
	}
	if in.ReplacedBy != "" {
		p.Link = append(p.Link, &ppb.Patient_Link{Other: ref(in.ReplacedBy), Type: &ppb.Patient_Link_TypeCode{Value: cpb.LinkTypeCode_REPLACED_BY}})
	}
	for _, r := range in.Replaces {
		p.Link = append(p.Link, &ppb.Patient_Link{Other: ref(r), Type: &ppb.Patient_Link_TypeCode{Value: cpb.LinkTypeCode_REPLACES}})
	}
	return p
}

// genders maps HL7 table 0001 and DICOM (0010,0040) to
// AdministrativeGender.
var genders = map[string]cpb.AdministrativeGenderCode_Value{
	"M": cpb.AdministrativeGenderCode_MALE,
	"F": cpb.AdministrativeGenderCode_FEMALE,
	"O": cpb.AdministrativeGenderCode_OTHER,
	"A": cpb.AdministrativeGenderCode_OTHER,
	"N": cpb.AdministrativeGenderCode_OTHER,
	"U": cpb.AdministrativeGenderCode_UNKNOWN,
}

// PatientFromRef is the patient an order, a report or a DICOM header
// names, for when the registry does not know it.
func PatientFromRef(p risbridge.PatientRef) PatientInput {
	pn := strings.Split(p.PatientName, "^")
	get := func(i int) string {
		if i < len(pn) {
			return strings.TrimSpace(pn[i])
		}
		return ""
	}
	return PatientInput{
		Identifiers: []hisbridge.Identifier{{IDNumber: p.PatientID, AssigningAuthority: p.IssuerOfPatientID}},
		Name:        hisbridge.PersonName{Family: get(0), Given: get(1), Middle: get(2), Prefix: get(3), Suffix: get(4)},
		BirthDate:   p.PatientBirthDate,
		Sex:         p.PatientSex,
	}
}

// orderStatus maps ORC-5 (HL7 table 0038) to RequestStatus, as the
// v2-to-FHIR IG does.
func orderStatus(o *risbridge.Order) cpb.RequestStatusCode_Value {
	switch o.Status {
	case "CA", "DC", "RP":
		return cpb.RequestStatusCode_REVOKED
	case "CM":
		return cpb.RequestStatusCode_COMPLETED
	case "HD":
		return cpb.RequestStatusCode_ON_HOLD
	}
	switch o.OrderControl {
	case "CA", "DC":
		return cpb.RequestStatusCode_REVOKED
	}
	return cpb.RequestStatusCode_ACTIVE
}

// ServiceRequest maps an order (FHIR R4 ServiceRequest; ORM/OMI ORC and
// OBR per the v2-to-FHIR IG). subject is the Patient reference.
func ServiceRequest(o *risbridge.Order, subject string) *srpb.ServiceRequest {
	sr := &srpb.ServiceRequest{
		Id:       fid(ServiceRequestID(o.ID)),
		Status:   &srpb.ServiceRequest_StatusCode{Value: orderStatus(o)},
		Intent:   &srpb.ServiceRequest_IntentCode{Value: cpb.RequestIntentCode_ORDER},
		Category: []*dpb.CodeableConcept{concept("Imaging", coding(systemSNOMED, "363679005", "Imaging"))},
		Code:     orderCode(o.RequestedProcedure),
		Subject:  ref(subject),
		// ORC-12 / OBR-16 ordering provider, as a display only: the hub
		// keeps no Practitioner resources.
		Requester: displayRef(personName(o.OrderingProvider)),
	}
	if o.PlacerOrderNumber != "" {
		sr.Identifier = append(sr.Identifier, typedIdentifier("PLAC", "", o.PlacerOrderNumber))
	}
	if o.FillerOrderNumber != "" {
		sr.Identifier = append(sr.Identifier, typedIdentifier("FILL", "", o.FillerOrderNumber))
	}
	if o.AccessionNumber != "" {
		sr.Identifier = append(sr.Identifier, accessionIdentifier(o.AccessionNumber, ""))
	}
	if o.StudyInstanceUID != "" {
		sr.Identifier = append(sr.Identifier, StudyIdentifier(o.StudyInstanceUID))
	}
	switch strings.ToUpper(o.Priority) {
	case "S":
		sr.Priority = &srpb.ServiceRequest_PriorityCode{Value: cpb.RequestPriorityCode_STAT}
	case "A":
		sr.Priority = &srpb.ServiceRequest_PriorityCode{Value: cpb.RequestPriorityCode_ASAP}
	case "R":
		sr.Priority = &srpb.ServiceRequest_PriorityCode{Value: cpb.RequestPriorityCode_ROUTINE}
	}
	if o.Reason != "" {
		sr.ReasonCode = []*dpb.CodeableConcept{concept(o.Reason)}
	}
	if !o.CreatedAt.IsZero() {
		sr.AuthoredOn = dateTime(o.CreatedAt.UTC(), dpb.DateTime_SECOND)
	}
	if len(o.Steps) > 0 && o.Steps[0].ScheduledStart != "" {
		if dt := rfc3339DateTime(o.Steps[0].ScheduledStart); dt != nil {
			sr.Occurrence = &srpb.ServiceRequest_OccurrenceX{Choice: &srpb.ServiceRequest_OccurrenceX_DateTime{DateTime: dt}}
		}
	}
	return sr
}

// ReportInput is a report with the references it carries.
type ReportInput struct {
	Report risbridge.Report
	// Subject is the Patient, BasedOn the ServiceRequest and
	// ImagingStudy the study references; empty ones are left out.
	Subject      string
	BasedOn      string
	ImagingStudy string
	// Issued is when the hub received the report.
	Issued time.Time
}

// reportStatus maps OBX-11 / OBR-25 (HL7 table 0085) to
// DiagnosticReportStatus.
func reportStatus(s string) cpb.DiagnosticReportStatusCode_Value {
	switch strings.ToUpper(s) {
	case "F":
		return cpb.DiagnosticReportStatusCode_FINAL
	case "C":
		return cpb.DiagnosticReportStatusCode_CORRECTED
	case "P", "R", "S":
		return cpb.DiagnosticReportStatusCode_PRELIMINARY
	case "X":
		return cpb.DiagnosticReportStatusCode_CANCELLED
	case "W":
		return cpb.DiagnosticReportStatusCode_ENTERED_IN_ERROR
	case "I", "O":
		return cpb.DiagnosticReportStatusCode_REGISTERED
	}
	return cpb.DiagnosticReportStatusCode_UNKNOWN
}

// DiagnosticReport maps a radiology report from an ORU (FHIR R4
// DiagnosticReport with the report text as presentedForm, the form IHE
// RAD-128 uses for text reports).
func DiagnosticReport(in ReportInput) *drpb.DiagnosticReport {
	r := in.Report
	dr := &drpb.DiagnosticReport{
		Id:         fid(DiagnosticReportID(r.ID)),
		Identifier: []*dpb.Identifier{identifier(systemHubReport, strconv.FormatInt(r.ID, 10))},
		Status:     &drpb.DiagnosticReport_StatusCode{Value: reportStatus(r.ResultStatus)},
		Category:   []*dpb.CodeableConcept{concept("", coding(systemV20074, "RAD", "Radiology"))},
		Code:       concept("Diagnostic imaging study", coding(systemLOINC, "18748-4", "Diagnostic imaging study")),
	}
	if in.Subject != "" {
		dr.Subject = ref(in.Subject)
	}
	if in.BasedOn != "" {
		dr.BasedOn = []*dpb.Reference{ref(in.BasedOn)}
	}
	if in.ImagingStudy != "" {
		dr.ImagingStudy = []*dpb.Reference{ref(in.ImagingStudy)}
	}
	if dt := rfc3339DateTime(r.ObservationTime); dt != nil {
		dr.Effective = &drpb.DiagnosticReport_EffectiveX{Choice: &drpb.DiagnosticReport_EffectiveX_DateTime{DateTime: dt}}
	}
	if !in.Issued.IsZero() {
		dr.Issued = instant(in.Issued)
	}
	if r.Text != "" {
		dr.PresentedForm = []*dpb.Attachment{{
			ContentType: &dpb.Attachment_ContentTypeCode{Value: "text/plain; charset=utf-8"},
			Language:    nil,
			Data:        &dpb.Base64Binary{Value: []byte(r.Text)},
			Title:       fstr("Report"),
		}}
	}
	return dr
}

// Endpoint describes this hub's WADO-RS service (FHIR R4 Endpoint with
// connection type dicom-wado-rs), at the DICOMweb base address.
func Endpoint(address string) *eppb.Endpoint {
	return &eppb.Endpoint{
		Id:             fid(EndpointID),
		Status:         &eppb.Endpoint_StatusCode{Value: cpb.EndpointStatusCode_ACTIVE},
		ConnectionType: coding(systemConnection, "dicom-wado-rs", "DICOM WADO-RS"),
		Name:           fstr("imaginghub DICOMweb"),
		PayloadType:    []*dpb.CodeableConcept{concept("DICOM", coding(systemDCM, "113014", "Study"))},
		PayloadMimeType: []*eppb.Endpoint_PayloadMimeTypeCode{
			{Value: "application/dicom"},
		},
		Address: &dpb.Url{Value: address},
	}
}
