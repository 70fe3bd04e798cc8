// Package synth writes deterministic synthetic DICOM Part 10 instances for
// tests and benchmarks. Every patient it names is fictitious.
//
// Pixel data is generated while it is written, a chunk at a time, so an
// instance of any size (up to the 4 GiB limit of a defined-length element)
// can be streamed to an io.Writer in constant memory.
package synth

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"

	"github.com/imaginghub/imaginghub/dicomfile"
)

// ImplementationClassUID identifies the writer of synthetic files in their
// file meta (PS3.7 §D.3.3.2). It lies under the 2.25 root (PS3.5 §B.2).
const ImplementationClassUID = "2.25.195806157829843128046185236398730147962"

// ImplementationVersionName is written in (0002,0013).
const ImplementationVersionName = "IMAGINGHUB_SYN"

// SOP classes used by the generator (PS3.4 Annex B).
const (
	CTImageStorage                        = "1.2.840.10008.5.1.4.1.1.2"
	MultiFrameGrayscaleWordSCImageStorage = "1.2.840.10008.5.1.4.1.1.7.3"
)

// Options describe a synthetic instance. The zero value gives a 512x512
// 16-bit single-frame CT in Implicit VR Little Endian with fixed synthetic
// identifiers; UIDs left empty are derived from Seed, so the same Options
// always give the same bytes.
type Options struct {
	Seed int64

	PatientName      string // default "DOE^JANE"
	PatientID        string // default "SYN0001"
	PatientBirthDate string // default "19700101"
	PatientSex       string // default "F"

	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	AccessionNumber   string // default "ACC0001"
	StudyID           string // default "1"
	StudyDate         string // default "20250101"
	StudyTime         string // default "080000"
	StudyDescription  string // default "CT CHEST"
	Modality          string // default "CT"
	SeriesNumber      int    // default 1
	InstanceNumber    int    // default 1
	InstitutionName   string // default "SYNTHETIC HOSPITAL"

	Rows, Columns int // default 512x512
	// Frames > 1 writes a Multi-frame Grayscale Word Secondary Capture
	// instance (PS3.3 §A.8.3), since CT Image Storage is single-frame.
	Frames int
	// TransferSyntaxUID is Implicit VR Little Endian (default) or
	// Explicit VR Little Endian.
	TransferSyntaxUID string
}

// ErrTooLarge means the pixel data would not fit a defined 32-bit length.
var ErrTooLarge = errors.New("synth: pixel data larger than 4 GiB")

func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.PatientName, "DOE^JANE")
	def(&o.PatientID, "SYN0001")
	def(&o.PatientBirthDate, "19700101")
	def(&o.PatientSex, "F")
	def(&o.StudyInstanceUID, DerivedUID(o.Seed, "study"))
	def(&o.SeriesInstanceUID, DerivedUID(o.Seed, "series"))
	def(&o.SOPInstanceUID, DerivedUID(o.Seed, "instance"))
	def(&o.AccessionNumber, "ACC0001")
	def(&o.StudyID, "1")
	def(&o.StudyDate, "20250101")
	def(&o.StudyTime, "080000")
	def(&o.StudyDescription, "CT CHEST")
	def(&o.Modality, "CT")
	def(&o.InstitutionName, "SYNTHETIC HOSPITAL")
	def(&o.TransferSyntaxUID, dicomfile.ImplicitVRLittleEndian)
	if o.SeriesNumber == 0 {
		o.SeriesNumber = 1
	}
	if o.InstanceNumber == 0 {
		o.InstanceNumber = 1
	}
	if o.Rows == 0 {
		o.Rows = 512
	}
	if o.Columns == 0 {
		o.Columns = 512
	}
	if o.Frames == 0 {
		o.Frames = 1
	}
	return o
}

// DerivedUID returns a deterministic UID under 2.25 made from a hash of
// seed and label, for reproducible test data.
func DerivedUID(seed int64, label string) string {
	h := sha256.Sum256([]byte(strconv.FormatInt(seed, 10) + "/" + label))
	var n big.Int
	n.SetBytes(h[:16])
	return "2.25." + n.String()
}

// PixelDataLength returns the length of the pixel data of o.
func (o Options) PixelDataLength() int64 {
	o = o.withDefaults()
	return int64(o.Rows) * int64(o.Columns) * int64(o.Frames) * 2
}

