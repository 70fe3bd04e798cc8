// Package coerce serves reconciled patient and order attributes on
// retrieval (IHE RAD TF-2 §4.16 Patient Information Reconciliation: the
// Image Manager returns the corrected values), while the stored files stay
// byte for byte as received.
//
// Reader rewrites the values of a few top-level elements — Specific
// Character Set when it must be added, Accession Number, Patient's Name,
// Patient ID, Issuer of Patient ID, Patient's Birth Date and Patient's Sex —
// in a data set as it streams. Data sets are sorted by tag (PS3.5 §7.1), so
// only the elements up to (0010,0040) are looked at; everything after them,
// pixel data included, passes through untouched. The rewritten elements get
// new lengths; an element the data set lacks is inserted in tag order; the
// retired group lengths (0008,0000) and (0010,0000), which the new lengths
// would falsify, are dropped (PS3.5 §7.2).
//
// Implicit and Explicit VR Little Endian encodings (and the encapsulated
// syntaxes, whose data set is Explicit VR Little Endian) are rewritten.
// Deflated data sets (PS3.5 §A.5) and the retired Explicit VR Big Endian
// pass through unchanged: rewriting them would mean inflating and
// re-deflating or byte-swapping the whole stream, and no current modality
// sends them; their retrievals carry the values as received.
package coerce

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
)

// Values are the values retrievals serve in place of the stored ones. An
// empty field leaves the stored value as it is.
type Values struct {
	PatientName       string // (0010,0010) PN
	PatientID         string // (0010,0020) LO
	IssuerOfPatientID string // (0010,0021) LO
	PatientBirthDate  string // (0010,0030) DA
	PatientSex        string // (0010,0040) CS
	AccessionNumber   string // (0008,0050) SH
}

// Zero reports whether v changes nothing.
func (v Values) Zero() bool { return v == Values{} }

// Key identifies the values, for caches of rendered data sets.
func (v Values) Key() string {
	if v.Zero() {
		return ""
	}
	return strings.Join([]string{v.PatientName, v.PatientID, v.IssuerOfPatientID, v.PatientBirthDate, v.PatientSex, v.AccessionNumber}, "\x00")
}

// Tags of the coerced elements and of Specific Character Set.
var (
	TagSpecificCharacterSet = dicomfile.NewTag(0x0008, 0x0005)
	TagAccessionNumber      = dicomfile.NewTag(0x0008, 0x0050)
	TagPatientName          = dicomfile.NewTag(0x0010, 0x0010)
	TagPatientID            = dicomfile.NewTag(0x0010, 0x0020)
	TagIssuerOfPatientID    = dicomfile.NewTag(0x0010, 0x0021)
	TagPatientBirthDate     = dicomfile.NewTag(0x0010, 0x0030)
	TagPatientSex           = dicomfile.NewTag(0x0010, 0x0040)
)

type element struct {
	tag   dicomfile.Tag
	vr    string
	value string
}

// elements lists the replacements in tag order.
func (v Values) elements() []element {
	all := []element{
		{TagAccessionNumber, "SH", v.AccessionNumber},
		{TagPatientName, "PN", v.PatientName},
		{TagPatientID, "LO", v.PatientID},
		{TagIssuerOfPatientID, "LO", v.IssuerOfPatientID},
		{TagPatientBirthDate, "DA", v.PatientBirthDate},
		{TagPatientSex, "CS", v.PatientSex},
	}
	out := all[:0]
	for _, e := range all {
		if e.value != "" {
			out = append(out, e)
		}
	}
	return out
}

func (v Values) ascii() bool {
	for _, s := range []string{v.PatientName, v.PatientID, v.IssuerOfPatientID, v.PatientBirthDate, v.PatientSex, v.AccessionNumber} {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return false
			}
		}
	}
	return true
}

