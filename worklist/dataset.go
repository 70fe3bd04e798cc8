package worklist

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
)

// The worklist reuses the hub's data set codec: dicomfile's parser and
// dicomjson's model read identifiers and MPPS attribute lists, dicomjson
// writes Explicit VR Little Endian, and implicitLE below re-heads that
// encoding for Implicit VR Little Endian, which every SCP must accept
// (PS3.5 §10.1).

// Attribute tags used here (PS3.6).
var (
	tagSpecificCharacterSet                   = dicomfile.NewTag(0x0008, 0x0005)
	tagAccessionNumber                        = dicomfile.NewTag(0x0008, 0x0050)
	tagModality                               = dicomfile.NewTag(0x0008, 0x0060)
	tagReferringPhysicianName                 = dicomfile.NewTag(0x0008, 0x0090)
	tagCodeValue                              = dicomfile.NewTag(0x0008, 0x0100)
	tagCodingSchemeDesignator                 = dicomfile.NewTag(0x0008, 0x0102)
	tagCodeMeaning                            = dicomfile.NewTag(0x0008, 0x0104)
	tagReferencedStudySequence                = dicomfile.NewTag(0x0008, 0x1110)
	tagReferencedPatientSequence              = dicomfile.NewTag(0x0008, 0x1120)
	tagReferencedSOPClassUID                  = dicomfile.NewTag(0x0008, 0x1150)
	tagReferencedSOPInstanceUID               = dicomfile.NewTag(0x0008, 0x1155)
	tagPatientName                            = dicomfile.NewTag(0x0010, 0x0010)
	tagPatientID                              = dicomfile.NewTag(0x0010, 0x0020)
	tagIssuerOfPatientID                      = dicomfile.NewTag(0x0010, 0x0021)
	tagPatientBirthDate                       = dicomfile.NewTag(0x0010, 0x0030)
	tagPatientSex                             = dicomfile.NewTag(0x0010, 0x0040)
	tagMedicalAlerts                          = dicomfile.NewTag(0x0010, 0x2000)
	tagAllergies                              = dicomfile.NewTag(0x0010, 0x2110)
	tagStudyInstanceUID                       = dicomfile.NewTag(0x0020, 0x000D)
	tagSeriesInstanceUID                      = dicomfile.NewTag(0x0020, 0x000E)
	tagStudyID                                = dicomfile.NewTag(0x0020, 0x0010)
	tagRequestingPhysician                    = dicomfile.NewTag(0x0032, 0x1032)
	tagRequestedProcedureDescription          = dicomfile.NewTag(0x0032, 0x1060)
	tagRequestedProcedureCodeSequence         = dicomfile.NewTag(0x0032, 0x1064)
	tagAdmissionID                            = dicomfile.NewTag(0x0038, 0x0010)
	tagCurrentPatientLocation                 = dicomfile.NewTag(0x0038, 0x0300)
	tagScheduledStationAETitle                = dicomfile.NewTag(0x0040, 0x0001)
	tagScheduledProcedureStepStartDate        = dicomfile.NewTag(0x0040, 0x0002)
	tagScheduledProcedureStepStartTime        = dicomfile.NewTag(0x0040, 0x0003)
	tagScheduledPerformingPhysicianName       = dicomfile.NewTag(0x0040, 0x0006)
	tagScheduledProcedureStepDescription      = dicomfile.NewTag(0x0040, 0x0007)
	tagScheduledProtocolCodeSequence          = dicomfile.NewTag(0x0040, 0x0008)
	tagScheduledProcedureStepID               = dicomfile.NewTag(0x0040, 0x0009)
	tagScheduledStationName                   = dicomfile.NewTag(0x0040, 0x0010)
	tagScheduledProcedureStepLocation         = dicomfile.NewTag(0x0040, 0x0011)
	tagScheduledProcedureStepStatus           = dicomfile.NewTag(0x0040, 0x0020)
	tagScheduledProcedureStepSequence         = dicomfile.NewTag(0x0040, 0x0100)
	tagPerformedStationAETitle                = dicomfile.NewTag(0x0040, 0x0241)
	tagPerformedProcedureStepStartDate        = dicomfile.NewTag(0x0040, 0x0244)
	tagPerformedProcedureStepStartTime        = dicomfile.NewTag(0x0040, 0x0245)
	tagPerformedProcedureStepEndDate          = dicomfile.NewTag(0x0040, 0x0250)
	tagPerformedProcedureStepEndTime          = dicomfile.NewTag(0x0040, 0x0251)
	tagPerformedProcedureStepStatus           = dicomfile.NewTag(0x0040, 0x0252)
	tagPerformedProcedureStepID               = dicomfile.NewTag(0x0040, 0x0253)
	tagScheduledStepAttributesSequence        = dicomfile.NewTag(0x0040, 0x0270)
	tagPerformedSeriesSequence                = dicomfile.NewTag(0x0040, 0x0340)
	tagRequestedProcedureID                   = dicomfile.NewTag(0x0040, 0x1001)
	tagReasonForTheRequestedProcedure         = dicomfile.NewTag(0x0040, 0x1002)
	tagRequestedProcedurePriority             = dicomfile.NewTag(0x0040, 0x1003)
	tagPlacerOrderNumberImagingServiceRequest = dicomfile.NewTag(0x0040, 0x2016)
	tagFillerOrderNumberImagingServiceRequest = dicomfile.NewTag(0x0040, 0x2017)
)

