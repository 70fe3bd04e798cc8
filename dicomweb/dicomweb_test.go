package dicomweb_test

import (
	"bufio"
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomweb"
)

// fixture stores two studies of two patients:
//
//	study A (DOE^JANE, 20250110, CT): series A1 with 2 instances
//	study B (ROE^RICHARD, 20250301, MR): series B1 with 1 instance of 3 frames
type fixture struct {
	*env
	studyA, seriesA, instA1, instA2 string
	studyB, seriesB, instB          string
	fileA1                          []byte
}

func newFixture(t *testing.T, opts dicomweb.Options) *fixture {
	e := start(t, opts)
	f := &fixture{env: e}
	a1 := synth.Options{Seed: 1, PatientName: "DOE^JANE", PatientID: "SYN-A", StudyDate: "20250110", Modality: "CT", InstanceNumber: 1, Rows: 16, Columns: 16}
	a2 := a1
	a2.SOPInstanceUID, a2.InstanceNumber = synth.DerivedUID(1, "instance-2"), 2
	b := synth.Options{Seed: 2, PatientName: "ROE^RICHARD", PatientID: "SYN-B", StudyDate: "20250301", Modality: "MR", Rows: 8, Columns: 8, Frames: 3, AccessionNumber: "ACC-B", TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian}
	f.fileA1 = instance(t, a1)
	e.store(t, f.fileA1)
	e.store(t, instance(t, a2))
	e.store(t, instance(t, b))
	f.studyA, f.seriesA, f.instA1, f.instA2 = synth.DerivedUID(1, "study"), synth.DerivedUID(1, "series"), synth.DerivedUID(1, "instance"), a2.SOPInstanceUID
	f.studyB, f.seriesB, f.instB = synth.DerivedUID(2, "study"), synth.DerivedUID(2, "series"), synth.DerivedUID(2, "instance")
	return f
}

func decodeArray(t *testing.T, body []byte) []dicomjson.DataSet {
	t.Helper()
	sets, err := dicomjson.UnmarshalArray(body)
	if err != nil {
		t.Fatalf("response is not a DICOM JSON array: %v\n%s", err, body)
	}
	return sets
}

