package catalog

import "time"

// Patient holds the Patient module attributes the catalog keeps
// (PS3.3 §C.7.1.1). A patient is identified by PatientID within
// IssuerOfPatientID; an empty PatientID identifies no one, and such
// instances get a patient of their own per study.
type Patient struct {
	PatientID         string // (0010,0020)
	IssuerOfPatientID string // (0010,0021)
	PatientName       string // (0010,0010), PN as received
	PatientBirthDate  string // (0010,0030), DA: YYYYMMDD
	PatientSex        string // (0010,0040): M, F, O or empty
}

// Study holds the General Study module attributes (PS3.3 §C.7.2.1) and the
// study-level counts C-FIND and QIDO-RS return (PS3.4 §C.3.4).
type Study struct {
	StudyInstanceUID        string // (0020,000D)
	StudyDate               string // (0008,0020), DA
	StudyTime               string // (0008,0030), TM
	AccessionNumber         string // (0008,0050)
	IssuerOfAccessionNumber string // (0008,0051) Local Namespace Entity ID
	ReferringPhysicianName  string // (0008,0090)
	StudyDescription        string // (0008,1030)
	StudyID                 string // (0020,0010)

	// Maintained by the catalog; ignored by StoreInstance.
	ModalitiesInStudy             []string  // (0008,0061), sorted, distinct
	NumberOfStudyRelatedSeries    int       // (0020,1206)
	NumberOfStudyRelatedInstances int       // (0020,1208)
	CreatedAt                     time.Time // first instance committed
	UpdatedAt                     time.Time // last change to the row
	LastReceived                  time.Time // last instance received
}

// Series holds the General Series module attributes (PS3.3 §C.7.3.1).
type Series struct {
	SeriesInstanceUID string // (0020,000E)
	Modality          string // (0008,0060)
	SeriesNumber      int    // (0020,0011); 0 when absent
	SeriesDescription string // (0008,103E)
	BodyPartExamined  string // (0018,0015)
	Laterality        string // (0020,0060)
	SeriesDate        string // (0008,0021), DA
	SeriesTime        string // (0008,0031), TM
	StationName       string // (0008,1010)
	InstitutionName   string // (0008,0080)

	// Maintained by the catalog; ignored by StoreInstance.
	NumberOfSeriesRelatedInstances int // (0020,1209)
}

// Instance is one stored SOP Instance and where its bytes are.
type Instance struct {
	SOPInstanceUID    string // (0008,0018)
	SOPClassUID       string // (0008,0016)
	InstanceNumber    int    // (0020,0013); 0 when absent
	TransferSyntaxUID string // (0002,0010) of the stored file
	NumberOfFrames    int    // (0028,0008); 0 when absent
	Rows              int    // (0028,0010); 0 for non-images
	Columns           int    // (0028,0011); 0 for non-images
	BlobKey           string // key of the Part 10 file in the blob store
	SizeBytes         int64
	CallingAE         string    // Calling AE Title of the association that sent it
	ReceivedAt        time.Time // zero means the time of StoreInstance

	// Set on reads.
	SeriesInstanceUID string
	StudyInstanceUID  string
}

// InstanceRecord is everything StoreInstance files for one received
// instance: the four levels of the information model (PS3.3 §A.1.2).
type InstanceRecord struct {
	Patient  Patient
	Study    Study
	Series   Series
	Instance Instance
}

// StudyRecord is a study with its patient, as GetStudy returns it.
type StudyRecord struct {
	Patient Patient
	Study   Study
}

// DuplicatePolicy says what StoreInstance does when the SOP Instance UID is
// already in the catalog (PS3.4 §B.4.1 leaves it to the SCP).
type DuplicatePolicy int

const (
	// KeepFirst keeps the stored instance; nothing changes and no outbox
	// rows are written. The caller deletes StoreResult.UnusedBlobKey (its
	// new file) and answers Success.
	KeepFirst DuplicatePolicy = iota
	// Replace points the existing row at the new blob (counts unchanged)
	// and writes the outbox rows. The caller deletes
	// StoreResult.UnusedBlobKey (the old file).
	Replace
	// Reject keeps the stored instance and returns ErrDuplicate with the
	// result filled in as for KeepFirst; ingest answers a failure status.
	Reject
)

func (p DuplicatePolicy) String() string {
	switch p {
	case KeepFirst:
		return "keep-first"
	case Replace:
		return "replace"
	case Reject:
		return "reject"
	}
	return "DuplicatePolicy(?)"
}

// StoreResult reports what StoreInstance did.
type StoreResult struct {
	// Duplicate is true when the SOP Instance UID was already stored.
	Duplicate bool
	// ExistingBlobKey is, for a duplicate, the blob key the instance had
	// before the call.
	ExistingBlobKey string
	// UnusedBlobKey is a blob no row references any more, which the
	// caller deletes: its own new file for KeepFirst and Reject, the old
	// file for Replace. It is empty when nothing is to be deleted, which
	// includes a duplicate received under the key already stored.
	UnusedBlobKey string
	// NewStudy and NewSeries report that this instance is the first of
	// its study or series.
	NewStudy, NewSeries bool
}

// OutboxMessage is an event waiting to be published. EventID becomes the
// Nats-Msg-Id so that JetStream discards a re-publish of the same event.
type OutboxMessage struct {
	ID        int64 // assigned by the catalog
	EventID   string
	Subject   string
	Payload   []byte
	CreatedAt time.Time // assigned by the catalog
}