// Lookup returns the values kept for a study by reconciliation (table
// workflow_coercions); ok is false when the study has none.
func Lookup(ctx context.Context, q catalog.Querier, studyInstanceUID string) (v Values, ok bool, err error) {
	err = q.QueryRowContext(ctx, `SELECT patient_name, patient_id, issuer_of_patient_id, patient_birth_date, patient_sex,
 accession_number FROM workflow_coercions WHERE study_instance_uid = ?`, studyInstanceUID).
		Scan(&v.PatientName, &v.PatientID, &v.IssuerOfPatientID, &v.PatientBirthDate, &v.PatientSex, &v.AccessionNumber)
	if errors.Is(err, sql.ErrNoRows) {
		return Values{}, false, nil
	}
	if err != nil {
		return Values{}, false, fmt.Errorf("coerce: read values: %w", err)
	}
	return v, !v.Zero(), nil
}

// LookupCatalog is Lookup in a read transaction of c.
func LookupCatalog(ctx context.Context, c *catalog.Catalog, studyInstanceUID string) (v Values, ok bool, err error) {
	err = c.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		var e error
		v, ok, e = Lookup(ctx, tx, studyInstanceUID)
		return e
	})
	return v, ok, err
}

// Apply sets the values in a DICOM JSON data set (WADO-RS metadata).
func Apply(ds dicomjson.DataSet, v Values) {
	for _, e := range v.elements() {
		if e.vr == "PN" {
			ds[e.tag] = &dicomjson.Attribute{VR: "PN", PersonNames: []dicomjson.PersonName{dicomjson.ParsePersonName(e.value)}}
			continue
		}
		ds[e.tag] = &dicomjson.Attribute{VR: e.vr, Strings: []string{e.value}}
	}
	if !v.ascii() {
		if a, ok := ds[TagSpecificCharacterSet]; !ok || len(a.Strings) == 0 {
			ds[TagSpecificCharacterSet] = &dicomjson.Attribute{VR: "CS", Strings: []string{"ISO_IR 192"}}
		}
	}
}

// Supported reports whether Reader rewrites data sets of a transfer syntax.
func Supported(transferSyntaxUID string) bool {
	ts, ok := dicomfile.LookupTransferSyntax(transferSyntaxUID)
	return ok && !ts.Deflated && ts.ByteOrder != binary.BigEndian
}

// NewReader returns a reader of the data set r (without File Meta
// Information) encoded in transferSyntaxUID, with v's values in place of
// the stored ones. For zero values or an unsupported transfer syntax it
// returns r itself. A data set that cannot be parsed up to the coerced
// elements makes Read fail.
func NewReader(r io.Reader, transferSyntaxUID string, v Values) io.Reader {
	if v.Zero() || !Supported(transferSyntaxUID) {
		return r
	}
	ts, _ := dicomfile.LookupTransferSyntax(transferSyntaxUID)
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &reader{src: br, explicit: ts.ExplicitVR, v: v}
}

// maxPrefix bounds the bytes of elements before (0010,0040) buffered for
// the rewrite: far above any real header, it keeps a crafted stream from
// growing memory.
const maxPrefix = 8 << 20

// ErrPrefixTooLarge: the elements up to Patient's Sex exceed maxPrefix.
var ErrPrefixTooLarge = errors.New("coerce: header elements too large")

type reader struct {
	src      *bufio.Reader
	explicit bool
	v        Values
	out      io.Reader
	// charset is the data set's Specific Character Set as stored, or
	// "ISO_IR 192" once it has been declared by the rewrite.
	charset string
}

func (c *reader) Read(p []byte) (int, error) {
	if c.out == nil {
		prefix, err := c.rewrite()
		if err != nil {
			return 0, err
		}
		c.out = io.MultiReader(bytes.NewReader(prefix), c.src)
	}
	return c.out.Read(p)
}

const undefinedLength = 0xFFFFFFFF

var (
	tagItem          = dicomfile.NewTag(0xFFFE, 0xE000)
	tagItemDelim     = dicomfile.NewTag(0xFFFE, 0xE00D)
	tagSequenceDelim = dicomfile.NewTag(0xFFFE, 0xE0DD)
)

