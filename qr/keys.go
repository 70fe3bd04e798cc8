package qr

import (
	"strconv"
	"strings"

	"github.com/imaginghub/imaginghub/catalog"
)

// attribute is a key the Q/R SCP knows: its keyword (PS3.6 §6), VR, the
// level of the information model that holds it (PS3.4 §C.6.1.1, §C.6.2.1)
// and how to read its value from a catalog result. Keywords that are
// catalog.QueryKeys are matching keys; the others are return keys only.
type attribute struct {
	keyword string
	vr      string
	level   catalog.Level
	get     func(r *catalog.Result) string
}

func itoa(n int) string { return strconv.Itoa(n) }

// positive formats an optional integer attribute: 0 means absent.
func positive(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

var dictionary = map[tag]attribute{
	// Patient level (PS3.4 Table C.6-1).
	0x00100010: {"PatientName", "PN", catalog.PatientLevel, func(r *catalog.Result) string { return r.Patient.PatientName }},
	0x00100020: {"PatientID", "LO", catalog.PatientLevel, func(r *catalog.Result) string { return r.Patient.PatientID }},
	0x00100021: {"IssuerOfPatientID", "LO", catalog.PatientLevel, func(r *catalog.Result) string { return r.Patient.IssuerOfPatientID }},
	0x00100030: {"PatientBirthDate", "DA", catalog.PatientLevel, func(r *catalog.Result) string { return r.Patient.PatientBirthDate }},
	0x00100040: {"PatientSex", "CS", catalog.PatientLevel, func(r *catalog.Result) string { return r.Patient.PatientSex }},

	// Study level (PS3.4 Table C.6-2, C.6-5).
	0x0020000D: {"StudyInstanceUID", "UI", catalog.StudyLevel, func(r *catalog.Result) string { return r.Study.StudyInstanceUID }},
	0x00080020: {"StudyDate", "DA", catalog.StudyLevel, func(r *catalog.Result) string { return r.Study.StudyDate }},
	0x00080030: {"StudyTime", "TM", catalog.StudyLevel, func(r *catalog.Result) string { return r.Study.StudyTime }},
	0x00080050: {"AccessionNumber", "SH", catalog.StudyLevel, func(r *catalog.Result) string { return r.Study.AccessionNumber }},
	0x00080090: {"ReferringPhysicianName", "PN", catalog.StudyLevel, func(r *catalog.Result) string { return r.Study.ReferringPhysicianName }},
	0x00081030: {"StudyDescription", "LO", catalog.StudyLevel, func(r *catalog.Result) string { return r.Study.StudyDescription }},
	0x00200010: {"StudyID", "SH", catalog.StudyLevel, func(r *catalog.Result) string { return r.Study.StudyID }},
	0x00080061: {"ModalitiesInStudy", "CS", catalog.StudyLevel, func(r *catalog.Result) string { return strings.Join(r.Study.ModalitiesInStudy, `\`) }},
	0x00201206: {"NumberOfStudyRelatedSeries", "IS", catalog.StudyLevel, func(r *catalog.Result) string { return itoa(r.Study.NumberOfStudyRelatedSeries) }},
	0x00201208: {"NumberOfStudyRelatedInstances", "IS", catalog.StudyLevel, func(r *catalog.Result) string { return itoa(r.Study.NumberOfStudyRelatedInstances) }},

	// Series level (PS3.4 Table C.6-3).
	0x0020000E: {"SeriesInstanceUID", "UI", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.SeriesInstanceUID }},
	0x00080060: {"Modality", "CS", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.Modality }},
	0x00200011: {"SeriesNumber", "IS", catalog.SeriesLevel, func(r *catalog.Result) string { return positive(r.Series.SeriesNumber) }},
	0x0008103E: {"SeriesDescription", "LO", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.SeriesDescription }},
	0x00180015: {"BodyPartExamined", "CS", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.BodyPartExamined }},
	0x00200060: {"Laterality", "CS", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.Laterality }},
	0x00080021: {"SeriesDate", "DA", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.SeriesDate }},
	0x00080031: {"SeriesTime", "TM", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.SeriesTime }},
	0x00081010: {"StationName", "SH", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.StationName }},
	0x00080080: {"InstitutionName", "LO", catalog.SeriesLevel, func(r *catalog.Result) string { return r.Series.InstitutionName }},
	0x00201209: {"NumberOfSeriesRelatedInstances", "IS", catalog.SeriesLevel, func(r *catalog.Result) string { return itoa(r.Series.NumberOfSeriesRelatedInstances) }},

	// Composite object instance level (PS3.4 Table C.6-4).
	0x00080018: {"SOPInstanceUID", "UI", catalog.InstanceLevel, func(r *catalog.Result) string { return r.Instance.SOPInstanceUID }},
	0x00080016: {"SOPClassUID", "UI", catalog.InstanceLevel, func(r *catalog.Result) string { return r.Instance.SOPClassUID }},
	0x00200013: {"InstanceNumber", "IS", catalog.InstanceLevel, func(r *catalog.Result) string { return positive(r.Instance.InstanceNumber) }},
	0x00280008: {"NumberOfFrames", "IS", catalog.InstanceLevel, func(r *catalog.Result) string { return positive(r.Instance.NumberOfFrames) }},
	0x00280010: {"Rows", "US", catalog.InstanceLevel, nil},
	0x00280011: {"Columns", "US", catalog.InstanceLevel, nil},

	// Keys of the query itself (PS3.4 §C.4.1.1.3.2).
	tagSpecificCharacterSet:  {"SpecificCharacterSet", "CS", 0, nil},
	tagQueryRetrieveLevel:    {"QueryRetrieveLevel", "CS", 0, nil},
	tagRetrieveAETitle:       {"RetrieveAETitle", "AE", 0, nil},
	tagInstanceAvailability:  {"InstanceAvailability", "CS", 0, nil},
	tagFailedSOPInstanceUIDs: {"FailedSOPInstanceUIDList", "UI", 0, nil},
}

// binaryValue returns the value of a binary-VR attribute (US) in little
// endian, or nil when it is absent.
func binaryValue(t tag, r *catalog.Result) []byte {
	var n int
	switch t {
	case 0x00280010:
		n = r.Instance.Rows
	case 0x00280011:
		n = r.Instance.Columns
	default:
		return nil
	}
	if n <= 0 || n > 0xFFFF {
		return nil
	}
	return []byte{byte(n), byte(n >> 8)}
}

// parseLevel reads Query/Retrieve Level (0008,0052).
func parseLevel(s string) (catalog.Level, bool) {
	switch strings.TrimSpace(s) {
	case "PATIENT":
		return catalog.PatientLevel, true
	case "STUDY":
		return catalog.StudyLevel, true
	case "SERIES":
		return catalog.SeriesLevel, true
	case "IMAGE":
		return catalog.InstanceLevel, true
	}
	return 0, false
}

// uniqueKeys are the unique keys of each level (PS3.4 §C.6.1.1.1 ff.):
// Patient ID, Study Instance UID, Series Instance UID, SOP Instance UID.
var uniqueKeys = map[catalog.Level]tag{
	catalog.PatientLevel:  0x00100020,
	catalog.StudyLevel:    0x0020000D,
	catalog.SeriesLevel:   0x0020000E,
	catalog.InstanceLevel: 0x00080018,
}
