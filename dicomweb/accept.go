package dicomweb

import (
	"mime"

	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/imaginghub/imaginghub/dicomfile"
)

// mediaRange is one entry of an Accept header (RFC 9110 §12.5.1).
type mediaRange struct {
	typ    string // lower case, e.g. "multipart/related", "*/*"
	params map[string]string
	q      float64
}

// acceptable returns the media ranges of r's Accept headers, most
// preferred first; no Accept header means */* (RFC 9110 §12.5.1).
func acceptable(r *http.Request) []mediaRange {
	var out []mediaRange
	for _, h := range r.Header.Values("Accept") {
		for _, part := range splitOutsideQuotes(h, ',') {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			typ, params, err := mime.ParseMediaType(part)
			if err != nil {
				// Some clients send type=application/dicom unquoted with a
				// following parameter that trips the parser; take the type.
				typ = strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
				params = map[string]string{}
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
				delete(params, "q")
			}
			if q <= 0 {
				continue
			}
			out = append(out, mediaRange{typ: typ, params: params, q: q})
		}
	}
	if len(out) == 0 && len(r.Header.Values("Accept")) == 0 {
		return []mediaRange{{typ: "*/*", params: map[string]string{}, q: 1}}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].q > out[j].q })
	return out
}

func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// matches reports whether the range accepts the media type typ
// ("image/jpeg"): exactly, by "image/*" or by "*/*".
func (m mediaRange) matches(typ string) bool {
	if m.typ == "*/*" || m.typ == typ {
		return true
	}
	if strings.HasSuffix(m.typ, "/*") {
		return strings.HasPrefix(typ, strings.TrimSuffix(m.typ, "*"))
	}
	return false
}

// syntaxOK reports whether a transfer-syntax parameter (PS3.18 §8.7.3.5.2)
// allows the stored syntax ts: absent, "*" or equal.
func (m mediaRange) syntaxOK(ts string) bool {
	v, ok := m.params["transfer-syntax"]
	return !ok || v == "*" || v == ts
}

// negotiateJSON picks the DICOM JSON response of QIDO-RS and metadata
// (PS3.18 §8.7.2): application/dicom+json, or application/json, which
// many clients send.
func negotiateJSON(r *http.Request) (string, bool) {
	for _, m := range acceptable(r) {
		switch {
		case m.matches(MediaTypeDICOMJSON):
			return MediaTypeDICOMJSON, true
		case m.typ == "application/json":
			return "application/json", true
		case m.typ == MediaTypeMultipart && m.params["type"] == MediaTypeDICOMJSON:
			return MediaTypeDICOMJSON, true
		}
	}
	return "", false
}

// retrieveMode is how instances are sent.
type retrieveMode int

const (
	multipartDICOM retrieveMode = iota + 1 // multipart/related; type="application/dicom"
	singleDICOM                            // application/dicom, one instance
)

// negotiateRetrieve picks the representation of an instance retrieve
// (PS3.18 §10.4.1.1.1) and the transfer syntax asked for: the
// transfer-syntax parameter, "*" for the stored ones, or "" when absent,
// which means Explicit VR Little Endian (PS3.18 §8.7.3.5.2). ok is false
// when no acceptable range can be met for every stored syntax.
func negotiateRetrieve(r *http.Request, syntaxes []string, single bool) (mode retrieveMode, ts string, ok bool) {
	all := func(m mediaRange) bool {
		want, ok := m.params["transfer-syntax"]
		if !ok || want == "*" {
			return true
		}
		for _, st := range syntaxes {
			if !canTranscode(st, want) {
				return false
			}
		}
		return true
	}
	for _, m := range acceptable(r) {
		switch {
		case m.typ == "*/*" || m.typ == "multipart/*":
			return multipartDICOM, "", true
		case m.typ == MediaTypeMultipart:
			if t, ok := m.params["type"]; (!ok || t == MediaTypeDICOM || t == "*/*" || t == "application/*") && all(m) {
				return multipartDICOM, m.params["transfer-syntax"], true
			}
		case m.typ == MediaTypeDICOM && single && all(m):
			return singleDICOM, m.params["transfer-syntax"], true
		}
	}
	return 0, "", false
}

// targetSyntax is the syntax an instance stored in stored is sent in for
// the negotiated parameter want: the one asked for, the stored one for
// "*", and for no parameter Explicit VR Little Endian where the archive
// can produce it, else (compressed data, which is not decompressed) the
// stored syntax.
func targetSyntax(stored, want string) string {
	switch {
	case want == "*":
		return stored
	case want != "":
		return want
	case canTranscode(stored, dicomfile.ExplicitVRLittleEndian):
		return dicomfile.ExplicitVRLittleEndian
	}
	return stored
}

// negotiateParts checks an Accept for multipart/related parts of type
// partType (bulk data, frames) in transfer syntax ts.
func negotiateParts(r *http.Request, partType, ts string) bool {
	for _, m := range acceptable(r) {
		switch {
		case m.typ == "*/*" || m.typ == "multipart/*":
			return true
		case m.typ == MediaTypeMultipart:
			t, ok := m.params["type"]
			if !ok || t == "*/*" || (mediaRange{typ: t}).matches(partType) {
				if m.syntaxOK(ts) {
					return true
				}
			}
		}
	}
	return false
}

// negotiateImage picks the rendered media type (PS3.18 §8.7.4): JPEG
// unless PNG is preferred.
func negotiateImage(r *http.Request) (string, bool) {
	for _, m := range acceptable(r) {
		switch {
		case m.matches("image/jpeg"):
			return "image/jpeg", true
		case m.matches("image/png"):
			return "image/png", true
		}
	}
	return "", false
}
