package dicomweb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
)

// imagePixel holds the Image Pixel module attributes (PS3.3 §C.7.6.3)
// needed to cut and render frames.
type imagePixel struct {
	rows, columns       int
	samplesPerPixel     int
	bitsAllocated       int
	bitsStored          int
	pixelRepresentation int // 1: signed
	planarConfiguration int
	photometric         string
	frames              int
	// Modality and VOI LUT (PS3.3 §C.11.1, §C.11.2).
	rescaleSlope, rescaleIntercept float64
	windowCenter, windowWidth      float64
	hasWindow                      bool
}

func (o *opened) imagePixel() (imagePixel, error) {
	ds, err := o.json("")
	if err != nil {
		return imagePixel{}, err
	}
	get := func(t dicomjson.Tag, def int) int {
		if n, ok := ds.Int(t); ok {
			return n
		}
		return def
	}
	p := imagePixel{
		rows:                get(0x00280010, 0),
		columns:             get(0x00280011, 0),
		samplesPerPixel:     get(0x00280002, 1),
		bitsAllocated:       get(0x00280100, 0),
		pixelRepresentation: get(0x00280103, 0),
		planarConfiguration: get(0x00280006, 0),
		photometric:         ds.String(0x00280004),
		frames:              get(0x00280008, 1),
		rescaleSlope:        1,
	}
	p.bitsStored = get(0x00280101, p.bitsAllocated)
	if p.frames < 1 {
		p.frames = 1
	}
	if f, ok := ds.Float(0x00281053); ok && f != 0 {
		p.rescaleSlope = f
	}
	if f, ok := ds.Float(0x00281052); ok {
		p.rescaleIntercept = f
	}
	c, okc := ds.Float(0x00281050)
	wd, okw := ds.Float(0x00281051)
	if okc && okw && wd >= 1 {
		p.windowCenter, p.windowWidth, p.hasWindow = c, wd, true
	}
	if p.rows <= 0 || p.columns <= 0 || p.bitsAllocated <= 0 {
		return p, errorf(http.StatusNotFound, "instance has no image pixel module")
	}
	return p, nil
}

// frameSize is the byte length of one uncompressed frame (PS3.5 §8.1.1);
// 1-bit frames are not byte aligned and are not cut.
func (p imagePixel) frameSize() (int64, bool) {
	if p.bitsAllocated%8 != 0 {
		return 0, false
	}
	return int64(p.rows) * int64(p.columns) * int64(p.samplesPerPixel) * int64(p.bitsAllocated/8), true
}

// frameMediaType is the media type of a frame in a transfer syntax
// (PS3.18 Table 8.7.3-2 and 8.7.3-5).
func frameMediaType(ts string) string {
	switch ts {
	case dicomfile.JPEGBaseline8Bit, dicomfile.JPEGExtended12Bit, dicomfile.JPEGLossless, dicomfile.JPEGLosslessSV1:
		return "image/jpeg"
	case dicomfile.JPEGLSLossless, dicomfile.JPEGLSNearLossless:
		return "image/jls"
	case dicomfile.JPEG2000Lossless, dicomfile.JPEG2000:
		return "image/jp2"
	case dicomfile.JPEG2000MCLossless, dicomfile.JPEG2000MC:
		return "image/jpx"
	case dicomfile.HTJ2KLossless, dicomfile.HTJ2KLosslessRPCL, dicomfile.HTJ2K:
		return "image/jphc"
	case dicomfile.JPEGXLLossless, dicomfile.JPEGXLJPEGRecompression, dicomfile.JPEGXL:
		return "image/jxl"
	case dicomfile.RLELossless:
		return "image/x-dicom-rle"
	case dicomfile.MPEG2MPML, dicomfile.MPEG2MPMLF, dicomfile.MPEG2MPHL, dicomfile.MPEG2MPHLF:
		return "video/mpeg"
	}
	if strings.HasPrefix(ts, "1.2.840.10008.1.2.4.10") {
		return "video/mp4"
	}
	return MediaTypeOctet
}

