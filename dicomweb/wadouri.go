package dicomweb

import (
	"net/http"
	"strconv"

	"github.com/imaginghub/imaginghub/workflow/coerce"
)

// wadoURI serves WADO-URI (PS3.18 §9): requestType=WADO with studyUID,
// seriesUID and objectUID, as the Part 10 file (contentType=
// application/dicom) or rendered (image/jpeg, the default for images,
// or image/png; frameNumber, windowCenter/windowWidth, rows/columns).
func (s *Service) wadoURI(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("requestType") != "WADO" {
		s.fail(w, r, errorf(http.StatusBadRequest, "requestType must be WADO"))
		return
	}
	study, series, object := q.Get("studyUID"), q.Get("seriesUID"), q.Get("objectUID")
	for _, u := range []string{study, series, object} {
		if !validUID(u) {
			s.fail(w, r, errorf(http.StatusBadRequest, "studyUID, seriesUID and objectUID must be valid UIDs"))
			return
		}
	}
	list, err := s.instances(r.Context(), study, series, object)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	in := list[0]
	ctype := q.Get("contentType")
	if ctype == "" {
		ctype = "image/jpeg"
		if in.Rows == 0 {
			ctype = MediaTypeDICOM
		}
	}
	switch ctype {
	case MediaTypeDICOM:
		if ts := q.Get("transferSyntax"); ts != "" && ts != in.TransferSyntaxUID {
			s.fail(w, r, errorf(http.StatusNotAcceptable, "the object is available in transfer syntax %s only", in.TransferSyntaxUID))
			return
		}
		b, err := s.rt.Blobs.Open(r.Context(), in.BlobKey)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer b.Close()
		w.Header().Set("Content-Type", MediaTypeDICOM)
		// A reconciled study goes out with its corrected values (IHE
		// PIR), streamed: no Content-Length and no ranges then.
		cv, _, err := coerce.LookupCatalog(r.Context(), s.rt.Catalog, study)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !cv.Zero() && coerce.Supported(in.TransferSyntaxUID) {
			if err := writeInstance(w, b, in.TransferSyntaxUID, cv); err != nil {
				s.log.Error("WADO-URI: instance not sent whole", "key", in.BlobKey, "err", err)
			}
			return
		}
		http.ServeContent(w, r, "", in.ReceivedAt, b)
	case "image/jpeg", "image/png":
		rp := renderParams{quality: 90}
		if v := q.Get("imageQuality"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100 {
				s.fail(w, r, errorf(http.StatusBadRequest, "imageQuality is 1 to 100"))
				return
			}
			rp.quality = n
		}
		if c, wd := q.Get("windowCenter"), q.Get("windowWidth"); c != "" || wd != "" {
			cf, err1 := strconv.ParseFloat(c, 64)
			wf, err2 := strconv.ParseFloat(wd, 64)
			if err1 != nil || err2 != nil || wf < 1 {
				s.fail(w, r, errorf(http.StatusBadRequest, "windowCenter and windowWidth are numbers, width at least 1"))
				return
			}
			rp.window, rp.center, rp.width = true, cf, wf
		}
		rows, _ := strconv.Atoi(q.Get("rows"))
		cols, _ := strconv.Atoi(q.Get("columns"))
		if rows > 0 || cols > 0 {
			rp.viewportW, rp.viewportH = max(cols, 1), max(rows, 1)
			if cols == 0 {
				rp.viewportW = 8192
			}
			if rows == 0 {
				rp.viewportH = 8192
			}
		}
		frame := 1
		if v := q.Get("frameNumber"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				s.fail(w, r, errorf(http.StatusBadRequest, "frameNumber counts from 1"))
				return
			}
			frame = n
		}
		o, err := s.open(r.Context(), in)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		defer o.Close()
		if p, err := o.imagePixel(); err == nil && frame > p.frames {
			s.fail(w, r, errorf(http.StatusNotFound, "frame %d of %d does not exist", frame, p.frames))
			return
		}
		img, err := o.render(frame, rp)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeImage(w, ctype, img, rp.quality)
	default:
		s.fail(w, r, errorf(http.StatusNotAcceptable, "contentType %q is not available; use application/dicom, image/jpeg or image/png", ctype))
	}
}
