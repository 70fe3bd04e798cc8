package worklist

import (
	"bytes"
	"context"
	"fmt"

	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
)

// ProposedContexts are the presentation contexts an MWL and MPPS SCU
// proposes.
func ProposedContexts() []dicomnet.ProposedContext {
	ts := []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian}
	return []dicomnet.ProposedContext{
		{AbstractSyntax: ModalityWorklistFind, TransferSyntaxes: ts},
		{AbstractSyntax: ModalityPerformedProcedureStep, TransferSyntaxes: ts},
	}
}

// Query holds the matching keys of an MWL query as a modality sends them
// (IHE RAD-5); empty fields are universal.
type Query struct {
	ScheduledStationAETitle string
	Modality                string
	// ScheduledProcedureStepStartDate and Time are single values or
	// ranges ("20240501-20240502", "-1200").
	ScheduledProcedureStepStartDate string
	ScheduledProcedureStepStartTime string
	ScheduledProcedureStepStatus    string
	PatientName                     string // wildcards * and ? allowed
	PatientID                       string
	AccessionNumber                 string
	RequestedProcedureID            string
}

// DataSet is the identifier: the matching keys with their values and the
// return keys of IHE RAD TF-2 Table 4.5-3 empty.
func (q Query) DataSet() dicomjson.DataSet {
	str := func(d dicomjson.DataSet, t dicomjson.Tag, vr, v string) {
		if v == "" {
			d[t] = &dicomjson.Attribute{VR: vr}
			return
		}
		d[t] = &dicomjson.Attribute{VR: vr, Strings: []string{v}}
	}
	ds := dicomjson.DataSet{}
	if q.PatientName == "" {
		ds[tagPatientName] = &dicomjson.Attribute{VR: "PN"}
	} else {
		ds[tagPatientName] = &dicomjson.Attribute{VR: "PN", PersonNames: []dicomjson.PersonName{dicomjson.ParsePersonName(q.PatientName)}}
	}
	str(ds, tagPatientID, "LO", q.PatientID)
	str(ds, tagAccessionNumber, "SH", q.AccessionNumber)
	str(ds, tagRequestedProcedureID, "SH", q.RequestedProcedureID)
	for _, k := range []struct {
		t  dicomjson.Tag
		vr string
	}{
		{tagIssuerOfPatientID, "LO"}, {tagPatientBirthDate, "DA"}, {tagPatientSex, "CS"}, {tagMedicalAlerts, "LO"}, {tagAllergies, "LO"},
		{tagAdmissionID, "LO"}, {tagCurrentPatientLocation, "LO"}, {tagReferringPhysicianName, "PN"}, {tagRequestingPhysician, "PN"},
		{tagRequestedProcedureDescription, "LO"}, {tagRequestedProcedurePriority, "SH"}, {tagStudyInstanceUID, "UI"},
		{tagReasonForTheRequestedProcedure, "LO"}, {tagPlacerOrderNumberImagingServiceRequest, "LO"},
		{tagFillerOrderNumberImagingServiceRequest, "LO"},
	} {
		str(ds, k.t, k.vr, "")
	}
	ds[tagRequestedProcedureCodeSequence] = &dicomjson.Attribute{VR: "SQ"}
	ds[tagReferencedStudySequence] = &dicomjson.Attribute{VR: "SQ"}
	ds[tagReferencedPatientSequence] = &dicomjson.Attribute{VR: "SQ"}
	sps := dicomjson.DataSet{}
	str(sps, tagScheduledStationAETitle, "AE", q.ScheduledStationAETitle)
	str(sps, tagModality, "CS", q.Modality)
	str(sps, tagScheduledProcedureStepStartDate, "DA", q.ScheduledProcedureStepStartDate)
	str(sps, tagScheduledProcedureStepStartTime, "TM", q.ScheduledProcedureStepStartTime)
	str(sps, tagScheduledProcedureStepStatus, "CS", q.ScheduledProcedureStepStatus)
	for _, k := range []struct {
		t  dicomjson.Tag
		vr string
	}{
		{tagScheduledPerformingPhysicianName, "PN"}, {tagScheduledProcedureStepDescription, "LO"}, {tagScheduledProcedureStepID, "SH"},
		{tagScheduledStationName, "SH"}, {tagScheduledProcedureStepLocation, "SH"},
	} {
		str(sps, k.t, k.vr, "")
	}
	sps[tagScheduledProtocolCodeSequence] = &dicomjson.Attribute{VR: "SQ"}
	ds[tagScheduledProcedureStepSequence] = &dicomjson.Attribute{VR: "SQ", Items: []dicomjson.DataSet{sps}}
	return ds
}