// parseFrameList reads the frame list of a path (PS3.18 §8.3.3.1.3):
// comma-separated frame numbers counted from 1.
func parseFrameList(s string, frames int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, errorf(http.StatusBadRequest, "frame list %q is not a list of frame numbers", s)
		}
		if n > frames {
			return nil, errorf(http.StatusNotFound, "frame %d of %d does not exist", n, frames)
		}
		out = append(out, n)
	}
	return out, nil
}

// frameReader returns the bytes of frame n (from 1).
func (o *opened) frameReader(p imagePixel, n int) (io.Reader, int64, error) {
	pd := o.header.PixelData
	if pd.Tag == 0 {
		return nil, 0, errorf(http.StatusNotFound, "%v", errNoPixels)
	}
	if o.deflated {
		return nil, 0, errDeflated
	}
	if pd.Length != dicomfile.UndefinedLength {
		size, ok := p.frameSize()
		if !ok {
			return nil, 0, errorf(http.StatusNotImplemented, "frames of %d-bit pixels are not retrievable one by one", p.bitsAllocated)
		}
		off := int64(n-1) * size
		if off+size > int64(pd.Length) {
			return nil, 0, errorf(http.StatusNotFound, "frame %d is beyond the pixel data", n)
		}
		return io.NewSectionReader(o.dataSet, pd.Offset+off, size), size, nil
	}
	frags, err := o.fragments()
	if err != nil {
		return nil, 0, err
	}
	groups, err := frameFragments(frags, p.frames, o.meta.TransferSyntaxUID, o.dataSet)
	if err != nil {
		return nil, 0, err
	}
	if n > len(groups) {
		return nil, 0, errorf(http.StatusNotFound, "frame %d is beyond the pixel data", n)
	}
	var rs []io.Reader
	var size int64
	for _, f := range groups[n-1] {
		rs = append(rs, io.NewSectionReader(o.dataSet, f.offset, f.length))
		size += f.length
	}
	return io.MultiReader(rs...), size, nil
}

// fragment is one item of encapsulated pixel data: its value's offset in
// the data set, its length, and the offset of its item tag relative to
// the first fragment, which the Basic Offset Table counts from.
type fragment struct {
	offset, length int64
	rel            int64
}

// fragments lists the items of encapsulated Pixel Data (PS3.5 §A.4): the
// Basic Offset Table first (returned as the first element), then the
// fragments up to the Sequence Delimitation Item.
func (o *opened) fragments() ([]fragment, error) {
	ts, _ := dicomfile.LookupTransferSyntax(o.meta.TransferSyntaxUID)
	bo := ts.ByteOrder
	off := o.header.PixelData.Offset
	var out []fragment
	var first int64 = -1
	var hdr [8]byte
	for len(out) < 1<<20 {
		if _, err := o.dataSet.ReadAt(hdr[:], off); err != nil {
			return nil, fmt.Errorf("%w: encapsulated pixel data truncated", dicomfile.ErrMalformed)
		}
		t := dicomfile.NewTag(bo.Uint16(hdr[:]), bo.Uint16(hdr[2:]))
		l := int64(bo.Uint32(hdr[4:]))
		if t == dicomfile.TagSequenceDelimitationItem {
			return out, nil
		}
		if t != dicomfile.TagItem || l == dicomfile.UndefinedLength {
			return nil, fmt.Errorf("%w: %v in encapsulated pixel data", dicomfile.ErrMalformed, t)
		}
		if len(out) == 1 {
			first = off
		}
		rel := int64(0)
		if first >= 0 {
			rel = off - first
		}
		out = append(out, fragment{offset: off + 8, length: l, rel: rel})
		off += 8 + l
	}
	return nil, fmt.Errorf("%w: too many fragments", dicomfile.ErrMalformed)
}