func TestQIDO(t *testing.T) {
	f := newFixture(t, dicomweb.Options{})
	unknown := "1.2.3.999"
	tests := []struct {
		name   string
		path   string
		accept string
		status int
		uids   []string // expected values of uidTag, in order
		uidTag dicomjson.Tag
	}{
		{"all studies newest first", "/studies", "", 200, []string{f.studyB, f.studyA}, 0x0020000D},
		{"name wildcard by keyword", "/studies?PatientName=DOE*", "application/dicom+json", 200, []string{f.studyA}, 0x0020000D},
		{"name wildcard by tag", "/studies?00100010=ROE*", "application/json", 200, []string{f.studyB}, 0x0020000D},
		{"case-sensitive name", "/studies?PatientName=doe*", "", 200, nil, 0x0020000D},
		{"fuzzy name", "/studies?PatientName=doe*&fuzzymatching=true", "", 200, []string{f.studyA}, 0x0020000D},
		{"date range", "/studies?StudyDate=20250101-20250131", "", 200, []string{f.studyA}, 0x0020000D},
		{"open date range", "/studies?StudyDate=20250201-", "", 200, []string{f.studyB}, 0x0020000D},
		{"modalities in study", "/studies?ModalitiesInStudy=MR", "", 200, []string{f.studyB}, 0x0020000D},
		{"UID list with comma", "/studies?StudyInstanceUID=" + f.studyA + "," + unknown, "", 200, []string{f.studyA}, 0x0020000D},
		{"limit", "/studies?limit=1", "", 200, []string{f.studyB}, 0x0020000D},
		{"offset", "/studies?limit=1&offset=1", "", 200, []string{f.studyA}, 0x0020000D},
		{"no match is 200 with []", "/studies?PatientID=NOBODY", "", 200, nil, 0x0020000D},
		{"all series", "/series?Modality=CT", "", 200, []string{f.seriesA}, 0x0020000E},
		{"series of study", "/studies/" + f.studyB + "/series", "", 200, []string{f.seriesB}, 0x0020000E},
		{"instances of series", "/studies/" + f.studyA + "/series/" + f.seriesA + "/instances", "", 200, []string{f.instA1, f.instA2}, 0x00080018},
		{"instances of study by number", "/studies/" + f.studyA + "/instances?InstanceNumber=2", "", 200, []string{f.instA2}, 0x00080018},
		{"all instances by SOP UID", "/instances?SOPInstanceUID=" + f.instB, "", 200, []string{f.instB}, 0x00080018},
		{"unknown parameter", "/studies?foo=bar", "", 400, nil, 0},
		{"unsupported matching key", "/studies?PixelSpacing=1", "", 400, nil, 0},
		{"instance key at study level", "/studies?SOPInstanceUID=" + f.instB, "", 400, nil, 0},
		{"malformed date", "/studies?StudyDate=2025-01-01", "", 400, nil, 0},
		{"bad limit", "/studies?limit=-1", "", 400, nil, 0},
		{"bad study UID in path", "/studies/1.2.x/series", "", 400, nil, 0},
		{"unknown study", "/studies/" + unknown + "/series", "", 404, nil, 0},
		{"unknown series", "/studies/" + f.studyA + "/series/" + unknown + "/instances", "", 404, nil, 0},
		{"XML not served", "/studies", "application/dicom+xml", 406, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.get(t, tc.path, tc.accept)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				if _, err := dicomjson.Unmarshal(body); err != nil {
					t.Errorf("error body is not DICOM JSON: %s", body)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/") || !strings.Contains(ct, "json") {
				t.Errorf("Content-Type %q", ct)
			}
			sets := decodeArray(t, body)
			var got []string
			for _, ds := range sets {
				got = append(got, ds.String(tc.uidTag))
			}
			if strings.Join(got, " ") != strings.Join(tc.uids, " ") {
				t.Errorf("got %v, want %v", got, tc.uids)
			}
		})
	}

	t.Run("study attributes", func(t *testing.T) {
		_, body := f.get(t, "/studies?PatientID=SYN-B&includefield=StudyDescription", "")
		ds := decodeArray(t, body)[0]
		checks := map[dicomjson.Tag]string{
			0x00100010: "ROE^RICHARD", 0x00080050: "ACC-B", 0x00080061: "MR", 0x00201206: "1", 0x00201208: "1",
			0x00081030: "CT CHEST", 0x00081190: f.base + "/studies/" + f.studyB, 0x00080020: "20250301",
		}
		for tag, want := range checks {
			if got := ds.String(tag); got != want {
				t.Errorf("%v = %q, want %q", tag, got, want)
			}
		}
		if ds[0x00100010].VR != "PN" || ds[0x00100010].PersonNames[0].Alphabetic != "ROE^RICHARD" {
			t.Errorf("PatientName not a PN object: %+v", ds[0x00100010])
		}
	})
	t.Run("instance attributes across levels", func(t *testing.T) {
		_, body := f.get(t, "/instances?SOPInstanceUID="+f.instB+"&includefield=all", "")
		ds := decodeArray(t, body)[0]
		if ds.String(0x0020000D) != f.studyB || ds.String(0x0020000E) != f.seriesB || ds.String(0x00280008) != "3" || ds.String(0x00280010) != "8" {
			t.Errorf("instance result lacks upper levels or image keys: %s", body)
		}
		if got := ds.String(0x00081190); got != f.base+"/studies/"+f.studyB+"/series/"+f.seriesB+"/instances/"+f.instB {
			t.Errorf("RetrieveURL %q", got)
		}
	})
	t.Run("warning when cut", func(t *testing.T) {
		resp, _ := f.get(t, "/studies?limit=1", "")
		if resp.Header.Get("Warning") == "" {
			t.Error("no Warning header when more results exist")
		}
	})
}

