package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/ingest"
)

// Tags of the Store Instances response (PS3.18 §10.5.3, Table 10.5.3-1).
const (
	tagRetrieveURL              = 0x00081190
	tagFailedSOPSequence        = 0x00081198
	tagReferencedSOPSequence    = 0x00081199
	tagFailureReason            = 0x00081197
	tagReferencedSOPClassUID    = 0x00081150
	tagReferencedSOPInstanceUID = 0x00081155
)

// Failure reasons (PS3.18 §10.5.3, the C-STORE statuses of PS3.4 §B.2.3).
const (
	reasonProcessingFailure   = 0x0110
	reasonCannotUnderstand    = 0xC000
	reasonDataSetDoesNotMatch = 0xA900
	reasonOutOfResources      = 0xA700
	reasonDuplicate           = 0x0111
)

// maxVerifiedHeader bounds the bytes held in memory to check an
// instance's Study Instance UID before it is stored under a study URL.
const maxVerifiedHeader = 8 << 20

// partResult is the outcome of one part of a STOW-RS request.
type partResult struct {
	sopClassUID, sopInstanceUID, studyInstanceUID, seriesInstanceUID string
	failure                                                          uint16 // 0: stored
}

// store serves STOW-RS Store Instances (PS3.18 §10.5): a multipart/related
// body of Part 10 instances, each read as a stream and stored through the
// same Storer as C-STORE. The response lists what was stored and what
// failed: 200 all stored, 202 some failed, 409 none stored.
func (s *Service) store(w http.ResponseWriter, r *http.Request) {
	study, _, _, err := pathUIDs(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, ok := negotiateJSON(r); !ok {
		s.fail(w, r, errorf(http.StatusNotAcceptable, "the store response is application/dicom+json"))
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != MediaTypeMultipart || params["boundary"] == "" {
		s.fail(w, r, errorf(http.StatusUnsupportedMediaType, "the request body must be multipart/related; type=\"application/dicom\""))
		return
	}
	if t, ok := params["type"]; ok && t != MediaTypeDICOM {
		s.fail(w, r, errorf(http.StatusUnsupportedMediaType, "parts of type %q are not supported; send application/dicom", t))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.StoreTimeout)
	defer cancel()
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxStoreRequestBytes)
	results, err := s.storeParts(ctx, body, params["boundary"], study)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			err = errorf(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", mbe.Limit)
		}
		// What was stored before the body broke stays stored and is
		// reported; with nothing stored the request fails as a whole.
		if len(results) == 0 {
			s.fail(w, r, err)
			return
		}
		s.log.Warn("STOW-RS body ended early", "err", err)
		results = append(results, partResult{failure: reasonCannotUnderstand})
	}
	if len(results) == 0 {
		s.fail(w, r, errorf(http.StatusBadRequest, "the request has no parts"))
		return
	}
	s.writeStoreResponse(w, r, results)
}

// storeParts reads the multipart body part by part. An error is returned
// only when the body itself cannot be read further.
func (s *Service) storeParts(ctx context.Context, body io.Reader, boundary, study string) ([]partResult, error) {
	mr := multipart.NewReader(body, boundary)
	var results []partResult
	for {
		// NextRawPart: parts are binary; no quoted-printable decoding.
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return results, nil
		}
		if err != nil {
			return results, fmt.Errorf("multipart body: %w", err)
		}
		res := s.storePart(ctx, part, study)
		part.Close()
		results = append(results, res)
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
	}
}

// storePart stores one Part 10 instance read from a part.
func (s *Service) storePart(ctx context.Context, part *multipart.Part, study string) partResult {
	in, res := readPart(part.Header.Get("Content-Type"), part, study)
	if res.failure != 0 {
		s.log.Info("STOW-RS part refused before storing", "reason", fmt.Sprintf("0x%04X", res.failure))
		return res
	}
	sr, err := s.storer.Store(ctx, ingest.Request{
		SOPClassUID:       in.meta.MediaStorageSOPClassUID,
		SOPInstanceUID:    in.meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: in.meta.TransferSyntaxUID,
		CallingAE:         in.meta.SourceApplicationEntityTitle,
		Data:              in.data,
	})
	if err != nil {
		status, _ := ingest.Status(err)
		res.failure = failureReason(status)
		s.log.Warn("STOW-RS instance not stored", "status", fmt.Sprintf("0x%04X", status), "err", err)
		return res
	}
	res.studyInstanceUID, res.seriesInstanceUID = sr.Header.StudyInstanceUID, sr.Header.SeriesInstanceUID
	return res
}

