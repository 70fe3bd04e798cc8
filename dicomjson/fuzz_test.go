package dicomjson

import (
	"os"
	"testing"
)

// FuzzUnmarshal checks that the reader never panics and that whatever it
// accepts survives a write and a second read unchanged, and can be
// encoded to binary or refused with an error.
func FuzzUnmarshal(f *testing.F) {
	if b, err := os.ReadFile("testdata/sample.json"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		`{}`,
		`{"00100010":{"vr":"PN","Value":[{"Alphabetic":"DOE^JANE"},null]}}`,
		`{"00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2"]}}]}}`,
		`{"7FE00010":{"vr":"OW","InlineBinary":"AAAA"}}`,
		`{"00280010":{"vr":"US","Value":[1,2]},"00200013":{"vr":"IS","Value":["12"]}}`,
		`{"00280009":{"vr":"AT","Value":["00181063"]},"00720076":{"vr":"FD","Value":[1e308]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ds, err := Unmarshal(data)
		if err != nil {
			return
		}
		out := ds.AppendJSON(nil)
		ds2, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("own output rejected: %v\n%s", err, out)
		}
		if out2 := ds2.AppendJSON(nil); string(out2) != string(out) {
			t.Fatalf("second write differs:\n%s\n%s", out, out2)
		}
		AppendExplicitLE(nil, ds)
	})
}