func TestWADORetrieve(t *testing.T) {
	f := newFixture(t, dicomweb.Options{})
	inst := "/studies/" + f.studyA + "/series/" + f.seriesA + "/instances/" + f.instA1
	t.Run("instance multipart, stored syntax", func(t *testing.T) {
		resp, body := f.get(t, inst, `multipart/related; type="application/dicom"; transfer-syntax=*`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		parts := readMultipart(t, resp, body)
		if len(parts) != 1 || !sameDataSet(t, parts[0].body, f.fileA1) {
			t.Fatalf("got %d parts, want the stored instance", len(parts))
		}
		if ct := parts[0].header["Content-Type"][0]; ct != "application/dicom; transfer-syntax="+dicomfile.ImplicitVRLittleEndian {
			t.Errorf("part Content-Type %q", ct)
		}
	})
	t.Run("instance multipart, default Explicit VR Little Endian", func(t *testing.T) {
		resp, body := f.get(t, inst, `multipart/related; type="application/dicom"`)
		parts := readMultipart(t, resp, body)
		if len(parts) != 1 {
			t.Fatalf("%d parts", len(parts))
		}
		if ct := parts[0].header["Content-Type"][0]; ct != "application/dicom; transfer-syntax="+dicomfile.ExplicitVRLittleEndian {
			t.Errorf("part Content-Type %q", ct)
		}
		meta, err := dicomfile.ReadFileMeta(bufio.NewReader(bytes.NewReader(parts[0].body)))
		if err != nil || meta.TransferSyntaxUID != dicomfile.ExplicitVRLittleEndian {
			t.Fatalf("file meta %+v: %v", meta, err)
		}
		h, err := dicomfile.ParseHeader(bytes.NewReader(parts[0].body[meta.DataSetOffset():]), meta.TransferSyntaxUID)
		if err != nil || h.PatientName != "DOE^JANE" || h.SOPInstanceUID != f.instA1 || h.Rows != 16 {
			t.Fatalf("transcoded header %+v: %v", h, err)
		}
		// Native pixel data is the same bytes at the end of both files.
		if !bytes.Equal(parts[0].body[len(parts[0].body)-512:], f.fileA1[len(f.fileA1)-512:]) {
			t.Error("pixel data differs after transcoding")
		}
	})
	t.Run("instance as application/dicom", func(t *testing.T) {
		resp, body := f.get(t, inst, "application/dicom; transfer-syntax=*")
		if resp.StatusCode != 200 || !sameDataSet(t, body, f.fileA1) {
			t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
		}
	})
	t.Run("study", func(t *testing.T) {
		resp, body := f.get(t, "/studies/"+f.studyA, "*/*")
		if n := len(readMultipart(t, resp, body)); n != 2 {
			t.Errorf("study retrieve gave %d parts, want 2", n)
		}
		resp, body = f.get(t, "/studies/"+f.studyA+"/series/"+f.seriesA, `multipart/related; type="application/dicom"; transfer-syntax=*`)
		if n := len(readMultipart(t, resp, body)); n != 2 {
			t.Errorf("series retrieve gave %d parts, want 2", n)
		}
	})
	errs := []struct {
		name, path, accept string
		status             int
	}{
		{"unsupported Accept", inst, "image/gif", 406},
		{"other transfer syntax", inst, `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50`, 406},
		{"bad study UID", "/studies/01.2.3", "", 400},
		{"bad instance UID", "/studies/" + f.studyA + "/series/" + f.seriesA + "/instances/abc", "", 400},
		{"unknown study", "/studies/1.2.3.4.5", "", 404},
		{"unknown series", "/studies/" + f.studyA + "/series/1.2.3.4.5", "", 404},
		{"unknown instance", "/studies/" + f.studyA + "/series/" + f.seriesA + "/instances/1.2.3.4.5", "", 404},
		{"instance of another study", "/studies/" + f.studyB + "/series/" + f.seriesA + "/instances/" + f.instA1, "", 404},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.get(t, tc.path, tc.accept)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
		})
	}
}

