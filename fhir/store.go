package fhir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
)

// Sentinel errors of the resource store; the REST API maps them to
// OperationOutcomes (FHIR R4 §3.1.0.4: 404 unknown, 410 deleted).
var (
	ErrNotFound = errors.New("fhir: resource not found")
	ErrGone     = errors.New("fhir: resource deleted")
)

// instantLayout is the fixed-width UTC form of meta.lastUpdated that the
// store keeps, so that text order is time order.
const instantLayout = "2006-01-02T15:04:05.000000Z"

// Stored is one version of a resource as the store keeps it.
type Stored struct {
	Type        string
	ID          string
	VersionID   int64
	LastUpdated time.Time
	// JSON is the resource as served, with meta.versionId and
	// meta.lastUpdated.
	JSON []byte
}

// ETag is the weak entity tag of this version (FHIR R4 §3.1.0.5.1).
func (s Stored) ETag() string { return `W/"` + strconv.FormatInt(s.VersionID, 10) + `"` }

// Store keeps the FHIR resources of the hub in the catalog: the current
// version of each, its history and its search index.
type Store struct {
	cat *catalog.Catalog
	now func() time.Time
}

// NewStore returns a store on cat.
func NewStore(cat *catalog.Catalog) *Store { return &Store{cat: cat, now: time.Now} }

// Put stores res as the next version of its resource unless its content
// (meta aside) is what is stored already. It returns the stored version
// and whether it is new. res must have an id.
func (s *Store) Put(ctx context.Context, res proto.Message) (Stored, bool, error) {
	var out Stored
	var changed bool
	err := s.cat.InTx(ctx, func(tx *catalog.Tx) error {
		var err error
		out, changed, err = s.PutTx(ctx, tx, res)
		return err
	})
	return out, changed, err
}

// Create stores res as version 1 unless its resource exists, and reports
// whether it did; an existing resource is returned unchanged.
func (s *Store) Create(ctx context.Context, res proto.Message) (Stored, bool, error) {
	var out Stored
	var created bool
	err := s.cat.InTx(ctx, func(tx *catalog.Tx) error {
		cur, err := getQ(ctx, tx, ResourceType(res), resourceID(res))
		if err == nil {
			out = cur
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		out, created, err = s.PutTx(ctx, tx, res)
		return err
	})
	return out, created, err
}

// PutTx is Put in the caller's transaction.
func (s *Store) PutTx(ctx context.Context, tx *catalog.Tx, res proto.Message) (Stored, bool, error) {
	typ := ResourceType(res)
	id := resourceID(res)
	if id == "" {
		return Stored{}, false, fmt.Errorf("fhir: put %s without id", typ)
	}
	res = proto.Clone(res)
	setMeta(res, nil)
	bare, err := Marshal(res)
	if err != nil {
		return Stored{}, false, err
	}
	hash := contentHash(bare)
	var cur Stored
	var curHash, curUpdated string
	err = tx.QueryRowContext(ctx, `SELECT version_id, content_hash, last_updated, content FROM fhir_resources WHERE resource_type = ? AND id = ?`, typ, id).
		Scan(&cur.VersionID, &curHash, &curUpdated, &cur.JSON)
	switch {
	case err == nil && curHash == hash:
		cur.Type, cur.ID = typ, id
		cur.LastUpdated, _ = time.Parse(instantLayout, curUpdated)
		return cur, false, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return Stored{}, false, fmt.Errorf("fhir: read %s/%s: %w", typ, id, err)
	}
	out := Stored{Type: typ, ID: id, VersionID: cur.VersionID + 1, LastUpdated: s.now().UTC().Truncate(time.Microsecond)}
	if !cur.LastUpdated.IsZero() && !out.LastUpdated.After(cur.LastUpdated) {
		out.LastUpdated = cur.LastUpdated.Add(time.Microsecond)
	}
	setMeta(res, &dpb.Meta{VersionId: fid(strconv.FormatInt(out.VersionID, 10)), LastUpdated: instant(out.LastUpdated)})
	if out.JSON, err = Marshal(res); err != nil {
		return Stored{}, false, err
	}
	lu := out.LastUpdated.Format(instantLayout)
	if out.VersionID == 1 {
		_, err = tx.ExecContext(ctx, `INSERT INTO fhir_resources (resource_type, id, version_id, last_updated, content_hash, content) VALUES (?, ?, ?, ?, ?, ?)`,
			typ, id, out.VersionID, lu, hash, string(out.JSON))
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE fhir_resources SET version_id = ?, last_updated = ?, content_hash = ?, content = ? WHERE resource_type = ? AND id = ?`,
			out.VersionID, lu, hash, string(out.JSON), typ, id)
	}
	if err != nil {
		return Stored{}, false, fmt.Errorf("fhir: write %s/%s: %w", typ, id, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fhir_history (resource_type, id, version_id, last_updated, content) VALUES (?, ?, ?, ?, ?)`,
		typ, id, out.VersionID, lu, string(out.JSON)); err != nil {
		return Stored{}, false, fmt.Errorf("fhir: history %s/%s: %w", typ, id, err)
	}
	if err := writeIndex(ctx, tx, typ, id, indexValues(res)); err != nil {
		return Stored{}, false, err
	}
	return out, true, nil
}

func writeIndex(ctx context.Context, tx *catalog.Tx, typ, id string, vals []indexValue) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM fhir_search WHERE resource_type = ? AND id = ?`, typ, id); err != nil {
		return fmt.Errorf("fhir: index %s/%s: %w", typ, id, err)
	}
	seen := map[indexValue]bool{}
	for _, v := range vals {
		if v.value == "" || seen[v] {
			continue
		}
		seen[v] = true
		if _, err := tx.ExecContext(ctx, `INSERT INTO fhir_search (resource_type, param, value, id) VALUES (?, ?, ?, ?)`, typ, v.param, v.value, id); err != nil {
			return fmt.Errorf("fhir: index %s/%s: %w", typ, id, err)
		}
	}
	return nil
}

// Delete removes a resource; its history stays, so reads answer 410.
func (s *Store) Delete(ctx context.Context, typ, id string) error {
	return s.cat.InTx(ctx, func(tx *catalog.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM fhir_resources WHERE resource_type = ? AND id = ?`, typ, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM fhir_search WHERE resource_type = ? AND id = ?`, typ, id)
		return err
	})
}

// Get returns the current version of a resource.
func (s *Store) Get(ctx context.Context, typ, id string) (Stored, error) {
	var out Stored
	err := s.cat.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		var err error
		out, err = getQ(ctx, tx, typ, id)
		if errors.Is(err, ErrNotFound) {
			var n int
			if tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM fhir_history WHERE resource_type = ? AND id = ?`, typ, id).Scan(&n) == nil && n > 0 {
				return ErrGone
			}
		}
		return err
	})
	return out, err
}

