package dicomfile

import "encoding/binary"

// Transfer Syntax UIDs (PS3.6 Annex A, PS3.5 §10 and Annex A).
const (
	ImplicitVRLittleEndian                   = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian                   = "1.2.840.10008.1.2.1"
	EncapsulatedUncompressedExplicitVRLittle = "1.2.840.10008.1.2.1.98"
	DeflatedExplicitVRLittleEndian           = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian                      = "1.2.840.10008.1.2.2"
	JPEGBaseline8Bit                         = "1.2.840.10008.1.2.4.50"
	JPEGExtended12Bit                        = "1.2.840.10008.1.2.4.51"
	JPEGLossless                             = "1.2.840.10008.1.2.4.57"
	JPEGLosslessSV1                          = "1.2.840.10008.1.2.4.70"
	JPEGLSLossless                           = "1.2.840.10008.1.2.4.80"
	JPEGLSNearLossless                       = "1.2.840.10008.1.2.4.81"
	JPEG2000Lossless                         = "1.2.840.10008.1.2.4.90"
	JPEG2000                                 = "1.2.840.10008.1.2.4.91"
	JPEG2000MCLossless                       = "1.2.840.10008.1.2.4.92"
	JPEG2000MC                               = "1.2.840.10008.1.2.4.93"
	JPIPReferenced                           = "1.2.840.10008.1.2.4.94"
	JPIPReferencedDeflate                    = "1.2.840.10008.1.2.4.95"
	MPEG2MPML                                = "1.2.840.10008.1.2.4.100"
	MPEG2MPMLF                               = "1.2.840.10008.1.2.4.100.1"
	MPEG2MPHL                                = "1.2.840.10008.1.2.4.101"
	MPEG2MPHLF                               = "1.2.840.10008.1.2.4.101.1"
	MPEG4HP41                                = "1.2.840.10008.1.2.4.102"
	MPEG4HP41F                               = "1.2.840.10008.1.2.4.102.1"
	MPEG4HP41BD                              = "1.2.840.10008.1.2.4.103"
	MPEG4HP41BDF                             = "1.2.840.10008.1.2.4.103.1"
	MPEG4HP422D                              = "1.2.840.10008.1.2.4.104"
	MPEG4HP422DF                             = "1.2.840.10008.1.2.4.104.1"
	MPEG4HP423D                              = "1.2.840.10008.1.2.4.105"
	MPEG4HP423DF                             = "1.2.840.10008.1.2.4.105.1"
	MPEG4HP42STEREO                          = "1.2.840.10008.1.2.4.106"
	MPEG4HP42STEREOF                         = "1.2.840.10008.1.2.4.106.1"
	HEVCMP51                                 = "1.2.840.10008.1.2.4.107"
	HEVCM10P51                               = "1.2.840.10008.1.2.4.108"
	JPEGXLLossless                           = "1.2.840.10008.1.2.4.110"
	JPEGXLJPEGRecompression                  = "1.2.840.10008.1.2.4.111"
	JPEGXL                                   = "1.2.840.10008.1.2.4.112"
	HTJ2KLossless                            = "1.2.840.10008.1.2.4.201"
	HTJ2KLosslessRPCL                        = "1.2.840.10008.1.2.4.202"
	HTJ2K                                    = "1.2.840.10008.1.2.4.203"
	JPIPHTJ2KReferenced                      = "1.2.840.10008.1.2.4.204"
	JPIPHTJ2KReferencedDeflate               = "1.2.840.10008.1.2.4.205"
	RLELossless                              = "1.2.840.10008.1.2.5"
)

// TransferSyntax describes how a data set is encoded (PS3.5 §10).
type TransferSyntax struct {
	UID  string
	Name string
	// ExplicitVR is false only for Implicit VR Little Endian (PS3.5 §7.1.3).
	ExplicitVR bool
	// ByteOrder is binary.BigEndian only for the retired Explicit VR Big
	// Endian (PS3.5 §7.3); every other transfer syntax is little endian.
	ByteOrder binary.ByteOrder
	// Encapsulated means Pixel Data is a sequence of fragments (PS3.5 §A.4).
	Encapsulated bool
	// Deflated means the whole data set is compressed with deflate
	// (RFC 1951) after encoding (PS3.5 §A.5).
	Deflated bool
	// Retired transfer syntaxes may still be received from older equipment.
	Retired bool
	// Referenced means the pixel data is not in the data set but fetched
	// from a JPIP server (PS3.5 §A.6, §A.7).
	Referenced bool
}

