// Package rest holds the few conventions every admin API of the hub
// shares: JSON bodies, errors as {"error": "..."}, and limit/offset paging.
package rest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// JSON writes v as the JSON body of a response with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Error writes {"error": msg} with status.
func Error(w http.ResponseWriter, status int, msg string) {
	JSON(w, status, map[string]string{"error": msg})
}

// Paging reads the limit (1 to max, default def) and offset (≥ 0) query
// parameters; the error is fit for a 400 response.
func Paging(r *http.Request, def, max int) (limit, offset int, err error) {
	limit = def
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > max {
			return 0, 0, fmt.Errorf("limit must be 1 to %d", max)
		}
	}
	if s := q.Get("offset"); s != "" {
		if offset, err = strconv.Atoi(s); err != nil || offset < 0 {
			return 0, 0, fmt.Errorf("offset must be a non-negative integer")
		}
	}
	return limit, offset, nil
}

// LikePrefix turns s into a LIKE pattern matching values that start with
// s literally (escape character '\').
func LikePrefix(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}
