package dicomfile_test

import (
	"strings"
	"testing"

	"github.com/suyashkumar/dicom/pkg/uid"

	"github.com/imaginghub/imaginghub/dicomfile"
)

func TestValidUID(t *testing.T) {
	tests := []struct {
		uid  string
		want bool
	}{
		{"1.2.840.10008.1.2", true},
		{"0", true},
		{"2.25.0", true},
		{"1.2.0.3", true},
		{"2.25." + strings.Repeat("9", 59), true},  // 64 characters
		{"2.25." + strings.Repeat("9", 60), false}, // 65 characters
		{"", false},
		{"1.2.", false},
		{".1.2", false},
		{"1..2", false},
		{"1.02", false},
		{"01.2", false},
		{"1.2a", false},
		{"1.2\x00", false},
		{"1.2 ", false},
		{"-1.2", false},
	}
	for _, tt := range tests {
		if got := dicomfile.ValidUID(tt.uid); got != tt.want {
			t.Errorf("ValidUID(%q) = %v, want %v", tt.uid, got, tt.want)
		}
	}
}

func TestNewUID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		u := dicomfile.NewUID()
		if !strings.HasPrefix(u, "2.25.") || !dicomfile.ValidUID(u) {
			t.Fatalf("NewUID() = %q, not a valid 2.25 UID", u)
		}
		if seen[u] {
			t.Fatalf("NewUID() repeated %q", u)
		}
		seen[u] = true
	}
}

func TestTransferSyntaxTable(t *testing.T) {
	tests := []struct {
		uid                                  string
		explicit, bigEndian, encaps, deflate bool
		storage                              bool
	}{
		{dicomfile.ImplicitVRLittleEndian, false, false, false, false, true},
		{dicomfile.ExplicitVRLittleEndian, true, false, false, false, true},
		{dicomfile.ExplicitVRBigEndian, true, true, false, false, true},
		{dicomfile.DeflatedExplicitVRLittleEndian, true, false, false, true, true},
		{dicomfile.JPEGBaseline8Bit, true, false, true, false, true},
		{dicomfile.JPEGLSLossless, true, false, true, false, true},
		{dicomfile.JPEG2000, true, false, true, false, true},
		{dicomfile.RLELossless, true, false, true, false, true},
		{dicomfile.HEVCM10P51, true, false, true, false, true},
		{dicomfile.HTJ2KLossless, true, false, true, false, true},
		{dicomfile.JPIPReferenced, true, false, false, false, false},
		{dicomfile.JPIPReferencedDeflate, true, false, false, true, false},
	}
	for _, tt := range tests {
		ts, ok := dicomfile.LookupTransferSyntax(tt.uid + "\x00")
		if !ok {
			t.Errorf("%s unknown", tt.uid)
			continue
		}
		big := ts.ByteOrder.String() == "BigEndian"
		if ts.ExplicitVR != tt.explicit || big != tt.bigEndian || ts.Encapsulated != tt.encaps || ts.Deflated != tt.deflate {
			t.Errorf("%s (%s) = %+v", tt.uid, ts.Name, ts)
		}
		if got := dicomfile.IsSupportedForStorage(tt.uid); got != tt.storage {
			t.Errorf("IsSupportedForStorage(%s) = %v", tt.uid, got)
		}
	}
	if dicomfile.IsSupportedForStorage("1.2.3.4.5") {
		t.Error("an unknown transfer syntax is supported")
	}
	// Names agree with the PS3.6 dictionary shipped with the DICOM library.
	for _, ts := range dicomfile.TransferSyntaxes() {
		if !dicomfile.ValidUID(ts.UID) {
			t.Errorf("invalid UID %q", ts.UID)
		}
		info, err := uid.Lookup(ts.UID)
		if err == nil && info.Type != uid.TypeTransferSyntax {
			t.Errorf("%s is a %s, not a transfer syntax", ts.UID, info.Type)
		}
	}
}

func TestStorageSOPClasses(t *testing.T) {
	classes := dicomfile.StorageSOPClasses()
	if len(classes) < 150 {
		t.Errorf("only %d storage SOP classes", len(classes))
	}
	for u, name := range classes {
		if !dicomfile.ValidUID(u) || !strings.Contains(name, "Storage") {
			t.Errorf("bad entry %q: %q", u, name)
		}
		// Where the library's PS3.6 dictionary knows the UID, it must be
		// a SOP class of the same name.
		if info, err := uid.Lookup(u); err == nil {
			if info.Type != uid.TypeSOPClass || info.Name != name {
				t.Errorf("%s: %q, dictionary says %q (%s)", u, name, info.Name, info.Type)
			}
		}
	}
	for _, u := range []string{
		"1.2.840.10008.5.1.4.1.1.2",        // CT
		"1.2.840.10008.5.1.4.1.1.4",        // MR
		"1.2.840.10008.5.1.4.1.1.1.2",      // MG for presentation
		"1.2.840.10008.5.1.4.1.1.13.1.3",   // breast tomosynthesis
		"1.2.840.10008.5.1.4.1.1.66.4",     // segmentation
		"1.2.840.10008.5.1.4.1.1.88.59",    // KOS
		"1.2.840.10008.5.1.4.1.1.104.1",    // encapsulated PDF
		"1.2.840.10008.5.1.4.1.1.77.1.6",   // whole slide
		"1.2.840.10008.5.1.4.1.1.481.5",    // RT plan
		"1.2.840.10008.5.1.4.1.1.30",       // parametric map
		"1.2.840.10008.5.1.4.1.1.11.1",     // GSPS
		"1.2.840.10008.5.1.4.1.1.6.2",      // enhanced US volume
		"1.2.840.10008.5.1.4.1.1.7.4",      // MF true color SC
		"1.2.840.10008.5.1.4.1.1.77.1.1.1", // video endoscopic
	} {
		if _, ok := dicomfile.StorageSOPClassName(u); !ok {
			t.Errorf("%s missing", u)
		}
	}
	if _, ok := dicomfile.StorageSOPClassName("1.2.840.10008.1.1"); ok {
		t.Error("Verification listed as storage")
	}
}