func TestMetadataAndBulkData(t *testing.T) {
	f := newFixture(t, dicomweb.Options{})
	resp, body := f.get(t, "/studies/"+f.studyA+"/metadata", "application/dicom+json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/dicom+json" {
		t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	sets := decodeArray(t, body)
	if len(sets) != 2 || sets[0].String(0x00080018) != f.instA1 || sets[1].String(0x00080018) != f.instA2 {
		t.Fatalf("metadata instances %d, order wrong", len(sets))
	}
	ds := sets[0]
	if ds.String(0x00100010) != "DOE^JANE" || ds.String(0x00281052) != "-1024" || ds.String(0x00280010) != "16" {
		t.Errorf("metadata attributes wrong: %s", ds.AppendJSON(nil))
	}
	pd := ds[0x7FE00010]
	if pd == nil || pd.BulkDataURI == "" {
		t.Fatalf("PixelData has no BulkDataURI: %+v", pd)
	}
	u, err := url.Parse(pd.BulkDataURI)
	if err != nil {
		t.Fatal(err)
	}
	resp, body = f.get(t, strings.TrimPrefix(u.Path, dicomweb.BasePath), `multipart/related; type="application/octet-stream"`)
	parts := readMultipart(t, resp, body)
	if len(parts) != 1 || len(parts[0].body) != 16*16*2 {
		t.Fatalf("pixel bulk data: %d parts", len(parts))
	}
	// The bulk data is the pixel data of the stored file.
	if !bytes.HasSuffix(f.fileA1, parts[0].body) {
		t.Error("pixel bulk data differs from the stored file")
	}

	for _, p := range []string{
		"/studies/" + f.studyA + "/series/" + f.seriesA + "/metadata",
		"/studies/" + f.studyA + "/series/" + f.seriesA + "/instances/" + f.instA2 + "/metadata",
	} {
		_, body := f.get(t, p, "")
		if n := len(decodeArray(t, body)); n == 0 {
			t.Errorf("%s: empty", p)
		}
	}
	if resp, _ := f.get(t, "/studies/1.2.3.4.5/metadata", ""); resp.StatusCode != 404 {
		t.Errorf("unknown study metadata: %d", resp.StatusCode)
	}
	if resp, _ := f.get(t, "/studies/"+f.studyA+"/metadata", "multipart/related; type=application/dicom"); resp.StatusCode != 406 {
		t.Errorf("metadata as application/dicom: %d, want 406", resp.StatusCode)
	}
}

func TestFrames(t *testing.T) {
	f := newFixture(t, dicomweb.Options{})
	inst := "/studies/" + f.studyB + "/series/" + f.seriesB + "/instances/" + f.instB
	_, all := f.get(t, inst, "application/dicom")
	const frameSize = 8 * 8 * 2
	pixels := all[len(all)-3*frameSize:]
	resp, body := f.get(t, inst+"/frames/2,3", `multipart/related; type="application/octet-stream"`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	parts := readMultipart(t, resp, body)
	if len(parts) != 2 {
		t.Fatalf("%d parts, want 2", len(parts))
	}
	for i, p := range parts {
		want := pixels[(i+1)*frameSize : (i+2)*frameSize]
		if !bytes.Equal(p.body, want) {
			t.Errorf("frame %d differs", i+2)
		}
		if ct := p.header["Content-Type"][0]; !strings.HasPrefix(ct, "application/octet-stream") {
			t.Errorf("frame Content-Type %q", ct)
		}
	}
	for path, status := range map[string]int{
		inst + "/frames/4":   404,
		inst + "/frames/0":   400,
		inst + "/frames/a,b": 400,
	} {
		if resp, body := f.get(t, path, ""); resp.StatusCode != status {
			t.Errorf("%s: %d, want %d: %s", path, resp.StatusCode, status, body)
		}
	}
	if resp, _ := f.get(t, inst+"/frames/1", `multipart/related; type="image/jpeg"`); resp.StatusCode != 406 {
		t.Errorf("uncompressed frame as JPEG: %d, want 406", resp.StatusCode)
	}
}

func TestRendered(t *testing.T) {
	f := newFixture(t, dicomweb.Options{})
	inst := "/studies/" + f.studyA + "/series/" + f.seriesA + "/instances/" + f.instA1
	tests := []struct {
		path, accept, typ string
		w, h              int
	}{
		{inst + "/rendered", "image/jpeg", "image/jpeg", 16, 16},
		{inst + "/rendered?window=40,400", "image/png", "image/png", 16, 16},
		{inst + "/rendered?viewport=8,8", "", "image/jpeg", 8, 8},
		{inst + "/frames/1/rendered", "image/*", "image/jpeg", 16, 16},
		{"/studies/" + f.studyB + "/series/" + f.seriesB + "/instances/" + f.instB + "/frames/3/rendered", "image/png", "image/png", 8, 8},
		{inst + "/thumbnail", "image/png", "image/png", 16, 16},
		{"/studies/" + f.studyA + "/thumbnail", "", "image/jpeg", 16, 16},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := f.get(t, tc.path, tc.accept)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.typ {
				t.Fatalf("status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var img image.Image
			var err error
			if tc.typ == "image/png" {
				img, err = png.Decode(bytes.NewReader(body))
			} else {
				img, err = jpeg.Decode(bytes.NewReader(body))
			}
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Errorf("size %v, want %dx%d", b.Size(), tc.w, tc.h)
			}
		})
	}
	for path, status := range map[string]int{
		inst + "/rendered?window=a,b":   400,
		inst + "/rendered?foo=1":        400,
		inst + "/rendered?quality=1000": 400,
	} {
		if resp, _ := f.get(t, path, ""); resp.StatusCode != status {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, status)
		}
	}
	if resp, _ := f.get(t, inst+"/rendered", "image/gif"); resp.StatusCode != 406 {
		t.Errorf("rendered as GIF: %d, want 406", resp.StatusCode)
	}
}

// TestThumbnailScales renders a 512×512 image down to 128 px.
func TestThumbnailScales(t *testing.T) {
	e := start(t, dicomweb.Options{})
	e.store(t, instance(t, synth.Options{Seed: 9}))
	resp, body := e.get(t, "/studies/"+synth.DerivedUID(9, "study")+"/series/"+synth.DerivedUID(9, "series")+"/thumbnail", "image/png")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 128 || b.Dy() != 128 {
		t.Errorf("thumbnail %v, want 128x128", b.Size())
	}
}

// TestJPEGBaseline stores a JPEG Baseline instance made by DCMTK's img2dcm
// and retrieves its frame (image/jpeg) and a rendering of it.
func TestJPEGBaseline(t *testing.T) {
	if _, err := exec.LookPath("img2dcm"); err != nil {
		t.Skip("img2dcm (DCMTK) not installed")
	}
	dir := t.TempDir()
	src := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range src.Pix {
		src.Pix[i] = uint8(i)
	}
	var jb bytes.Buffer
	jpeg.Encode(&jb, src, &jpeg.Options{Quality: 95})
	jpgPath, dcmPath := filepath.Join(dir, "in.jpg"), filepath.Join(dir, "out.dcm")
	os.WriteFile(jpgPath, jb.Bytes(), 0o600)
	if out, err := exec.Command("img2dcm", "-k", "PatientName=TEST^JPEG", "-k", "PatientID=SYN-J", jpgPath, dcmPath).CombinedOutput(); err != nil {
		t.Fatalf("img2dcm: %v\n%s", err, out)
	}
	file, err := os.ReadFile(dcmPath)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, dicomweb.Options{})
	e.store(t, file)
	_, h, err := dicomfile.ParseFile(dcmPath)
	if err != nil {
		t.Fatal(err)
	}
	inst := "/studies/" + h.StudyInstanceUID + "/series/" + h.SeriesInstanceUID + "/instances/" + h.SOPInstanceUID
	resp, body := e.get(t, inst+"/frames/1", `multipart/related; type="image/jpeg"`)
	if resp.StatusCode != 200 {
		t.Fatalf("frames: %d %s", resp.StatusCode, body)
	}
	parts := readMultipart(t, resp, body)
	if len(parts) != 1 || !bytes.HasPrefix(parts[0].body, []byte{0xFF, 0xD8}) {
		t.Fatalf("frame is not a JPEG stream")
	}
	if img, err := jpeg.Decode(bytes.NewReader(parts[0].body)); err != nil || img.Bounds().Dx() != 40 {
		t.Errorf("frame JPEG: %v", err)
	}
	resp, body = e.get(t, inst+"/rendered", "image/png")
	if resp.StatusCode != 200 {
		t.Fatalf("rendered: %d %s", resp.StatusCode, body)
	}
	if img, err := png.Decode(bytes.NewReader(body)); err != nil || img.Bounds().Dy() != 30 {
		t.Errorf("rendered PNG: %v", err)
	}
}

