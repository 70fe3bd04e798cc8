package dicomweb

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/imaginghub/imaginghub/dicomfile"
)

// renderParams are the query parameters of a rendered request (PS3.18
// §8.3.5.1): window=center,width[,function], viewport=vw,vh, quality.
type renderParams struct {
	window           bool
	center, width    float64
	viewportW        int
	viewportH        int
	quality          int
	thumbnailMaxSide int
}

func parseRenderParams(r *http.Request) (renderParams, error) {
	rp := renderParams{quality: 90}
	for key, vals := range r.URL.Query() {
		v := vals[0]
		switch key {
		case "window":
			f := strings.Split(v, ",")
			if len(f) < 2 || len(f) > 3 {
				return rp, errorf(http.StatusBadRequest, "window is center,width[,function]")
			}
			c, err1 := strconv.ParseFloat(f[0], 64)
			wd, err2 := strconv.ParseFloat(f[1], 64)
			if err1 != nil || err2 != nil || wd < 1 {
				return rp, errorf(http.StatusBadRequest, "window %q is not center,width with width >= 1", v)
			}
			if len(f) == 3 && strings.ToLower(f[2]) != "linear" {
				return rp, errorf(http.StatusBadRequest, "window function %q is not supported; use linear", f[2])
			}
			rp.window, rp.center, rp.width = true, c, wd
		case "viewport":
			f := strings.Split(v, ",")
			if len(f) != 2 && len(f) != 6 {
				return rp, errorf(http.StatusBadRequest, "viewport is vw,vh")
			}
			vw, err1 := strconv.Atoi(f[0])
			vh, err2 := strconv.Atoi(f[1])
			if err1 != nil || err2 != nil || vw < 1 || vh < 1 || vw > 8192 || vh > 8192 {
				return rp, errorf(http.StatusBadRequest, "viewport %q is not two sizes from 1 to 8192", v)
			}
			rp.viewportW, rp.viewportH = vw, vh
		case "quality":
			q, err := strconv.Atoi(v)
			if err != nil || q < 1 || q > 100 {
				return rp, errorf(http.StatusBadRequest, "quality is 1 to 100")
			}
			rp.quality = q
		case "annotation", "charset", "iccprofile":
			// Accepted and not applied: the image carries no burned-in
			// text, and the output is sRGB.
		default:
			return rp, errorf(http.StatusBadRequest, "unknown query parameter %q", key)
		}
	}
	return rp, nil
}

// rendered serves WADO-RS Retrieve Rendered Instance / Frames (PS3.18
// §10.4.1.1.4) for one frame (the first of an instance).
func (s *Service) rendered(w http.ResponseWriter, r *http.Request) {
	rp, err := parseRenderParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderOne(w, r, rp)
}

// thumbnail serves Retrieve Thumbnail (PS3.18 §10.4.1.1.6): a small
// rendering of the middle instance of a study or series, or of an instance
// or frame.
func (s *Service) thumbnail(w http.ResponseWriter, r *http.Request) {
	rp, err := parseRenderParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rp.thumbnailMaxSide = s.opts.ThumbnailSize
	s.renderOne(w, r, rp)
}

func (s *Service) renderOne(w http.ResponseWriter, r *http.Request, rp renderParams) {
	study, series, instance, err := pathUIDs(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	typ, ok := negotiateImage(r)
	if !ok {
		s.fail(w, r, errorf(http.StatusNotAcceptable, "rendered images are available as image/jpeg or image/png"))
		return
	}
	list, err := s.instances(r.Context(), study, series, instance)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// For a study or series, the middle image instance stands for it.
	var candidates = list
	if instance == "" {
		candidates = nil
		for _, in := range list {
			if in.Rows > 0 {
				candidates = append(candidates, in)
			}
		}
		if len(candidates) == 0 {
			s.fail(w, r, errorf(http.StatusNotFound, "no image to render"))
			return
		}
		candidates = candidates[len(candidates)/2:]
	}
	o, err := s.open(r.Context(), candidates[0])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer o.Close()
	frame := 1
	if f := r.PathValue("frames"); f != "" {
		p, err := o.imagePixel()
		if err != nil {
			s.fail(w, r, err)
			return
		}
		nums, err := parseFrameList(f, p.frames)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if len(nums) != 1 && rp.thumbnailMaxSide == 0 {
			s.fail(w, r, errorf(http.StatusBadRequest, "render one frame at a time"))
			return
		}
		frame = nums[0]
	}
	img, err := o.render(frame, rp)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeImage(w, typ, img, rp.quality)
}

func writeImage(w http.ResponseWriter, typ string, img image.Image, quality int) {
	var buf bytes.Buffer
	if typ == "image/png" {
		png.Encode(&buf, img)
	} else {
		jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality})
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}