// maxDataSet bounds an identifier or MPPS attribute list read into
// memory. A Performed Series Sequence listing thousands of images stays
// well below it.
const maxDataSet = 8 << 20

// ErrDataSet wraps data sets that cannot be read.
var ErrDataSet = fmt.Errorf("%w: data set", ErrInvalid)

// DecodeDataSet reads a DIMSE data set (identifier, attribute list)
// encoded in transferSyntaxUID.
func DecodeDataSet(r io.Reader, transferSyntaxUID string) (dicomjson.DataSet, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDataSet+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataSet, err)
	}
	if len(b) > maxDataSet {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrDataSet, maxDataSet)
	}
	h, err := dicomfile.ParseHeaderWithOptions(bytes.NewReader(b), transferSyntaxUID, dicomfile.ParseOptions{
		KeepElements: true, BulkDataThreshold: maxDataSet, MaxKeptBytes: 2 * maxDataSet,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataSet, err)
	}
	ds, err := dicomjson.FromElements(h.Elements, dicomjson.DecodeOptions{
		TransferSyntaxUID: transferSyntaxUID, BulkDataThreshold: maxDataSet, ReaderAt: bytes.NewReader(b),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDataSet, err)
	}
	return ds, nil
}

// EncodeDataSet encodes ds in Explicit or Implicit VR Little Endian.
func EncodeDataSet(ds dicomjson.DataSet, transferSyntaxUID string) ([]byte, error) {
	b, err := dicomjson.AppendExplicitLE(nil, ds)
	if err != nil {
		return nil, err
	}
	switch transferSyntaxUID {
	case dicomnet.ExplicitVRLittleEndian:
		return b, nil
	case dicomnet.ImplicitVRLittleEndian:
		return implicitLE(b)
	}
	return nil, fmt.Errorf("%w: cannot encode in transfer syntax %s", ErrInvalid, transferSyntaxUID)
}

// longVR reports VRs with the 4-byte length form in Explicit VR (PS3.5
// §7.1.2 Table 7.1-1).
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// implicitLE re-heads an Explicit VR Little Endian data set as Implicit
// VR Little Endian (PS3.5 §7.1.3): the values and item structure are the
// same; each element header becomes tag and 32-bit length.
func implicitLE(b []byte) ([]byte, error) {
	out := make([]byte, 0, len(b)+len(b)/8)
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: truncated element", ErrDataSet)
		}
		group := binary.LittleEndian.Uint16(b)
		if group == 0xFFFE {
			// Item and delimitation items have the same form in both.
			out = append(out, b[:8]...)
			b = b[8:]
			continue
		}
		vr := string(b[4:6])
		var n uint32
		var hdr int
		if longVR(vr) {
			if len(b) < 12 {
				return nil, fmt.Errorf("%w: truncated element", ErrDataSet)
			}
			n, hdr = binary.LittleEndian.Uint32(b[8:]), 12
		} else {
			n, hdr = uint32(binary.LittleEndian.Uint16(b[6:])), 8
		}
		out = append(out, b[:4]...)
		out = binary.LittleEndian.AppendUint32(out, n)
		b = b[hdr:]
		if vr == "SQ" || n == 0xFFFFFFFF {
			continue // the items follow as elements of their own
		}
		if uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("%w: value exceeds data set", ErrDataSet)
		}
		out = append(out, b[:n]...)
		b = b[n:]
	}
	return out, nil
}
