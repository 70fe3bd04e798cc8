package worklist

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/internal/rest"
)

// maxBody bounds a REST request body.
const maxBody = 1 << 20

// routes registers the REST API:
//
//	GET    /api/worklist/items?station=&date=&status=&limit=&offset=
//	POST   /api/worklist/items
//	GET    /api/worklist/items/{id}
//	PUT    /api/worklist/items/{id}
//	DELETE /api/worklist/items/{id}         (cancels the step)
//	POST   /api/worklist/items/{id}/cancel
//	GET    /api/worklist/mpps/{uid}
//
// Errors are JSON objects {"error": "…"} with a 4xx status.
func (w *Worklist) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/worklist/items", w.listItems)
	mux.HandleFunc("POST /api/worklist/items", w.createItem)
	mux.HandleFunc("GET /api/worklist/items/{id}", w.withID(w.getItem))
	mux.HandleFunc("PUT /api/worklist/items/{id}", w.withID(w.updateItem))
	mux.HandleFunc("DELETE /api/worklist/items/{id}", w.withID(w.cancelItem))
	mux.HandleFunc("POST /api/worklist/items/{id}/cancel", w.withID(w.cancelItem))
	mux.HandleFunc("GET /api/worklist/mpps/{uid}", w.getMPPS)
}

// fail answers err with the status its sentinel calls for.
func (w *Worklist) fail(rw http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNoSuchInstance):
		rest.Error(rw, http.StatusNotFound, strings.TrimPrefix(err.Error(), "worklist: "))
	case errors.Is(err, ErrNotEditable):
		rest.Error(rw, http.StatusConflict, strings.TrimPrefix(err.Error(), "worklist: "))
	case errors.Is(err, ErrInvalid):
		rest.Error(rw, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "worklist: "))
	default:
		w.log.Error("worklist API request failed", "err", err)
		rest.Error(rw, http.StatusInternalServerError, "internal error")
	}
}

func (w *Worklist) withID(h func(rw http.ResponseWriter, r *http.Request, id int64)) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			rest.Error(rw, http.StatusBadRequest, "item id must be a positive integer")
			return
		}
		h(rw, r, id)
	}
}

// parseDate takes YYYYMMDD, YYYY-MM-DD or "today".
func parseDate(s string, now time.Time) (string, bool) {
	switch {
	case s == "":
		return "", true
	case s == "today":
		return now.Format("20060102"), true
	}
	s = strings.ReplaceAll(s, "-", "")
	if _, err := time.Parse("20060102", s); err != nil {
		return "", false
	}
	return s, true
}

func (w *Worklist) listItems(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := ListOptions{Station: q.Get("station"), Status: strings.ToUpper(q.Get("status"))}
	var ok bool
	if o.Date, ok = parseDate(q.Get("date"), w.store.now()); !ok {
		rest.Error(rw, http.StatusBadRequest, "date must be YYYYMMDD, YYYY-MM-DD or today")
		return
	}
	for name, dst := range map[string]*int{"limit": &o.Limit, "offset": &o.Offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				rest.Error(rw, http.StatusBadRequest, name+" must be an integer")
				return
			}
			*dst = n
		}
	}
	items, err := w.store.List(r.Context(), o)
	if err != nil {
		w.fail(rw, err)
		return
	}
	rest.JSON(rw, http.StatusOK, map[string]any{"items": items})
}

func decodeItem(rw http.ResponseWriter, r *http.Request) (Item, bool) {
	var it Item
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&it); err != nil {
		rest.Error(rw, http.StatusBadRequest, "body is not a worklist item: "+err.Error())
		return it, false
	}
	return it, true
}

func (w *Worklist) createItem(rw http.ResponseWriter, r *http.Request) {
	it, ok := decodeItem(rw, r)
	if !ok {
		return
	}
	it, err := w.store.Create(r.Context(), it)
	if err != nil {
		w.fail(rw, err)
		return
	}
	rw.Header().Set("Location", "/api/worklist/items/"+strconv.FormatInt(it.ID, 10))
	rest.JSON(rw, http.StatusCreated, it)
}

func (w *Worklist) getItem(rw http.ResponseWriter, r *http.Request, id int64) {
	it, err := w.store.Get(r.Context(), id)
	if err != nil {
		w.fail(rw, err)
		return
	}
	rest.JSON(rw, http.StatusOK, it)
}

func (w *Worklist) updateItem(rw http.ResponseWriter, r *http.Request, id int64) {
	it, ok := decodeItem(rw, r)
	if !ok {
		return
	}
	it, err := w.store.Update(r.Context(), id, it)
	if err != nil {
		w.fail(rw, err)
		return
	}
	rest.JSON(rw, http.StatusOK, it)
}

func (w *Worklist) cancelItem(rw http.ResponseWriter, r *http.Request, id int64) {
	it, err := w.store.Cancel(r.Context(), id)
	if err != nil {
		w.fail(rw, err)
		return
	}
	rest.JSON(rw, http.StatusOK, it)
}

func (w *Worklist) getMPPS(rw http.ResponseWriter, r *http.Request) {
	m, err := w.store.GetMPPS(r.Context(), r.PathValue("uid"))
	if err != nil {
		w.fail(rw, err)
		return
	}
	rest.JSON(rw, http.StatusOK, m)
}