func TestSTOW(t *testing.T) {
	e := start(t, dicomweb.Options{})
	good1 := instance(t, synth.Options{Seed: 20, Rows: 4, Columns: 4})
	o2 := synth.Options{Seed: 20, Rows: 4, Columns: 4, SOPInstanceUID: synth.DerivedUID(20, "second"), InstanceNumber: 2}
	good2 := instance(t, o2)
	study := synth.DerivedUID(20, "study")
	broken := []byte("this is not a DICOM file")
	other := instance(t, synth.Options{Seed: 21, Rows: 4, Columns: 4})

	t.Run("one broken part", func(t *testing.T) {
		ct, body := multipartBody(t, good1, broken, good2)
		resp, rb := e.post(t, "/studies", ct, body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", resp.StatusCode, rb)
		}
		ds, err := dicomjson.Unmarshal(rb)
		if err != nil {
			t.Fatal(err)
		}
		ref, failed := ds[0x00081199], ds[0x00081198]
		if ref == nil || len(ref.Items) != 2 || failed == nil || len(failed.Items) != 1 {
			t.Fatalf("response: %s", rb)
		}
		if got := failed.Items[0].String(0x00081197); got != "49152" {
			t.Errorf("FailureReason %s, want 49152 (0xC000)", got)
		}
		if ref.Items[1].String(0x00081155) != o2.SOPInstanceUID || !strings.HasSuffix(ref.Items[1].String(0x00081190), "/instances/"+o2.SOPInstanceUID) {
			t.Errorf("ReferencedSOPSequence item: %s", ref.Items[1].AppendJSON(nil))
		}
		if got := ds.String(0x00081190); got != e.base+"/studies/"+study {
			t.Errorf("RetrieveURL %q", got)
		}
		// Stored through ingest: searchable and retrievable.
		_, qb := e.get(t, "/studies/"+study+"/instances", "")
		if n := len(decodeArray(t, qb)); n != 2 {
			t.Errorf("QIDO after STOW finds %d instances, want 2", n)
		}
	})
	t.Run("study in URL", func(t *testing.T) {
		ct, body := multipartBody(t, other, good1)
		resp, rb := e.post(t, "/studies/"+study, ct, body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", resp.StatusCode, rb)
		}
		ds, _ := dicomjson.Unmarshal(rb)
		failed := ds[0x00081198]
		if failed == nil || len(failed.Items) != 1 || failed.Items[0].String(0x00081155) != synth.DerivedUID(21, "instance") || failed.Items[0].String(0x00081197) != "43264" {
			t.Errorf("instance of another study not refused with 0xA900: %s", rb)
		}
		if resp, _ := e.get(t, "/studies/"+synth.DerivedUID(21, "study"), ""); resp.StatusCode != 404 {
			t.Errorf("refused instance was stored (%d)", resp.StatusCode)
		}
	})
	t.Run("all failed", func(t *testing.T) {
		ct, body := multipartBody(t, broken, broken)
		if resp, rb := e.post(t, "/studies", ct, body); resp.StatusCode != http.StatusConflict {
			t.Errorf("status %d, want 409: %s", resp.StatusCode, rb)
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		for _, ct := range []string{"application/dicom", "application/json", `multipart/related; type="application/dicom+xml"; boundary=x`} {
			if resp, _ := e.post(t, "/studies", ct, good1); resp.StatusCode != http.StatusUnsupportedMediaType {
				t.Errorf("%s: status %d, want 415", ct, resp.StatusCode)
			}
		}
	})
	t.Run("bad study UID", func(t *testing.T) {
		ct, body := multipartBody(t, good1)
		if resp, _ := e.post(t, "/studies/1..2", ct, body); resp.StatusCode != 400 {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
}

// TestSTOWWithStorescu files through DCMTK's storescu (C-STORE) and
// through STOW-RS; both land in the same catalog.
func TestSTOWWithStorescu(t *testing.T) {
	if _, err := exec.LookPath("storescu"); err != nil {
		t.Skip("storescu (DCMTK) not installed")
	}
	e := start(t, dicomweb.Options{})
	p := filepath.Join(t.TempDir(), "a.dcm")
	os.WriteFile(p, instance(t, synth.Options{Seed: 30, Rows: 4, Columns: 4}), 0o600)
	host, port, _ := strings.Cut(e.in.Addr(), ":")
	if out, err := exec.Command("storescu", "-aec", e.rt.Config.DICOM.AE, host, port, p).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	ct, body := multipartBody(t, instance(t, synth.Options{Seed: 30, Rows: 4, Columns: 4, SOPInstanceUID: synth.DerivedUID(30, "b")}))
	if resp, rb := e.post(t, "/studies", ct, body); resp.StatusCode != 200 {
		t.Fatalf("STOW-RS: %d %s", resp.StatusCode, rb)
	}
	_, qb := e.get(t, "/studies?StudyInstanceUID="+synth.DerivedUID(30, "study"), "")
	if sets := decodeArray(t, qb); len(sets) != 1 || sets[0].String(0x00201208) != "2" {
		t.Errorf("study after C-STORE + STOW-RS: %s", qb)
	}
}

func TestWADOURI(t *testing.T) {
	f := newFixture(t, dicomweb.Options{})
	q := "/wado?requestType=WADO&studyUID=" + f.studyA + "&seriesUID=" + f.seriesA + "&objectUID=" + f.instA1
	resp, body := f.get(t, q+"&contentType=application/dicom", "")
	// WADO-URI returns the object as stored (PS3.18 §9.1.2.2.4 leaves the
	// syntax to the server unless transferSyntax is given).
	if resp.StatusCode != 200 || !sameDataSet(t, body, f.fileA1) {
		t.Errorf("application/dicom: %d", resp.StatusCode)
	}
	resp, body = f.get(t, q, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("default: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
		t.Error(err)
	}
	for path, status := range map[string]int{
		"/wado?requestType=WADO&studyUID=x&seriesUID=y&objectUID=z": 400,
		"/wado?studyUID=" + f.studyA:                                400,
		q + "&contentType=text/html":                                406,
		"/wado?requestType=WADO&studyUID=" + f.studyA + "&seriesUID=" + f.seriesA + "&objectUID=1.2.3": 404,
	} {
		if resp, _ := f.get(t, path, ""); resp.StatusCode != status {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, status)
		}
	}
}

func TestCORS(t *testing.T) {
	e := start(t, dicomweb.Options{CORSOrigins: []string{"https://viewer.example.org"}})
	req, _ := http.NewRequest(http.MethodOptions, e.base+"/studies", nil)
	req.Header.Set("Origin", "https://viewer.example.org")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "accept, authorization")
	resp, _ := e.do(t, req)
	if resp.StatusCode != http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://viewer.example.org" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		resp.Header.Get("Access-Control-Allow-Headers") != "accept, authorization" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ = http.NewRequest(http.MethodGet, e.base+"/studies", nil)
	req.Header.Set("Origin", "https://viewer.example.org")
	resp, _ = e.do(t, req)
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://viewer.example.org" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Content-Type") {
		t.Errorf("simple request headers: %v", resp.Header)
	}
	req.Header.Set("Origin", "https://evil.example.com")
	resp, _ = e.do(t, req)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("origin not in the list allowed")
	}
	any := start(t, dicomweb.Options{CORSOrigins: []string{"*"}})
	req, _ = http.NewRequest(http.MethodGet, any.base+"/studies", nil)
	req.Header.Set("Origin", "https://anything.example")
	if resp, _ := any.do(t, req); resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("wildcard origin: %v", resp.Header)
	}
}