// longVR are the Explicit VRs with a 2-byte reserved field and a 4-byte
// length (PS3.5 Table 7.1-1).
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// rewrite reads the elements up to the last coerced tag and returns them
// re-encoded; the source is left at the first element it did not take.
func (c *reader) rewrite() ([]byte, error) {
	var out bytes.Buffer
	pending := c.v.elements()
	needCharset := !c.v.ascii()
	last := TagPatientSex
	for {
		hdr, err := c.src.Peek(4)
		if err == io.EOF && len(hdr) == 0 {
			break // data set ended: add what is missing
		}
		if err != nil {
			return nil, fmt.Errorf("coerce: %w", io.ErrUnexpectedEOF)
		}
		tag := dicomfile.NewTag(binary.LittleEndian.Uint16(hdr), binary.LittleEndian.Uint16(hdr[2:]))
		if needCharset && tag > TagSpecificCharacterSet {
			// No Specific Character Set before the first later element:
			// the default repertoire (ASCII) is a subset of UTF-8, so
			// declaring ISO_IR 192 keeps the other values valid.
			c.put(&out, element{TagSpecificCharacterSet, "CS", "ISO_IR 192"})
			needCharset = false
		}
		if tag > TagSpecificCharacterSet && c.charset == "" && !c.v.ascii() {
			c.charset = "ISO_IR 192"
		}
		for len(pending) > 0 && pending[0].tag < tag {
			c.put(&out, pending[0])
			pending = pending[1:]
		}
		if tag > last {
			break
		}
		start := out.Len()
		vr, length, err := c.header(&out)
		if err != nil {
			return nil, err
		}
		switch {
		case tag == TagSpecificCharacterSet && length != undefinedLength:
			needCharset = false
			vstart := out.Len()
			if err := c.value(&out, vr, length, c.explicit); err != nil {
				return nil, err
			}
			c.charset = strings.TrimRight(string(out.Bytes()[vstart:]), " \x00")
			if c.charset == "" {
				// An empty value is the default repertoire: declare
				// UTF-8 in its place when a value needs it.
				if !c.v.ascii() {
					out.Truncate(start)
					c.put(&out, element{TagSpecificCharacterSet, "CS", "ISO_IR 192"})
				}
			}
		case len(pending) > 0 && pending[0].tag == tag && length != undefinedLength:
			out.Truncate(start)
			if _, err := c.src.Discard(int(length)); err != nil {
				return nil, fmt.Errorf("coerce: %s: %w", tag, io.ErrUnexpectedEOF)
			}
			c.put(&out, pending[0])
			pending = pending[1:]
		case tag.Element() == 0 && (tag.Group() == 0x0008 || tag.Group() == 0x0010) && length != undefinedLength:
			out.Truncate(start) // group length, falsified by the rewrite
			if _, err := c.src.Discard(int(length)); err != nil {
				return nil, fmt.Errorf("coerce: %s: %w", tag, io.ErrUnexpectedEOF)
			}
		default:
			if err := c.value(&out, vr, length, c.explicit); err != nil {
				return nil, err
			}
		}
		if out.Len() > maxPrefix {
			return nil, ErrPrefixTooLarge
		}
	}
	if needCharset {
		c.put(&out, element{TagSpecificCharacterSet, "CS", "ISO_IR 192"})
		c.charset = "ISO_IR 192"
	}
	for _, e := range pending {
		c.put(&out, e)
	}
	return out.Bytes(), nil
}

// header copies one element header to out and returns its VR ("" in
// Implicit VR) and value length.
func (c *reader) header(out *bytes.Buffer) (string, uint32, error) {
	return readHeader(c.src, out, c.explicit)
}

func readHeader(src *bufio.Reader, out *bytes.Buffer, explicit bool) (string, uint32, error) {
	var b [12]byte
	if _, err := io.ReadFull(src, b[:8]); err != nil {
		return "", 0, fmt.Errorf("coerce: element header: %w", io.ErrUnexpectedEOF)
	}
	tag := dicomfile.NewTag(binary.LittleEndian.Uint16(b[:]), binary.LittleEndian.Uint16(b[2:]))
	// Items and delimiters have no VR in any encoding (PS3.5 §7.5).
	if !explicit || tag.Group() == 0xFFFE {
		out.Write(b[:8])
		return "", binary.LittleEndian.Uint32(b[4:]), nil
	}
	vr := string(b[4:6])
	if !longVR(vr) {
		out.Write(b[:8])
		return vr, uint32(binary.LittleEndian.Uint16(b[6:])), nil
	}
	if _, err := io.ReadFull(src, b[8:12]); err != nil {
		return "", 0, fmt.Errorf("coerce: element header: %w", io.ErrUnexpectedEOF)
	}
	out.Write(b[:12])
	return vr, binary.LittleEndian.Uint32(b[8:]), nil
}