func context4(as *dicomnet.Association, sopClass string) (dicomnet.PresentationContext, error) {
	for _, ts := range []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian} {
		if pc, ok := as.PresentationContext(sopClass, ts); ok {
			return pc, nil
		}
	}
	return dicomnet.PresentationContext{}, fmt.Errorf("%w: %s", dicomnet.ErrNoPresentationContext, sopClass)
}

// Find performs an MWL C-FIND (PS3.4 §K.4.1.2) and returns the
// identifiers of the Pending responses. A final status other than Success
// is a *dicomnet.StatusError.
func Find(ctx context.Context, as *dicomnet.Association, q dicomjson.DataSet) ([]dicomjson.DataSet, error) {
	pc, err := context4(as, ModalityWorklistFind)
	if err != nil {
		return nil, err
	}
	b, err := EncodeDataSet(q, pc.TransferSyntax)
	if err != nil {
		return nil, err
	}
	rsps, err := as.Request(ctx, pc, &dicomnet.Command{
		CommandField:        dicomnet.CFindRQ,
		AffectedSOPClassUID: ModalityWorklistFind,
		Priority:            dicomnet.PriorityMedium,
		CommandDataSetType:  dicomnet.DataSetPresent,
	}, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out []dicomjson.DataSet
	for {
		rsp, err := rsps.Next(ctx)
		if err != nil {
			return out, err
		}
		if !rsp.Final() {
			if rsp.Data != nil {
				ds, err := DecodeDataSet(rsp.Data, pc.TransferSyntax)
				if err != nil {
					return out, err
				}
				out = append(out, ds)
			}
			continue
		}
		if rsp.Command.Status != dicomnet.StatusSuccess {
			return out, &dicomnet.StatusError{Status: rsp.Command.Status, ErrorComment: rsp.Command.ErrorComment}
		}
		return out, nil
	}
}

// CreateMPPS performs N-CREATE of a Modality Performed Procedure Step
// (PS3.4 §F.7.2.1); uid "" lets the SCP assign it. It returns the SOP
// Instance UID.
func CreateMPPS(ctx context.Context, as *dicomnet.Association, uid string, ds dicomjson.DataSet) (string, error) {
	rsp, err := nRequest(ctx, as, &dicomnet.Command{
		CommandField:           dicomnet.NCreateRQ,
		AffectedSOPClassUID:    ModalityPerformedProcedureStep,
		AffectedSOPInstanceUID: uid,
		CommandDataSetType:     dicomnet.DataSetPresent,
	}, ds)
	if err != nil {
		return uid, err
	}
	if rsp.AffectedSOPInstanceUID != "" {
		uid = rsp.AffectedSOPInstanceUID
	}
	return uid, nil
}

// SetMPPS performs N-SET on a Modality Performed Procedure Step
// (PS3.4 §F.7.2.2) with the modification list ds.
func SetMPPS(ctx context.Context, as *dicomnet.Association, uid string, ds dicomjson.DataSet) error {
	_, err := nRequest(ctx, as, &dicomnet.Command{
		CommandField:            dicomnet.NSetRQ,
		RequestedSOPClassUID:    ModalityPerformedProcedureStep,
		RequestedSOPInstanceUID: uid,
		CommandDataSetType:      dicomnet.DataSetPresent,
	}, ds)
	return err
}

func nRequest(ctx context.Context, as *dicomnet.Association, cmd *dicomnet.Command, ds dicomjson.DataSet) (*dicomnet.Command, error) {
	pc, err := context4(as, ModalityPerformedProcedureStep)
	if err != nil {
		return nil, err
	}
	b, err := EncodeDataSet(ds, pc.TransferSyntax)
	if err != nil {
		return nil, err
	}
	rsps, err := as.Request(ctx, pc, cmd, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	for {
		rsp, err := rsps.Next(ctx)
		if err != nil {
			return nil, err
		}
		if !rsp.Final() {
			continue
		}
		if rsp.Command.Status != dicomnet.StatusSuccess {
			return rsp.Command, &dicomnet.StatusError{Status: rsp.Command.Status, ErrorComment: rsp.Command.ErrorComment}
		}
		return rsp.Command, nil
	}
}

// MPPSInProgress is the N-CREATE attribute list of a step that performs
// the given worklist item (PS3.4 Table F.7.2-1 and IHE RAD-6): patient,
// Scheduled Step Attributes Sequence copied from the item, status IN
// PROGRESS.
func MPPSInProgress(it dicomjson.DataSet, performedStationAE, ppsID, startDate, startTime string) dicomjson.DataSet {
	str := func(d dicomjson.DataSet, t dicomjson.Tag, vr, v string) {
		if v == "" {
			d[t] = &dicomjson.Attribute{VR: vr}
			return
		}
		d[t] = &dicomjson.Attribute{VR: vr, Strings: []string{v}}
	}
	get := func(d dicomjson.DataSet, t dicomjson.Tag) string {
		if d == nil {
			return ""
		}
		return d.String(t)
	}
	var sps dicomjson.DataSet
	if a := it[tagScheduledProcedureStepSequence]; a != nil && len(a.Items) > 0 {
		sps = a.Items[0]
	}
	ssa := dicomjson.DataSet{}
	str(ssa, tagStudyInstanceUID, "UI", get(it, tagStudyInstanceUID))
	ssa[tagReferencedStudySequence] = &dicomjson.Attribute{VR: "SQ"}
	str(ssa, tagAccessionNumber, "SH", get(it, tagAccessionNumber))
	str(ssa, tagRequestedProcedureID, "SH", get(it, tagRequestedProcedureID))
	str(ssa, tagRequestedProcedureDescription, "LO", get(it, tagRequestedProcedureDescription))
	str(ssa, tagScheduledProcedureStepID, "SH", get(sps, tagScheduledProcedureStepID))
	str(ssa, tagScheduledProcedureStepDescription, "LO", get(sps, tagScheduledProcedureStepDescription))
	str(ssa, tagPlacerOrderNumberImagingServiceRequest, "LO", get(it, tagPlacerOrderNumberImagingServiceRequest))
	str(ssa, tagFillerOrderNumberImagingServiceRequest, "LO", get(it, tagFillerOrderNumberImagingServiceRequest))
	ds := dicomjson.DataSet{}
	ds[tagScheduledStepAttributesSequence] = &dicomjson.Attribute{VR: "SQ", Items: []dicomjson.DataSet{ssa}}
	if pn := it[tagPatientName]; pn != nil {
		ds[tagPatientName] = pn
	} else {
		ds[tagPatientName] = &dicomjson.Attribute{VR: "PN"}
	}
	str(ds, tagPatientID, "LO", get(it, tagPatientID))
	str(ds, tagPatientBirthDate, "DA", get(it, tagPatientBirthDate))
	str(ds, tagPatientSex, "CS", get(it, tagPatientSex))
	ds[tagReferencedPatientSequence] = &dicomjson.Attribute{VR: "SQ"}
	str(ds, tagPerformedProcedureStepID, "SH", ppsID)
	str(ds, tagPerformedStationAETitle, "AE", performedStationAE)
	str(ds, tagPerformedProcedureStepStartDate, "DA", startDate)
	str(ds, tagPerformedProcedureStepStartTime, "TM", startTime)
	str(ds, tagPerformedProcedureStepStatus, "CS", PPSInProgress)
	str(ds, tagModality, "CS", get(sps, tagModality))
	str(ds, tagStudyID, "SH", "")
	str(ds, tagPerformedProcedureStepEndDate, "DA", "")
	str(ds, tagPerformedProcedureStepEndTime, "TM", "")
	ds[tagPerformedSeriesSequence] = &dicomjson.Attribute{VR: "SQ"}
	return ds
}

// MPPSFinal is the N-SET modification list that ends a step: status
// COMPLETED or DISCONTINUED, end date and time, and the series performed
// (Performed Series Sequence, one item per series UID).
func MPPSFinal(status, endDate, endTime string, seriesUIDs ...string) dicomjson.DataSet {
	ds := dicomjson.DataSet{}
	ds[tagPerformedProcedureStepStatus] = &dicomjson.Attribute{VR: "CS", Strings: []string{status}}
	ds[tagPerformedProcedureStepEndDate] = &dicomjson.Attribute{VR: "DA", Strings: []string{endDate}}
	ds[tagPerformedProcedureStepEndTime] = &dicomjson.Attribute{VR: "TM", Strings: []string{endTime}}
	var items []dicomjson.DataSet
	for _, u := range seriesUIDs {
		items = append(items, dicomjson.DataSet{
			tagSeriesInstanceUID:       {VR: "UI", Strings: []string{u}},
			tagReferencedImageSequence: {VR: "SQ"},
			dicomjson.Tag(0x00400220):  {VR: "SQ"}, // Referenced Non-Image Composite SOP Instance Sequence
			tagSeriesDescription:       {VR: "LO"},
			dicomjson.Tag(0x00081050):  {VR: "PN"}, // Performing Physician's Name
			dicomjson.Tag(0x00181030):  {VR: "LO"}, // Protocol Name
			dicomjson.Tag(0x00080054):  {VR: "AE"}, // Retrieve AE Title
		})
	}
	ds[tagPerformedSeriesSequence] = &dicomjson.Attribute{VR: "SQ", Items: items}
	return ds
}