// sameDataSet reports whether two Part 10 files hold the same data set
// (the archive writes its own File Meta Information).
func sameDataSet(t *testing.T, a, b []byte) bool {
	t.Helper()
	ds := func(f []byte) []byte {
		m, err := dicomfile.ReadFileMeta(bufio.NewReader(bytes.NewReader(f)))
		if err != nil {
			t.Fatalf("not a Part 10 file: %v", err)
		}
		return f[m.DataSetOffset():]
	}
	return bytes.Equal(ds(a), ds(b))
}

// TestBulkDataNested builds an instance from DICOM JSON (dicomjson.Write),
// stores it with STOW-RS and follows the BulkDataURIs its metadata gives
// for a top-level OB value and for a binary value inside a sequence item.
func TestBulkDataNested(t *testing.T) {
	e := start(t, dicomweb.Options{})
	study, series, sop := dicomfile.NewUID(), dicomfile.NewUID(), dicomfile.NewUID()
	const sopClass = "1.2.840.10008.5.1.4.1.1.7" // Secondary Capture Image Storage
	blob := bytes.Repeat([]byte{1, 2, 3, 4}, 600)
	ds := dicomjson.DataSet{
		0x00080016: {VR: "UI", Strings: []string{sopClass}},
		0x00080018: {VR: "UI", Strings: []string{sop}},
		0x00100010: {VR: "PN", PersonNames: []dicomjson.PersonName{{Alphabetic: "JSON^BUILT"}}},
		0x0020000D: {VR: "UI", Strings: []string{study}},
		0x0020000E: {VR: "UI", Strings: []string{series}},
		0x00420011: {VR: "OB", InlineBinary: blob}, // Encapsulated Document
		0x00400275: {VR: "SQ", Items: []dicomjson.DataSet{{ // Request Attributes Sequence
			0x00660023: {VR: "OW", InlineBinary: []byte{9, 8, 7, 6}},
		}}},
	}
	var file bytes.Buffer
	if _, err := dicomfile.WriteFileMeta(&file, dicomfile.FileMeta{MediaStorageSOPClassUID: sopClass, MediaStorageSOPInstanceUID: sop,
		TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian, ImplementationClassUID: "2.25.1"}); err != nil {
		t.Fatal(err)
	}
	if err := dicomjson.Write(&file, ds); err != nil {
		t.Fatal(err)
	}
	ct, body := multipartBody(t, file.Bytes())
	if resp, rb := e.post(t, "/studies/"+study, ct, body); resp.StatusCode != 200 {
		t.Fatalf("STOW-RS: %d %s", resp.StatusCode, rb)
	}
	inst := "/studies/" + study + "/series/" + series + "/instances/" + sop
	_, mb := e.get(t, inst+"/metadata", "")
	md := decodeArray(t, mb)[0]
	if md.String(0x00100010) != "JSON^BUILT" {
		t.Errorf("metadata: %s", mb)
	}
	for _, c := range []struct {
		uri  string
		want []byte
	}{
		{md[0x00420011].BulkDataURI, blob},
		{md[0x00400275].Items[0][0x00660023].BulkDataURI, []byte{9, 8, 7, 6}},
	} {
		if c.uri == "" {
			t.Fatalf("no BulkDataURI in %s", mb)
		}
		u, _ := url.Parse(c.uri)
		resp, b := e.get(t, strings.TrimPrefix(u.Path, dicomweb.BasePath), "")
		parts := readMultipart(t, resp, b)
		if len(parts) != 1 || !bytes.Equal(parts[0].body, c.want) {
			t.Errorf("%s: got %d parts", c.uri, len(parts))
		}
	}
	if resp, _ := e.get(t, inst+"/bulkdata/00400275/5/00660023", ""); resp.StatusCode != 404 {
		t.Errorf("missing item: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.get(t, inst+"/frames/1", ""); resp.StatusCode != 404 {
		t.Errorf("frames of an instance without pixels: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.get(t, "/studies?&includefield=StudyDescription", ""); resp.StatusCode != 200 {
		t.Errorf("empty query key: %d, want 200", resp.StatusCode)
	}
}

// TestTranscodeImplicitToExplicit converts an instance with nested
// sequences to Implicit VR Little Endian with DCMTK's dcmconv, stores it,
// and checks that the default WADO-RS retrieve (Explicit VR Little Endian)
// carries the same data set, as dcmdump and the JSON model see it.
func TestTranscodeImplicitToExplicit(t *testing.T) {
	for _, tool := range []string{"dcmconv", "dcmdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s (DCMTK) not installed", tool)
		}
	}
	study, series, sop := dicomfile.NewUID(), dicomfile.NewUID(), dicomfile.NewUID()
	const sopClass = "1.2.840.10008.5.1.4.1.1.7"
	ds := dicomjson.DataSet{
		0x00080016: {VR: "UI", Strings: []string{sopClass}},
		0x00080018: {VR: "UI", Strings: []string{sop}},
		0x00100010: {VR: "PN", PersonNames: []dicomjson.PersonName{{Alphabetic: "TRANS^CODE"}}},
		0x0020000D: {VR: "UI", Strings: []string{study}},
		0x0020000E: {VR: "UI", Strings: []string{series}},
		0x00280010: {VR: "US", Strings: []string{"2"}},
		0x00400275: {VR: "SQ", Items: []dicomjson.DataSet{
			{0x00401001: {VR: "SH", Strings: []string{"RP1"}}, 0x00400008: {VR: "SQ", Items: []dicomjson.DataSet{{0x00080100: {VR: "SH", Strings: []string{"CODE"}}}}}},
			{},
		}},
		0x00181063: {VR: "DS", Strings: []string{"33.3"}},
		0x00420011: {VR: "OB", InlineBinary: bytes.Repeat([]byte{7}, 70000)}, // too long for a 16-bit length
	}
	dir := t.TempDir()
	var file bytes.Buffer
	dicomfile.WriteFileMeta(&file, dicomfile.FileMeta{MediaStorageSOPClassUID: sopClass, MediaStorageSOPInstanceUID: sop,
		TransferSyntaxUID: dicomfile.ExplicitVRLittleEndian, ImplementationClassUID: "2.25.1"})
	if err := dicomjson.Write(&file, ds); err != nil {
		t.Fatal(err)
	}
	explicit, implicit := filepath.Join(dir, "e.dcm"), filepath.Join(dir, "i.dcm")
	os.WriteFile(explicit, file.Bytes(), 0o600)
	if out, err := exec.Command("dcmconv", "+ti", explicit, implicit).CombinedOutput(); err != nil {
		t.Fatalf("dcmconv: %v\n%s", err, out)
	}
	implicitBytes, _ := os.ReadFile(implicit)
	e := start(t, dicomweb.Options{})
	e.store(t, implicitBytes)
	resp, body := e.get(t, "/studies/"+study+"/series/"+series+"/instances/"+sop, "application/dicom")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/dicom; transfer-syntax="+dicomfile.ExplicitVRLittleEndian {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	got := filepath.Join(dir, "got.dcm")
	os.WriteFile(got, body, 0o600)
	out, err := exec.Command("dcmdump", "+L", got).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "LittleEndianExplicit") || !strings.Contains(string(out), "CODE") {
		t.Fatalf("dcmdump of the transcoded file: %v\n%s", err, out)
	}
	meta, err := dicomfile.ReadFileMeta(bufio.NewReader(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	h, err := dicomfile.ParseHeaderWithOptions(bytes.NewReader(body[meta.DataSetOffset():]), meta.TransferSyntaxUID, dicomfile.ParseOptions{KeepElements: true, BulkDataThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	back, err := dicomjson.FromElements(h.Elements, dicomjson.DecodeOptions{TransferSyntaxUID: meta.TransferSyntaxUID, BulkDataThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	delete(back, 0x00080005)
	if want, got := string(ds.AppendJSON(nil)), string(back.AppendJSON(nil)); want != got {
		t.Errorf("data set changed:\nwant %.600s\n got %.600s", want, got)
	}
}
