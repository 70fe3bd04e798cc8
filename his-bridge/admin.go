package hisbridge

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/imaginghub/imaginghub/internal/rest"

	"github.com/imaginghub/imaginghub/catalog"
)

// listPatients serves GET /api/patients: ?identifier= (CX.1, optionally
// "value^authority"), ?name= (family name prefix, case-insensitive),
// limit, offset. Merged-away records are included with mergedInto set.
func (b *Bridge) listPatients(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	limit, offset, err := rest.Paging(r, 100, 1000)
	if err != nil {
		rest.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	q := r.URL.Query()
	where := []string{"1 = 1"}
	var args []any
	if id := q.Get("identifier"); id != "" {
		value, authority, withAuthority := strings.Cut(id, "^")
		if withAuthority {
			where = append(where, `id IN (SELECT patient_ref FROM registry_patient_identifiers WHERE id_number = ? AND assigning_authority = ?)`)
			args = append(args, value, authority)
		} else {
			where = append(where, `id IN (SELECT patient_ref FROM registry_patient_identifiers WHERE id_number = ?)`)
			args = append(args, value)
		}
	}
	if name := q.Get("name"); name != "" {
		where = append(where, `name_search LIKE ? ESCAPE '\'`)
		args = append(args, rest.LikePrefix(strings.ToLower(name)))
	}
	args = append(args, limit, offset)
	out := []Patient{}
	err = b.RT.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		var err error
		out, err = catalog.Collect(ctx, tx, scanPatient, `SELECT `+patientColumns+` FROM registry_patients WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ? OFFSET ?`, args...)
		if err != nil {
			return err
		}
		for i := range out {
			if err := loadDetails(ctx, tx, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Log.Error("list patients", "err", err)
		rest.Error(w, http.StatusServiceUnavailable, "catalog unavailable")
		return
	}
	rest.JSON(w, http.StatusOK, out)
}

// getPatient serves GET /api/patients/{id}.
func (b *Bridge) getPatient(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		rest.Error(w, http.StatusBadRequest, "patient id must be a positive integer")
		return
	}
	var p Patient
	err = b.RT.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		var err error
		p, err = loadPatient(ctx, tx, id)
		return err
	})
	switch {
	case errors.Is(err, errNotFound):
		rest.Error(w, http.StatusNotFound, "patient not found")
	case err != nil:
		b.Log.Error("get patient", "err", err)
		rest.Error(w, http.StatusServiceUnavailable, "catalog unavailable")
	default:
		rest.JSON(w, http.StatusOK, p)
	}
}
