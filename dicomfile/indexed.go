package dicomfile

// Tags of indexed attributes handled specially (PS3.6 Table 6-1).
const (
	tagSpecificCharacterSet            Tag = 0x00080005
	tagIssuerOfAccessionNumberSequence Tag = 0x00080051
	tagLocalNamespaceEntityID          Tag = 0x00400031
	tagNumberOfFrames                  Tag = 0x00280008
	tagRows                            Tag = 0x00280010
	tagColumns                         Tag = 0x00280011
	tagBitsAllocated                   Tag = 0x00280100
)

// attr describes an indexed attribute: its VR (PS3.6), whether its value is
// text in the data set's character set (PS3.5 §6.1.2.3: SH, LO, UC, ST,
// LT, UT and PN), and the Header field it goes to (nil when set handles it).
type attr struct {
	vr    string
	text  bool
	field func(*Header) *string
}

var indexed = map[Tag]attr{
	tagSpecificCharacterSet:            {vr: "CS"},
	tagIssuerOfAccessionNumberSequence: {vr: "SQ"},
	tagNumberOfFrames:                  {vr: "IS"},
	tagRows:                            {vr: "US"},
	tagColumns:                         {vr: "US"},
	tagBitsAllocated:                   {vr: "US"},

	0x00100020: {"LO", true, func(h *Header) *string { return &h.PatientID }},
	0x00100021: {"LO", true, func(h *Header) *string { return &h.IssuerOfPatientID }},
	0x00100010: {"PN", true, func(h *Header) *string { return &h.PatientName }},
	0x00100030: {"DA", false, func(h *Header) *string { return &h.PatientBirthDate }},
	0x00100040: {"CS", false, func(h *Header) *string { return &h.PatientSex }},

	0x0020000D: {"UI", false, func(h *Header) *string { return &h.StudyInstanceUID }},
	0x00080020: {"DA", false, func(h *Header) *string { return &h.StudyDate }},
	0x00080030: {"TM", false, func(h *Header) *string { return &h.StudyTime }},
	0x00080050: {"SH", true, func(h *Header) *string { return &h.AccessionNumber }},
	0x00080090: {"PN", true, func(h *Header) *string { return &h.ReferringPhysicianName }},
	0x00081030: {"LO", true, func(h *Header) *string { return &h.StudyDescription }},
	0x00200010: {"SH", true, func(h *Header) *string { return &h.StudyID }},

	0x0020000E: {"UI", false, func(h *Header) *string { return &h.SeriesInstanceUID }},
	0x00080060: {"CS", false, func(h *Header) *string { return &h.Modality }},
	0x00200011: {"IS", false, func(h *Header) *string { return &h.SeriesNumber }},
	0x0008103E: {"LO", true, func(h *Header) *string { return &h.SeriesDescription }},
	0x00180015: {"CS", false, func(h *Header) *string { return &h.BodyPartExamined }},
	0x00200060: {"CS", false, func(h *Header) *string { return &h.Laterality }},
	0x00080021: {"DA", false, func(h *Header) *string { return &h.SeriesDate }},
	0x00080031: {"TM", false, func(h *Header) *string { return &h.SeriesTime }},
	0x00400244: {"DA", false, func(h *Header) *string { return &h.PerformedProcedureStepStartDate }},
	0x00400245: {"TM", false, func(h *Header) *string { return &h.PerformedProcedureStepStartTime }},
	0x00081010: {"SH", true, func(h *Header) *string { return &h.StationName }},
	0x00080080: {"LO", true, func(h *Header) *string { return &h.InstitutionName }},
	0x00080070: {"LO", true, func(h *Header) *string { return &h.Manufacturer }},

	0x00080016: {"UI", false, func(h *Header) *string { return &h.SOPClassUID }},
	0x00080018: {"UI", false, func(h *Header) *string { return &h.SOPInstanceUID }},
	0x00200013: {"IS", false, func(h *Header) *string { return &h.InstanceNumber }},
	0x00080023: {"DA", false, func(h *Header) *string { return &h.ContentDate }},
	0x00080033: {"TM", false, func(h *Header) *string { return &h.ContentTime }},
}