// value copies an element's value to out: defined lengths as they are,
// undefined lengths (sequences; UN holding Implicit VR, PS3.5 §6.2.2) item
// by item up to the sequence delimiter.
func (c *reader) value(out *bytes.Buffer, vr string, length uint32, explicit bool) error {
	if length != undefinedLength {
		if int64(out.Len())+int64(length) > maxPrefix {
			return ErrPrefixTooLarge
		}
		if _, err := io.CopyN(out, c.src, int64(length)); err != nil {
			return fmt.Errorf("coerce: value: %w", io.ErrUnexpectedEOF)
		}
		return nil
	}
	if vr == "UN" {
		explicit = false
	}
	for {
		if out.Len() > maxPrefix {
			return ErrPrefixTooLarge
		}
		start := out.Len()
		_, n, err := readHeader(c.src, out, false)
		if err != nil {
			return err
		}
		b := out.Bytes()[start:]
		tag := dicomfile.NewTag(binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]))
		switch tag {
		case tagSequenceDelim:
			return nil
		case tagItem:
			if n != undefinedLength {
				if int64(out.Len())+int64(n) > maxPrefix {
					return ErrPrefixTooLarge
				}
				if _, err := io.CopyN(out, c.src, int64(n)); err != nil {
					return fmt.Errorf("coerce: item: %w", io.ErrUnexpectedEOF)
				}
				continue
			}
			if err := c.itemElements(out, explicit); err != nil {
				return err
			}
		default:
			return fmt.Errorf("coerce: %s inside a sequence: not an item", tag)
		}
	}
}

// itemElements copies the elements of an undefined-length item up to its
// delimiter.
func (c *reader) itemElements(out *bytes.Buffer, explicit bool) error {
	for {
		if out.Len() > maxPrefix {
			return ErrPrefixTooLarge
		}
		hdr, err := c.src.Peek(4)
		if err != nil {
			return fmt.Errorf("coerce: item: %w", io.ErrUnexpectedEOF)
		}
		tag := dicomfile.NewTag(binary.LittleEndian.Uint16(hdr), binary.LittleEndian.Uint16(hdr[2:]))
		vr, n, err := readHeader(c.src, out, explicit)
		if err != nil {
			return err
		}
		if tag == tagItemDelim {
			return nil
		}
		if err := c.value(out, vr, n, explicit); err != nil {
			return err
		}
	}
}

// put writes one element, its value padded to even length with a space
// (PS3.5 §6.2).
func (c *reader) put(out *bytes.Buffer, e element) {
	val := encode(e.value, c.charset)
	if len(val) > 0xFFFE {
		val = val[:0xFFFE] // a 16-bit length field (PS3.5 §7.1.2)
	}
	if len(val)%2 == 1 {
		val += " "
	}
	var b [8]byte
	binary.LittleEndian.PutUint16(b[:], e.tag.Group())
	binary.LittleEndian.PutUint16(b[2:], e.tag.Element())
	if c.explicit {
		b[4], b[5] = e.vr[0], e.vr[1]
		binary.LittleEndian.PutUint16(b[6:], uint16(len(val)))
	} else {
		binary.LittleEndian.PutUint32(b[4:], uint32(len(val)))
	}
	out.Write(b[:])
	out.WriteString(val)
}

// encode turns a UTF-8 value into the data set's character set (PS3.5
// §6.1.2.3): as is for ISO_IR 192 and plain ASCII, Latin-1 for ISO_IR 100
// where every character is in it. Characters the declared repertoire
// cannot hold become '?': the stored data set's other values are in that
// repertoire, so it cannot be redeclared.
func encode(v, charset string) string {
	ascii := true
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii || charset == "ISO_IR 192" {
		return v
	}
	var b strings.Builder
	for _, r := range v {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case charset == "ISO_IR 100" && r <= 0xFF:
			b.WriteByte(byte(r))
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}