func getQ(ctx context.Context, q catalog.Querier, typ, id string) (Stored, error) {
	out := Stored{Type: typ, ID: id}
	var lu string
	err := q.QueryRowContext(ctx, `SELECT version_id, last_updated, content FROM fhir_resources WHERE resource_type = ? AND id = ?`, typ, id).
		Scan(&out.VersionID, &lu, &out.JSON)
	if errors.Is(err, sql.ErrNoRows) {
		return Stored{}, ErrNotFound
	}
	if err != nil {
		return Stored{}, fmt.Errorf("fhir: read %s/%s: %w", typ, id, err)
	}
	out.LastUpdated, _ = time.Parse(instantLayout, lu)
	return out, nil
}

// VRead returns one version of a resource (FHIR R4 §3.1.0.4 vread).
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (Stored, error) {
	out := Stored{Type: typ, ID: id, VersionID: version}
	var lu string
	err := s.cat.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		return tx.QueryRowContext(ctx, `SELECT last_updated, content FROM fhir_history WHERE resource_type = ? AND id = ? AND version_id = ?`, typ, id, version).
			Scan(&lu, &out.JSON)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Stored{}, ErrNotFound
	}
	if err != nil {
		return Stored{}, fmt.Errorf("fhir: read %s/%s/_history/%d: %w", typ, id, version, err)
	}
	out.LastUpdated, _ = time.Parse(instantLayout, lu)
	return out, nil
}

// FindByIdentifier returns the ids of resources of typ with an identifier
// system|value (or value alone when system is empty).
func (s *Store) FindByIdentifier(ctx context.Context, q catalog.Querier, typ, system, value string) ([]string, error) {
	v := value
	if system != "" {
		v = system + "|" + value
	}
	rows, err := q.QueryContext(ctx, `SELECT id FROM fhir_search WHERE resource_type = ? AND param = 'identifier' AND value = ? ORDER BY id`, typ, v)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func resourceID(res proto.Message) string {
	m := res.ProtoReflect()
	f := m.Descriptor().Fields().ByName("id")
	if f == nil || !m.Has(f) {
		return ""
	}
	return m.Get(f).Message().Interface().(*dpb.Id).GetValue()
}

func setMeta(res proto.Message, meta *dpb.Meta) {
	m := res.ProtoReflect()
	f := m.Descriptor().Fields().ByName("meta")
	if meta == nil {
		m.Clear(f)
		return
	}
	m.Set(f, protoreflect.ValueOfMessage(meta.ProtoReflect()))
}

// BulkInsert writes ready-made versions straight into the store, for
// loading large test and benchmark sets; it skips history.
func (s *Store) BulkInsert(ctx context.Context, res []proto.Message) error {
	return s.cat.InTx(ctx, func(tx *catalog.Tx) error {
		for _, r := range res {
			if _, _, err := s.PutTx(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}
