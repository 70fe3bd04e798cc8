package dicomweb

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/workflow/coerce"
)

// retrieve serves WADO-RS Retrieve Study, Series and Instance (PS3.18
// §10.4) as multipart/related; type="application/dicom", each part a
// Part 10 file streamed from the blob store.
func (s *Service) retrieve(w http.ResponseWriter, r *http.Request) {
	study, series, instance, err := pathUIDs(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list, err := s.instances(r.Context(), study, series, instance)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var syntaxes []string
	for _, in := range list {
		syntaxes = append(syntaxes, in.TransferSyntaxUID)
	}
	mode, want, ok := negotiateRetrieve(r, syntaxes, instance != "")
	if !ok {
		s.fail(w, r, errorf(http.StatusNotAcceptable, "instances are available as multipart/related; type=\"application/dicom\" in their stored transfer syntax or, from Implicit VR Little Endian, in Explicit VR Little Endian"))
		return
	}
	// Reconciled values of the study (IHE PIR), served in place of the
	// stored ones.
	cv, _, err := coerce.LookupCatalog(r.Context(), s.rt.Catalog, study)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if mode == singleDICOM {
		in := list[0]
		b, err := s.rt.Blobs.Open(r.Context(), in.BlobKey)
		if err != nil {
			s.fail(w, r, fmt.Errorf("open %s: %w", in.BlobKey, err))
			return
		}
		defer b.Close()
		ts := targetSyntax(in.TransferSyntaxUID, want)
		w.Header().Set("Content-Type", MediaTypeDICOM+"; transfer-syntax="+ts)
		if ts == in.TransferSyntaxUID && (cv.Zero() || !coerce.Supported(ts)) {
			w.Header().Set("Content-Length", strconv.FormatInt(b.Size(), 10))
		}
		if err := writeInstance(w, b, ts, cv); err != nil {
			s.log.Error("retrieve: instance not sent whole", "key", in.BlobKey, "err", err)
		}
		return
	}
	mw := newMultipart(w, MediaTypeDICOM)
	base := s.base(r)
	for _, in := range list {
		b, err := s.rt.Blobs.Open(r.Context(), in.BlobKey)
		if err != nil {
			// Headers are out; a missing file ends the response early so
			// that the client sees a truncated multipart body.
			s.log.Error("retrieve: instance file missing", "key", in.BlobKey, "err", err)
			return
		}
		ts := targetSyntax(in.TransferSyntaxUID, want)
		size := b.Size()
		if ts != in.TransferSyntaxUID || !cv.Zero() && coerce.Supported(in.TransferSyntaxUID) {
			size = -1
		}
		pw, err := mw.part(MediaTypeDICOM+"; transfer-syntax="+ts, instanceURL(base, in), size)
		if err == nil {
			err = writeInstance(pw, b, ts, cv)
		}
		b.Close()
		if err != nil {
			s.log.Error("retrieve: instance not sent whole", "key", in.BlobKey, "err", err)
			return
		}
	}
	mw.close()
}

// multipartWriter writes a multipart/related response (RFC 2387) whose
// parts are all of one type.
type multipartWriter struct {
	w       http.ResponseWriter
	mw      *multipart.Writer
	started bool
	typ     string
}

func newMultipart(w http.ResponseWriter, partType string) *multipartWriter {
	mw := multipart.NewWriter(w)
	var b [16]byte
	rand.Read(b[:])
	boundary := "dicomweb-" + hex.EncodeToString(b[:])
	mw.SetBoundary(boundary)
	return &multipartWriter{w: w, mw: mw, typ: partType}
}

func (m *multipartWriter) start() {
	if m.started {
		return
	}
	m.started = true
	m.w.Header().Set("Content-Type", fmt.Sprintf(`%s; type="%s"; boundary=%s`, MediaTypeMultipart, m.typ, m.mw.Boundary()))
	m.w.WriteHeader(http.StatusOK)
}

func (m *multipartWriter) part(contentType, location string, size int64) (io.Writer, error) {
	m.start()
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", contentType)
	if location != "" {
		h.Set("Content-Location", location)
	}
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	return m.mw.CreatePart(h)
}

func (m *multipartWriter) close() {
	m.start()
	m.mw.Close()
}

// opened is an instance file with its header parsed.
type opened struct {
	blob   blob.Reader
	meta   dicomfile.FileMeta
	header *dicomfile.Header
	// dataSet reads the data set: offset 0 is its first byte.
	dataSet *io.SectionReader
	// deflated: the data set is compressed in the file (PS3.5 §A.5), so
	// element offsets do not address the file; values cannot be cut out.
	deflated bool
}

var errDeflated = errorf(http.StatusNotImplemented, "values of a Deflated Explicit VR Little Endian instance cannot be retrieved separately")

// open opens an instance file and parses its header, keeping the
// top-level elements before the pixel data.
// openRequested opens the instance the request's path names (frames,
// bulk data); on failure it has answered the request and ok is false.
func (s *Service) openRequested(w http.ResponseWriter, r *http.Request) (o *opened, ok bool) {
	study, series, instance, err := pathUIDs(r)
	if err == nil {
		var list []catalog.Instance
		if list, err = s.instances(r.Context(), study, series, instance); err == nil {
			o, err = s.open(r.Context(), list[0])
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return o, true
}

func (s *Service) open(ctx context.Context, in catalog.Instance) (*opened, error) {
	b, err := s.rt.Blobs.Open(ctx, in.BlobKey)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", in.BlobKey, err)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(b, 0, b.Size()), 8<<10)
	meta, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("read %s: %w", in.BlobKey, err)
	}
	h, err := dicomfile.ParseHeaderWithOptions(br, meta.TransferSyntaxUID, dicomfile.ParseOptions{KeepElements: true, BulkDataThreshold: 16 << 10})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("parse %s: %w", in.BlobKey, err)
	}
	off := meta.DataSetOffset()
	ts, _ := dicomfile.LookupTransferSyntax(meta.TransferSyntaxUID)
	return &opened{blob: b, meta: meta, header: h, dataSet: io.NewSectionReader(b, off, b.Size()-off), deflated: ts.Deflated}, nil
}

func (o *opened) Close() error { return o.blob.Close() }

// dataSet decodes the header of an opened instance into DICOM JSON, bulk
// values (binary VRs, long values, pixel data) as BulkDataURIs under
// instance's URL (PS3.18 §8.6.2, §F.2.6) when bulkBase is not empty.
func (o *opened) json(bulkBase string) (dicomjson.DataSet, error) {
	opts := dicomjson.DecodeOptions{TransferSyntaxUID: o.meta.TransferSyntaxUID}
	if bulkBase != "" {
		opts.BulkDataURI = func(path string) string { return bulkBase + "/bulkdata/" + path }
	}
	if ts, _ := dicomfile.LookupTransferSyntax(o.meta.TransferSyntaxUID); !ts.Deflated {
		opts.ReaderAt = o.dataSet
	}
	ds, err := dicomjson.FromElements(o.header.Elements, opts)
	if err != nil {
		return nil, err
	}
	if pd := o.header.PixelData; pd.Tag != 0 && bulkBase != "" {
		vr := pd.VR
		if pd.Length == dicomfile.UndefinedLength {
			vr = "OB" // encapsulated (PS3.5 §A.4)
		}
		ds[pd.Tag] = &dicomjson.Attribute{VR: vr, BulkDataURI: bulkBase + "/bulkdata/" + dicomjson.FormatTag(pd.Tag)}
	}
	return ds, nil
}

// metadata serves WADO-RS Retrieve Metadata (PS3.18 §10.4.1.1.2): a JSON
// array of the instances' headers. Headers are read concurrently (only
// up to the pixel data) and the array is streamed in instance order.
func (s *Service) metadata(w http.ResponseWriter, r *http.Request) {
	study, series, instance, err := pathUIDs(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctype, ok := negotiateJSON(r)
	if !ok {
		s.fail(w, r, errorf(http.StatusNotAcceptable, "metadata is available as application/dicom+json"))
		return
	}
	list, err := s.instances(r.Context(), study, series, instance)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	base := s.base(r)
	cv, _, err := coerce.LookupCatalog(r.Context(), s.rt.Catalog, study)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())

	type slot struct {
		done chan struct{}
		b    []byte
		err  error
	}
	slots := make([]slot, len(list))
	for i := range slots {
		slots[i].done = make(chan struct{})
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(s.opts.MetadataConcurrency, len(list)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				slots[i].b, slots[i].err = s.instanceJSON(ctx, list[i], base, cv)
				close(slots[i].done)
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range list {
			select {
			case next <- i:
			case <-ctx.Done():
				for j := i; j < len(list); j++ {
					slots[j].err = ctx.Err()
					close(slots[j].done)
				}
				return
			}
		}
	}()
	// On an early return the workers stop before the handler does.
	defer func() { cancel(); wg.Wait() }()

	w.Header().Set("Content-Type", ctype)
	bw := bufio.NewWriterSize(w, 64<<10)
	for i := range slots {
		<-slots[i].done
		if slots[i].err != nil {
			if i == 0 {
				s.fail(w, r, slots[i].err)
				return
			}
			// The array is already going out: end it short and log.
			s.log.Error("metadata: instance header unreadable", "key", list[i].BlobKey, "err", slots[i].err)
			bw.Flush()
			return
		}
		if i == 0 {
			bw.WriteByte('[')
		} else {
			bw.WriteByte(',')
		}
		bw.Write(slots[i].b)
		slots[i].b = nil // cached slices are shared: drop the reference only
	}
	if len(slots) == 0 {
		bw.WriteByte('[')
	}
	bw.WriteByte(']')
	bw.Flush()
}

func (s *Service) instanceJSON(ctx context.Context, in catalog.Instance, base string, cv coerce.Values) ([]byte, error) {
	// The reconciled values are part of the key: a study reconciled
	// again is rendered again.
	key := base + "\x00" + in.BlobKey + "\x00" + cv.Key()
	if b, ok := s.cache.get(key); ok {
		return b, nil
	}
	o, err := s.open(ctx, in)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	ds, err := o.json(instanceURL(base, in))
	if err != nil {
		return nil, err
	}
	coerce.Apply(ds, cv)
	b := ds.AppendJSON(make([]byte, 0, 4<<10))
	s.cache.put(key, b)
	return b, nil
}

// bulkdata serves the BulkDataURIs minted in metadata (PS3.18 §10.4.1.1.5)
// as multipart/related; type="application/octet-stream". Pixel data of an
// encapsulated syntax goes out frame by frame in its compressed type.
func (s *Service) bulkdata(w http.ResponseWriter, r *http.Request) {
	o, ok := s.openRequested(w, r)
	if !ok {
		return
	}
	defer o.Close()
	steps := strings.Split(r.PathValue("path"), "/")
	if len(steps)%2 == 0 {
		s.fail(w, r, errorf(http.StatusNotFound, "no such bulk data"))
		return
	}
	top, err := dicomjson.ParseTag(steps[0])
	if err != nil {
		s.fail(w, r, errorf(http.StatusNotFound, "no such bulk data"))
		return
	}
	ts := o.meta.TransferSyntaxUID
	if o.deflated {
		s.fail(w, r, errDeflated)
		return
	}
	if len(steps) == 1 && top == o.header.PixelData.Tag && top != 0 {
		if o.header.PixelData.Length == dicomfile.UndefinedLength {
			s.sendFrames(w, r, o, nil)
			return
		}
		if !negotiateParts(r, MediaTypeOctet, ts) {
			s.fail(w, r, errorf(http.StatusNotAcceptable, "bulk data is available as multipart/related; type=\"application/octet-stream\""))
			return
		}
		pd := o.header.PixelData
		mw := newMultipart(w, MediaTypeOctet)
		pw, err := mw.part(MediaTypeOctet+"; transfer-syntax="+ts, "", int64(pd.Length))
		if err == nil {
			io.Copy(pw, io.NewSectionReader(o.dataSet, pd.Offset, int64(pd.Length)))
		}
		mw.close()
		return
	}
	value, err := bulkValue(o, steps)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !negotiateParts(r, MediaTypeOctet, ts) {
		s.fail(w, r, errorf(http.StatusNotAcceptable, "bulk data is available as multipart/related; type=\"application/octet-stream\""))
		return
	}
	mw := newMultipart(w, MediaTypeOctet)
	if pw, err := mw.part(MediaTypeOctet, "", int64(len(value))); err == nil {
		pw.Write(value)
	}
	mw.close()
}

// bulkValue finds the value a bulk data path names: a top-level element or
// one inside sequence items ("00540016/0/00181072").
func bulkValue(o *opened, steps []string) ([]byte, error) {
	notFound := errorf(http.StatusNotFound, "no such bulk data")
	top, _ := dicomjson.ParseTag(steps[0])
	if len(steps) == 1 {
		for _, e := range o.header.Elements {
			if e.Tag != top {
				continue
			}
			if e.Value != nil {
				return e.Value, nil
			}
			if e.Length == dicomfile.UndefinedLength {
				return nil, notFound
			}
			b := make([]byte, e.Length)
			if _, err := o.dataSet.ReadAt(b, e.Offset); err != nil {
				return nil, fmt.Errorf("read bulk data: %w", err)
			}
			return b, nil
		}
		return nil, notFound
	}
	ds, err := o.json("")
	if err != nil {
		return nil, err
	}
	for i := 0; ; i += 2 {
		t, err := dicomjson.ParseTag(steps[i])
		if err != nil {
			return nil, notFound
		}
		a := ds[t]
		if a == nil {
			return nil, notFound
		}
		if i == len(steps)-1 {
			if a.InlineBinary != nil {
				return a.InlineBinary, nil
			}
			return []byte(strings.Join(a.Strings, `\`)), nil
		}
		n, err := strconv.Atoi(steps[i+1])
		if err != nil || n < 0 || n >= len(a.Items) {
			return nil, notFound
		}
		ds = a.Items[n]
	}
}

var errNoPixels = errors.New("instance has no pixel data")
