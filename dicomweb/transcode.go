package dicomweb

import (
	"bufio"
	"fmt"
	"io"

	"github.com/imaginghub/imaginghub/dicomfile/tsconv"

	"github.com/imaginghub/imaginghub/blob"
	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/workflow/coerce"
)

// writeInstance writes a stored Part 10 file to w in transfer syntax ts:
// as stored, or, for an Implicit VR Little Endian file asked for in
// Explicit VR Little Endian (the WADO-RS default, PS3.18 §8.7.3.5.2),
// re-encoded element by element as it streams. Non-zero v are the
// reconciled values of the study, put in place of the stored ones as the
// data set streams (package workflow/coerce); the file is not changed.
func writeInstance(w io.Writer, b blob.Reader, ts string, v coerce.Values) error {
	br := bufio.NewReaderSize(io.NewSectionReader(b, 0, b.Size()), 64<<10)
	meta, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		return err
	}
	if !v.Zero() && coerce.Supported(meta.TransferSyntaxUID) {
		br = bufio.NewReaderSize(coerce.NewReader(br, meta.TransferSyntaxUID, v), 64<<10)
		if meta.TransferSyntaxUID == ts {
			if _, err := io.Copy(w, io.NewSectionReader(b, 0, meta.DataSetOffset())); err != nil {
				return err
			}
			_, err := io.Copy(w, br)
			return err
		}
	}
	if meta.TransferSyntaxUID == ts {
		if _, err := b.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(w, b)
		return err
	}
	if meta.TransferSyntaxUID != dicomfile.ImplicitVRLittleEndian || ts != dicomfile.ExplicitVRLittleEndian {
		return fmt.Errorf("dicomweb: cannot transcode %s to %s", meta.TransferSyntaxUID, ts)
	}
	meta.TransferSyntaxUID = ts
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := dicomfile.WriteFileMeta(bw, meta); err != nil {
		return err
	}
	if err := tsconv.ConvertLE(bw, br, true); err != nil {
		return err
	}
	return bw.Flush()
}

// canTranscode reports whether writeInstance can turn from into to.
func canTranscode(from, to string) bool {
	return from == to || from == dicomfile.ImplicitVRLittleEndian && to == dicomfile.ExplicitVRLittleEndian
}
