package rest

import (
	"net/http/httptest"
	"testing"
)

func TestPaging(t *testing.T) {
	for _, tc := range []struct {
		query         string
		limit, offset int
		ok            bool
	}{
		{"", 100, 0, true},
		{"limit=5&offset=10", 5, 10, true},
		{"limit=0", 0, 0, false},
		{"limit=1001", 0, 0, false},
		{"limit=x", 0, 0, false},
		{"offset=-1", 0, 0, false},
	} {
		l, o, err := Paging(httptest.NewRequest("GET", "/?"+tc.query, nil), 100, 1000)
		if (err == nil) != tc.ok || l != tc.limit || o != tc.offset {
			t.Errorf("%q: %d %d %v", tc.query, l, o, err)
		}
	}
}

func TestJSONAndLikePrefix(t *testing.T) {
	rec := httptest.NewRecorder()
	Error(rec, 404, "patient not found")
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != "{\"error\":\"patient not found\"}\n" {
		t.Fatalf("%d %q %q", rec.Code, rec.Header(), rec.Body)
	}
	if got := LikePrefix(`a_b%c\`); got != `a\_b\%c\\%` {
		t.Fatalf("LikePrefix %q", got)
	}
}
