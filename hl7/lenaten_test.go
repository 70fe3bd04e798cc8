package hl7

import (
	"fmt"
	"strings"
	"testing"

	lenaten "github.com/lenaten/hl7"
)

// TestAgreesWithLenatenHL7 cross-checks field and component splitting
// against github.com/lenaten/hl7 on the inputs that library handles: ASCII
// text, CR segment ends, no escape sequences. (Outside that subset it
// misplaces fields after multi-byte UTF-8 characters, skips the character
// after an escape character so "\T\|" swallows a field separator, treats
// LF as the end of the message and a NUL byte as end of input; see the
// package documentation.)
func TestAgreesWithLenatenHL7(t *testing.T) {
	for _, file := range []string{"orm_o01_v231.hl7", "omi_o23_v251.hl7"} {
		t.Run(file, func(t *testing.T) {
			raw := mustRead(t, file)
			ours, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			theirs := lenaten.NewMessage(raw)
			if err := theirs.Parse(); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			compared := 0
			for _, seg := range ours.All() {
				if seen[seg.Name()] { // lenaten's Find reads the first occurrence
					continue
				}
				seen[seg.Name()] = true
				for n := 1; n <= seg.Len(); n++ {
					loc := fmt.Sprintf("%s.%d", seg.Name(), n)
					want, err := theirs.Find(loc)
					if err != nil {
						t.Fatalf("lenaten Find(%s): %v", loc, err)
					}
					// lenaten leaves the segment terminator on the last field.
					want = strings.TrimSuffix(want, "\r")
					reps := seg.Repetitions(n)
					got := ""
					if len(reps) > 0 {
						got = reps[0].Raw()
					}
					if got != want {
						t.Errorf("%s: ours %q, lenaten %q", loc, got, want)
					}
					compared++
					if len(reps) == 0 || seg.Name() == "MSH" && n <= 2 {
						continue
					}
					for c := 1; c <= len(reps[0].Components()); c++ {
						w, _ := theirs.Find(fmt.Sprintf("%s.%d.%d", seg.Name(), n, c-1)) // 0-based there
						if g := seg.Component(n, c); g != strings.TrimSuffix(w, "\r") {
							t.Errorf("%s-%d.%d: ours %q, lenaten %q", seg.Name(), n, c, g, w)
						}
						compared++
					}
				}
			}
			if compared < 30 {
				t.Fatalf("only %d values compared", compared)
			}
		})
	}
}