// transferSyntaxes is the table behind LookupTransferSyntax. Every
// compressed syntax encodes the data set itself in Explicit VR Little Endian
// (PS3.5 §A.4).
var transferSyntaxes = func() map[string]TransferSyntax {
	le := binary.LittleEndian
	list := []TransferSyntax{
		{UID: ImplicitVRLittleEndian, Name: "Implicit VR Little Endian", ByteOrder: le},
		{UID: ExplicitVRLittleEndian, Name: "Explicit VR Little Endian", ExplicitVR: true, ByteOrder: le},
		{UID: EncapsulatedUncompressedExplicitVRLittle, Name: "Encapsulated Uncompressed Explicit VR Little Endian", ExplicitVR: true, ByteOrder: le, Encapsulated: true},
		{UID: DeflatedExplicitVRLittleEndian, Name: "Deflated Explicit VR Little Endian", ExplicitVR: true, ByteOrder: le, Deflated: true},
		{UID: ExplicitVRBigEndian, Name: "Explicit VR Big Endian", ExplicitVR: true, ByteOrder: binary.BigEndian, Retired: true},
		{UID: JPEGBaseline8Bit, Name: "JPEG Baseline (Process 1)"},
		{UID: JPEGExtended12Bit, Name: "JPEG Extended (Process 2 & 4)"},
		{UID: JPEGLossless, Name: "JPEG Lossless, Non-Hierarchical (Process 14)"},
		{UID: JPEGLosslessSV1, Name: "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])"},
		{UID: JPEGLSLossless, Name: "JPEG-LS Lossless Image Compression"},
		{UID: JPEGLSNearLossless, Name: "JPEG-LS Lossy (Near-Lossless) Image Compression"},
		{UID: JPEG2000Lossless, Name: "JPEG 2000 Image Compression (Lossless Only)"},
		{UID: JPEG2000, Name: "JPEG 2000 Image Compression"},
		{UID: JPEG2000MCLossless, Name: "JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)"},
		{UID: JPEG2000MC, Name: "JPEG 2000 Part 2 Multi-component Image Compression"},
		{UID: JPIPReferenced, Name: "JPIP Referenced", Referenced: true},
		{UID: JPIPReferencedDeflate, Name: "JPIP Referenced Deflate", Referenced: true, Deflated: true},
		{UID: MPEG2MPML, Name: "MPEG2 Main Profile / Main Level"},
		{UID: MPEG2MPMLF, Name: "Fragmentable MPEG2 Main Profile / Main Level"},
		{UID: MPEG2MPHL, Name: "MPEG2 Main Profile / High Level"},
		{UID: MPEG2MPHLF, Name: "Fragmentable MPEG2 Main Profile / High Level"},
		{UID: MPEG4HP41, Name: "MPEG-4 AVC/H.264 High Profile / Level 4.1"},
		{UID: MPEG4HP41F, Name: "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1"},
		{UID: MPEG4HP41BD, Name: "MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1"},
		{UID: MPEG4HP41BDF, Name: "Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1"},
		{UID: MPEG4HP422D, Name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video"},
		{UID: MPEG4HP422DF, Name: "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video"},
		{UID: MPEG4HP423D, Name: "MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video"},
		{UID: MPEG4HP423DF, Name: "Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video"},
		{UID: MPEG4HP42STEREO, Name: "MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2"},
		{UID: MPEG4HP42STEREOF, Name: "Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2"},
		{UID: HEVCMP51, Name: "HEVC/H.265 Main Profile / Level 5.1"},
		{UID: HEVCM10P51, Name: "HEVC/H.265 Main 10 Profile / Level 5.1"},
		{UID: JPEGXLLossless, Name: "JPEG XL Lossless"},
		{UID: JPEGXLJPEGRecompression, Name: "JPEG XL JPEG Recompression"},
		{UID: JPEGXL, Name: "JPEG XL"},
		{UID: HTJ2KLossless, Name: "High-Throughput JPEG 2000 Image Compression (Lossless Only)"},
		{UID: HTJ2KLosslessRPCL, Name: "High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)"},
		{UID: HTJ2K, Name: "High-Throughput JPEG 2000 Image Compression"},
		{UID: JPIPHTJ2KReferenced, Name: "JPIP HTJ2K Referenced", Referenced: true},
		{UID: JPIPHTJ2KReferencedDeflate, Name: "JPIP HTJ2K Referenced Deflate", Referenced: true, Deflated: true},
		{UID: RLELossless, Name: "RLE Lossless"},
	}
	m := make(map[string]TransferSyntax, len(list))
	for _, ts := range list {
		if ts.ByteOrder == nil {
			// A compressed or referenced syntax: the data set is
			// Explicit VR Little Endian and, unless referenced, Pixel
			// Data is encapsulated (PS3.5 §A.4).
			ts.ExplicitVR = true
			ts.ByteOrder = le
			ts.Encapsulated = !ts.Referenced
		}
		m[ts.UID] = ts
	}
	return m
}()

// LookupTransferSyntax returns the description of a known transfer syntax.
// Trailing NUL or space padding of uid is ignored.
func LookupTransferSyntax(uid string) (TransferSyntax, bool) {
	ts, ok := transferSyntaxes[trimUID(uid)]
	return ts, ok
}

// TransferSyntaxes returns every known transfer syntax, in no order.
func TransferSyntaxes() []TransferSyntax {
	out := make([]TransferSyntax, 0, len(transferSyntaxes))
	for _, ts := range transferSyntaxes {
		out = append(out, ts)
	}
	return out
}

// IsSupportedForStorage reports whether an instance in transfer syntax ts
// can be stored and indexed by this package: the data set encoding is known
// and the pixel data, if any, is carried in the data set. The JPIP
// referenced syntaxes are refused because their pixel data lives on a
// server the archive does not control (PS3.5 §A.6).
func IsSupportedForStorage(ts string) bool {
	t, ok := LookupTransferSyntax(ts)
	return ok && !t.Referenced
}

// trimUID removes the NUL (or, from lenient writers, space) padding that
// brings a UI value to even length (PS3.5 §6.2, §9.1).
func trimUID(s string) string {
	for len(s) > 0 && (s[len(s)-1] == 0 || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