// CT writes a synthetic Part 10 instance to w and returns the number of
// bytes written: a CT image, or a multi-frame secondary capture when
// o.Frames > 1. Pixels are 16-bit unsigned, a gradient that changes with
// the frame number.
func CT(w io.Writer, o Options) (int64, error) {
	o = o.withDefaults()
	var enc encoder
	switch o.TransferSyntaxUID {
	case dicomfile.ImplicitVRLittleEndian:
	case dicomfile.ExplicitVRLittleEndian:
		enc.explicit = true
	default:
		return 0, fmt.Errorf("synth: transfer syntax %s not supported", o.TransferSyntaxUID)
	}
	if o.Rows <= 0 || o.Columns <= 0 || o.Rows > 65535 || o.Columns > 65535 || o.Frames <= 0 {
		return 0, fmt.Errorf("synth: bad dimensions %dx%dx%d", o.Rows, o.Columns, o.Frames)
	}
	pixelLen := o.PixelDataLength()
	if pixelLen >= 0xFFFFFFFE {
		return 0, ErrTooLarge
	}
	sopClass := CTImageStorage
	if o.Frames > 1 {
		sopClass = MultiFrameGrayscaleWordSCImageStorage
	}
	n, err := dicomfile.WriteFileMeta(w, dicomfile.FileMeta{
		MediaStorageSOPClassUID:      sopClass,
		MediaStorageSOPInstanceUID:   o.SOPInstanceUID,
		TransferSyntaxUID:            o.TransferSyntaxUID,
		ImplementationClassUID:       ImplementationClassUID,
		ImplementationVersionName:    ImplementationVersionName,
		SourceApplicationEntityTitle: "SYNTH",
	})
	if err != nil {
		return n, err
	}

	// Elements in ascending tag order (PS3.5 §7.1).
	e := &enc
	e.str(0x00080005, "CS", "ISO_IR 100")
	if o.Frames > 1 {
		e.str(0x00080008, "CS", `DERIVED\SECONDARY`)
	} else {
		e.str(0x00080008, "CS", `ORIGINAL\PRIMARY\AXIAL`)
	}
	e.str(0x00080016, "UI", sopClass)
	e.str(0x00080018, "UI", o.SOPInstanceUID)
	e.str(0x00080020, "DA", o.StudyDate)
	e.str(0x00080021, "DA", o.StudyDate)
	e.str(0x00080023, "DA", o.StudyDate)
	e.str(0x00080030, "TM", o.StudyTime)
	e.str(0x00080031, "TM", o.StudyTime)
	e.str(0x00080033, "TM", o.StudyTime)
	e.str(0x00080050, "SH", o.AccessionNumber)
	e.str(0x00080060, "CS", o.Modality)
	if o.Frames > 1 {
		e.str(0x00080064, "CS", "WSD") // Conversion Type: workstation (PS3.3 §C.8.6.1)
	}
	e.str(0x00080070, "LO", "IMAGINGHUB SYNTH")
	e.str(0x00080080, "LO", o.InstitutionName)
	e.str(0x00080090, "PN", "")
	e.str(0x00081010, "SH", "SYNTH01")
	e.str(0x00081030, "LO", o.StudyDescription)
	e.str(0x0008103E, "LO", "SYNTHETIC SERIES")
	e.str(0x00100010, "PN", o.PatientName)
	e.str(0x00100020, "LO", o.PatientID)
	e.str(0x00100030, "DA", o.PatientBirthDate)
	e.str(0x00100040, "CS", o.PatientSex)
	if o.Frames == 1 {
		e.str(0x00180050, "DS", "1.0") // Slice Thickness
		e.str(0x00180060, "DS", "120") // KVP
	}
	e.str(0x0020000D, "UI", o.StudyInstanceUID)
	e.str(0x0020000E, "UI", o.SeriesInstanceUID)
	e.str(0x00200010, "SH", o.StudyID)
	e.str(0x00200011, "IS", strconv.Itoa(o.SeriesNumber))
	e.str(0x00200013, "IS", strconv.Itoa(o.InstanceNumber))
	if o.Frames == 1 {
		e.str(0x00200032, "DS", `0\0\`+strconv.Itoa(o.InstanceNumber))
		e.str(0x00200037, "DS", `1\0\0\0\1\0`)
		e.str(0x00200052, "UI", DerivedUID(o.Seed, "frame-of-reference"))
	}
	e.us(0x00280002, 1) // Samples per Pixel
	e.str(0x00280004, "CS", "MONOCHROME2")
	if o.Frames > 1 {
		e.str(0x00280008, "IS", strconv.Itoa(o.Frames))
		e.at(0x00280009, 0x00181063) // Frame Increment Pointer: Frame Time
	}
	e.us(0x00280010, uint16(o.Rows))
	e.us(0x00280011, uint16(o.Columns))
	if o.Frames == 1 {
		e.str(0x00280030, "DS", `0.5\0.5`)
	}
	e.us(0x00280100, 16)
	e.us(0x00280101, 12)
	e.us(0x00280102, 11)
	e.us(0x00280103, 0)
	if o.Frames == 1 {
		e.str(0x00281050, "DS", "40")
		e.str(0x00281051, "DS", "400")
		e.str(0x00281052, "DS", "-1024")
		e.str(0x00281053, "DS", "1")
	}
	e.header(0x7FE00010, "OW", uint32(pixelLen))
	m, err := w.Write(e.buf)
	n += int64(m)
	if err != nil {
		return n, err
	}
	p, err := writePixels(w, o.Rows, o.Columns, o.Frames)
	return n + p, err
}

// writePixels streams the pixel values in 64 KiB chunks.
func writePixels(w io.Writer, rows, cols, frames int) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, 0, chunk)
	var n int64
	for f := 0; f < frames; f++ {
		for y := 0; y < rows; y++ {
			for x := 0; x < cols; x++ {
				// 12 bits stored (BitsStored above).
				v := uint16((x + y + 7*f) & 0x0FFF)
				buf = binary.LittleEndian.AppendUint16(buf, v)
				if len(buf) == chunk {
					m, err := w.Write(buf)
					n += int64(m)
					if err != nil {
						return n, err
					}
					buf = buf[:0]
				}
			}
		}
	}
	m, err := w.Write(buf)
	return n + int64(m), err
}

// WriteStudy writes n instances of one series into dir, named
// "<SOPInstanceUID>.dcm", and returns their paths. Instance i gets
// InstanceNumber i+1 and a SOP Instance UID derived from the series UID.
func WriteStudy(dir string, n int, o Options) ([]string, error) {
	o = o.withDefaults()
	paths := make([]string, 0, n)
	for i := range n {
		inst := o
		inst.InstanceNumber = i + 1
		inst.SOPInstanceUID = o.SeriesInstanceUID + "." + strconv.Itoa(i+1)
		if len(inst.SOPInstanceUID) > 64 {
			inst.SOPInstanceUID = DerivedUID(o.Seed, "instance/"+strconv.Itoa(i))
		}
		p := filepath.Join(dir, inst.SOPInstanceUID+".dcm")
		if err := writeFile(p, inst); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func writeFile(path string, o Options) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	if _, err := CT(bw, o); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// encoder appends elements in Implicit or Explicit VR Little Endian.
type encoder struct {
	explicit bool
	buf      []byte
}

func (e *encoder) header(t uint32, vr string, length uint32) {
	b := binary.LittleEndian.AppendUint16(e.buf, uint16(t>>16))
	b = binary.LittleEndian.AppendUint16(b, uint16(t))
	switch {
	case !e.explicit:
		b = binary.LittleEndian.AppendUint32(b, length)
	case vr == "OB" || vr == "OW" || vr == "SQ" || vr == "UN" || vr == "UT":
		b = append(b, vr...)
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, length)
	default:
		b = append(b, vr...)
		b = binary.LittleEndian.AppendUint16(b, uint16(length))
	}
	e.buf = b
}

// str appends a string value padded to even length: NUL for UI, space
// otherwise (PS3.5 §6.2).
func (e *encoder) str(t uint32, vr, s string) {
	e.header(t, vr, uint32(len(s)+len(s)&1))
	e.buf = append(e.buf, s...)
	if len(s)&1 == 1 {
		if vr == "UI" {
			e.buf = append(e.buf, 0)
		} else {
			e.buf = append(e.buf, ' ')
		}
	}
}

func (e *encoder) us(t uint32, v uint16) {
	e.header(t, "US", 2)
	e.buf = binary.LittleEndian.AppendUint16(e.buf, v)
}

func (e *encoder) at(t uint32, v uint32) {
	e.header(t, "AT", 4)
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(v>>16))
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(v))
}