// render produces the presentation of one frame (PS3.18 §8.3.5.1.1):
// uncompressed grayscale through the Modality LUT (rescale) and a linear
// VOI window (PS3.3 §C.11.2.1.2.1), MONOCHROME1 inverted; uncompressed
// RGB/YBR_FULL as is; JPEG Baseline decoded.
func (o *opened) render(frame int, rp renderParams) (image.Image, error) {
	p, err := o.imagePixel()
	if err != nil {
		return nil, err
	}
	fr, size, err := o.frameReader(p, frame)
	if err != nil {
		return nil, err
	}
	if size > 1<<30 {
		return nil, errorf(http.StatusNotImplemented, "frame too large to render")
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(fr, data); err != nil {
		return nil, err
	}
	var img image.Image
	ts := o.meta.TransferSyntaxUID
	switch {
	case ts == dicomfile.JPEGBaseline8Bit || ts == dicomfile.JPEGExtended12Bit && p.bitsAllocated == 8:
		img, err = jpeg.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, errorf(http.StatusNotImplemented, "JPEG frame cannot be decoded: %v", err)
		}
	case o.header.PixelData.Length == dicomfile.UndefinedLength:
		return nil, errorf(http.StatusNotAcceptable, "rendering of transfer syntax %s is not supported", ts)
	default:
		ds, _ := dicomfile.LookupTransferSyntax(ts)
		img, err = decodeNative(p, data, ds.ByteOrder, rp)
		if err != nil {
			return nil, err
		}
	}
	maxW, maxH := 0, 0
	if rp.viewportW > 0 {
		maxW, maxH = rp.viewportW, rp.viewportH
	}
	if rp.thumbnailMaxSide > 0 {
		maxW, maxH = rp.thumbnailMaxSide, rp.thumbnailMaxSide
	}
	if maxW > 0 {
		img = boxScale(img, maxW, maxH)
	}
	return img, nil
}

func decodeNative(p imagePixel, data []byte, bo binary.ByteOrder, rp renderParams) (image.Image, error) {
	w, h := p.columns, p.rows
	n := w * h
	switch {
	case p.samplesPerPixel == 1 && (p.bitsAllocated == 8 || p.bitsAllocated == 16):
		vals := make([]float64, n)
		bytesPer := p.bitsAllocated / 8
		if len(data) < n*bytesPer {
			return nil, errorf(http.StatusUnprocessableEntity, "frame shorter than its rows and columns")
		}
		mask := uint32(1)<<uint(min(p.bitsStored, p.bitsAllocated)) - 1
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := 0; i < n; i++ {
			var u uint32
			if bytesPer == 1 {
				u = uint32(data[i])
			} else {
				u = uint32(bo.Uint16(data[2*i:]))
			}
			u &= mask
			v := float64(u)
			if p.pixelRepresentation == 1 && p.bitsStored > 0 && u&(1<<uint(p.bitsStored-1)) != 0 {
				v = float64(int64(u) - int64(1)<<uint(p.bitsStored))
			}
			v = v*p.rescaleSlope + p.rescaleIntercept
			vals[i] = v
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		c, wd := p.windowCenter, p.windowWidth
		switch {
		case rp.window:
			c, wd = rp.center, rp.width
		case !p.hasWindow:
			// No window: stretch the frame's range (min-max).
			c, wd = (lo+hi)/2, math.Max(hi-lo, 1)+1
		}
		img := image.NewGray(image.Rect(0, 0, w, h))
		invert := p.photometric == "MONOCHROME1"
		for i, v := range vals {
			// Linear VOI LUT function, PS3.3 §C.11.2.1.2.1.
			var y float64
			switch {
			case v <= c-0.5-(wd-1)/2:
				y = 0
			case v > c-0.5+(wd-1)/2:
				y = 255
			default:
				y = ((v-(c-0.5))/(wd-1) + 0.5) * 255
			}
			if invert {
				y = 255 - y
			}
			img.Pix[i] = uint8(math.Round(y))
		}
		return img, nil
	case p.samplesPerPixel == 3 && p.bitsAllocated == 8:
		if len(data) < 3*n {
			return nil, errorf(http.StatusUnprocessableEntity, "frame shorter than its rows and columns")
		}
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		ybr := strings.HasPrefix(p.photometric, "YBR_FULL")
		for i := 0; i < n; i++ {
			var a, b, c byte
			if p.planarConfiguration == 1 {
				a, b, c = data[i], data[n+i], data[2*n+i]
			} else {
				a, b, c = data[3*i], data[3*i+1], data[3*i+2]
			}
			if ybr {
				a, b, c = color.YCbCrToRGB(a, b, c)
			}
			img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = a, b, c, 255
		}
		return img, nil
	}
	return nil, errorf(http.StatusNotAcceptable, "rendering %d samples of %d bits (%s) is not supported", p.samplesPerPixel, p.bitsAllocated, p.photometric)
}

// boxScale shrinks img to fit maxW×maxH keeping its aspect ratio, each
// output pixel the mean of the source pixels it covers (a box filter).
// Images already small enough are returned unchanged.
func boxScale(img image.Image, maxW, maxH int) image.Image {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	if sw <= maxW && sh <= maxH {
		return img
	}
	scale := math.Min(float64(maxW)/float64(sw), float64(maxH)/float64(sh))
	dw, dh := max(1, int(float64(sw)*scale)), max(1, int(float64(sh)*scale))
	out := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < dh; y++ {
		y0, y1 := y*sh/dh, max((y+1)*sh/dh, y*sh/dh+1)
		for x := 0; x < dw; x++ {
			x0, x1 := x*sw/dw, max((x+1)*sw/dw, x*sw/dw+1)
			var r, g, bl, a, n uint64
			for sy := y0; sy < y1; sy++ {
				for sx := x0; sx < x1; sx++ {
					cr, cg, cb, ca := img.At(b.Min.X+sx, b.Min.Y+sy).RGBA()
					r, g, bl, a, n = r+uint64(cr), g+uint64(cg), bl+uint64(cb), a+uint64(ca), n+1
				}
			}
			i := out.PixOffset(x, y)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = uint8(r/n>>8), uint8(g/n>>8), uint8(bl/n>>8), uint8(a/n>>8)
		}
	}
	return out
}