// partInstance is a part read up to its data set.
type partInstance struct {
	meta dicomfile.FileMeta
	// data is the data set, streamed from the part.
	data io.Reader
}

// readPart checks a part's media type, reads its File Meta Information
// and, when the request names a study, the header of its data set to
// check the Study Instance UID (PS3.18 §10.5.1.2.2: an instance of
// another study fails). The bytes read for that check are replayed in
// front of data, so nothing is buffered beyond the header. A non-zero
// failure in the result means the part is not to be stored.
func readPart(contentType string, part io.Reader, study string) (partInstance, partResult) {
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != MediaTypeDICOM {
			return partInstance{}, partResult{failure: reasonCannotUnderstand}
		}
	}
	br := bufio.NewReaderSize(part, 64<<10)
	meta, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		return partInstance{}, partResult{failure: reasonCannotUnderstand}
	}
	res := partResult{sopClassUID: meta.MediaStorageSOPClassUID, sopInstanceUID: meta.MediaStorageSOPInstanceUID}
	in := partInstance{meta: meta, data: br}
	if study == "" {
		return in, res
	}
	rec := &boundedBuffer{max: maxVerifiedHeader}
	h, err := dicomfile.ParseHeader(bufio.NewReaderSize(io.TeeReader(br, rec), 32<<10), meta.TransferSyntaxUID)
	switch {
	case rec.over:
		res.failure = reasonOutOfResources
	case err != nil:
		res.failure = reasonCannotUnderstand
	case h.StudyInstanceUID != study:
		res.failure = reasonDataSetDoesNotMatch
	}
	in.data = io.MultiReader(bytes.NewReader(rec.Bytes()), br)
	return in, res
}

// failureReason maps a C-STORE status to the FailureReason of STOW-RS.
func failureReason(status uint16) uint16 {
	switch status {
	case dicomnet.StatusOutOfResources:
		return reasonOutOfResources
	case dicomnet.StatusDataSetDoesNotMatchSOPClass:
		return reasonDataSetDoesNotMatch
	case dicomnet.StatusCannotUnderstand:
		return reasonCannotUnderstand
	case dicomnet.StatusDuplicateSOPInstance:
		return reasonDuplicate
	}
	return reasonProcessingFailure
}

func (s *Service) writeStoreResponse(w http.ResponseWriter, r *http.Request, results []partResult) {
	base := s.base(r)
	resp := dicomjson.DataSet{}
	var stored, failed []dicomjson.DataSet
	studies := map[string]bool{}
	for _, res := range results {
		item := dicomjson.DataSet{}
		if res.sopClassUID != "" {
			item.SetStrings(tagReferencedSOPClassUID, "UI", res.sopClassUID)
		}
		if res.sopInstanceUID != "" {
			item.SetStrings(tagReferencedSOPInstanceUID, "UI", res.sopInstanceUID)
		}
		if res.failure != 0 {
			item.SetStrings(tagFailureReason, "US", itoa(int(res.failure)))
			failed = append(failed, item)
			continue
		}
		item.SetStrings(tagRetrieveURL, "UR", base+"/studies/"+res.studyInstanceUID+"/series/"+res.seriesInstanceUID+"/instances/"+res.sopInstanceUID)
		studies[res.studyInstanceUID] = true
		stored = append(stored, item)
	}
	if len(stored) > 0 {
		resp[tagReferencedSOPSequence] = &dicomjson.Attribute{VR: "SQ", Items: stored}
	}
	if len(failed) > 0 {
		resp[tagFailedSOPSequence] = &dicomjson.Attribute{VR: "SQ", Items: failed}
	}
	if r.PathValue("study") != "" {
		resp.SetStrings(tagRetrieveURL, "UR", base+"/studies/"+r.PathValue("study"))
	} else if len(studies) == 1 {
		for st := range studies {
			resp.SetStrings(tagRetrieveURL, "UR", base+"/studies/"+st)
		}
	}
	status := http.StatusOK
	switch {
	case len(stored) == 0:
		status = http.StatusConflict
	case len(failed) > 0:
		status = http.StatusAccepted
	}
	w.Header().Set("Content-Type", MediaTypeDICOMJSON)
	w.WriteHeader(status)
	w.Write(resp.AppendJSON(nil))
}

// boundedBuffer records up to max bytes and notes when more came.
type boundedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("dicomweb: header exceeds the verification bound")
	}
	return b.Buffer.Write(p)
}