// frameFragments groups fragments into frames (PS3.5 §A.4): by the Basic
// Offset Table when present; else one fragment per frame when the counts
// agree, all fragments for a single frame, or for JPEG family syntaxes a
// new frame at each fragment that opens with a start marker.
func frameFragments(items []fragment, frames int, ts string, ra io.ReaderAt) ([][]fragment, error) {
	if len(items) < 2 {
		return nil, errorf(http.StatusNotFound, "encapsulated pixel data has no fragments")
	}
	bot, frags := items[0], items[1:]
	if bot.length >= 4 && bot.length%4 == 0 && bot.length <= 4<<20 {
		b := make([]byte, bot.length)
		if _, err := ra.ReadAt(b, bot.offset); err != nil {
			return nil, fmt.Errorf("read basic offset table: %w", err)
		}
		var starts []int64
		for i := 0; i+4 <= len(b); i += 4 {
			starts = append(starts, int64(binary.LittleEndian.Uint32(b[i:])))
		}
		groups := make([][]fragment, len(starts))
		for _, f := range frags {
			k := -1
			for i, st := range starts {
				if f.rel >= st {
					k = i
				}
			}
			if k >= 0 {
				groups[k] = append(groups[k], f)
			}
		}
		return groups, nil
	}
	switch {
	case frames == 1:
		return [][]fragment{frags}, nil
	case len(frags) == frames:
		groups := make([][]fragment, len(frags))
		for i, f := range frags {
			groups[i] = []fragment{f}
		}
		return groups, nil
	}
	var marker []byte
	switch frameMediaType(ts) {
	case "image/jpeg", "image/jls":
		marker = []byte{0xFF, 0xD8}
	case "image/jp2", "image/jpx", "image/jphc":
		marker = []byte{0xFF, 0x4F}
	default:
		return nil, errorf(http.StatusNotImplemented, "frames of this encapsulated pixel data cannot be told apart")
	}
	var groups [][]fragment
	head := make([]byte, 2)
	for _, f := range frags {
		_, err := ra.ReadAt(head, f.offset)
		if err == nil && bytes.Equal(head, marker) || len(groups) == 0 {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], f)
	}
	return groups, nil
}

// frames serves WADO-RS Retrieve Frames (PS3.18 §10.4.1.1.3).
func (s *Service) frames(w http.ResponseWriter, r *http.Request) {
	o, ok := s.openRequested(w, r)
	if !ok {
		return
	}
	defer o.Close()
	p, err := o.imagePixel()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	nums, err := parseFrameList(r.PathValue("frames"), p.frames)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.sendFrames(w, r, o, nums)
}

// sendFrames writes frames nums (all when nil) as multipart/related parts
// of the frames' media type in the stored transfer syntax.
func (s *Service) sendFrames(w http.ResponseWriter, r *http.Request, o *opened, nums []int) {
	p, err := o.imagePixel()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if nums == nil {
		for i := 1; i <= p.frames; i++ {
			nums = append(nums, i)
		}
	}
	ts := o.meta.TransferSyntaxUID
	typ := frameMediaType(ts)
	if !negotiateParts(r, typ, ts) {
		s.fail(w, r, errorf(http.StatusNotAcceptable, "frames are available as multipart/related; type=%q; transfer-syntax=%s", typ, ts))
		return
	}
	// Find every frame before the status line goes out.
	type part struct {
		r    io.Reader
		size int64
	}
	parts := make([]part, len(nums))
	for i, n := range nums {
		fr, size, err := o.frameReader(p, n)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		parts[i] = part{fr, size}
	}
	mw := newMultipart(w, typ)
	for _, pt := range parts {
		pw, err := mw.part(typ+"; transfer-syntax="+ts, "", pt.size)
		if err != nil {
			return
		}
		if _, err := io.Copy(pw, pt.r); err != nil {
			return
		}
	}
	mw.close()
}
