package fhir

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/imaginghub/imaginghub/catalog"

	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"

	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// BenchStudyUID is the Study Instance UID of the i-th bulk-loaded study.
func BenchStudyUID(i int) string { return fmt.Sprintf("1.2.826.0.1.3680043.10.543.5.%d", i) }

// BulkLoadStudies writes n synthetic ImagingStudy resources of the given
// number of patients straight into the resource table, in large
// multi-row inserts, for search benchmarks.
func BulkLoadStudies(ctx context.Context, cat *catalog.Catalog, n, patients int) error {
	modalities := []string{"CT", "MR", "CR", "US", "DX"}
	base := time.Date(2025, 1, 1, 8, 0, 0, 0, time.UTC)
	const batch = 400
	for lo := 0; lo < n; lo += batch {
		var resRows, idxRows []string
		var resArgs, idxArgs []any
		for i := lo; i < min(n, lo+batch); i++ {
			uid := BenchStudyUID(i)
			day := base.AddDate(0, 0, i%365)
			in := StudyInput{
				StudyInstanceUID: uid,
				Study: &catalog.StudyRecord{Study: catalog.Study{StudyInstanceUID: uid, StudyDate: day.Format("20060102"), StudyTime: "101500",
					AccessionNumber: fmt.Sprintf("BA%d", i), StudyDescription: "SYNTHETIC", ModalitiesInStudy: []string{modalities[i%len(modalities)]},
					NumberOfStudyRelatedSeries: 1, NumberOfStudyRelatedInstances: 1}},
				Series: []SeriesInput{{Series: catalog.Series{SeriesInstanceUID: uid + ".1", Modality: modalities[i%len(modalities)], SeriesNumber: 1},
					Instances: []catalog.Instance{{SOPInstanceUID: uid + ".1.1", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", InstanceNumber: 1}}}},
				Order:    &risbridge.Order{ID: int64(i), AccessionNumber: fmt.Sprintf("BA%d", i)},
				Subject:  fmt.Sprintf("Patient/bench-p%d", i%patients),
				BasedOn:  []string{fmt.Sprintf("ServiceRequest/order-%d", i)},
				Location: time.UTC,
			}
			is := ImagingStudy(in)
			bare, err := Marshal(is)
			if err != nil {
				return err
			}
			lu := base.Add(time.Duration(i) * time.Second)
			is.Meta = &dpb.Meta{VersionId: fid("1"), LastUpdated: instant(lu)}
			full, err := Marshal(is)
			if err != nil {
				return err
			}
			resRows = append(resRows, "(?, ?, ?, ?, ?, ?)")
			resArgs = append(resArgs, "ImagingStudy", uid, 1, lu.Format(instantLayout), contentHash(bare), string(full))
			seen := map[indexValue]bool{}
			for _, v := range indexValues(is) {
				if v.value == "" || seen[v] {
					continue
				}
				seen[v] = true
				idxRows = append(idxRows, "(?, ?, ?, ?)")
				idxArgs = append(idxArgs, "ImagingStudy", v.param, v.value, uid)
			}
		}
		err := cat.InTx(ctx, func(tx *catalog.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fhir_resources (resource_type, id, version_id, last_updated, content_hash, content) VALUES `+strings.Join(resRows, ", "), resArgs...); err != nil {
				return err
			}
			for k := 0; k < len(idxRows); k += 1000 {
				hi := min(len(idxRows), k+1000)
				if _, err := tx.ExecContext(ctx, `INSERT INTO fhir_search (resource_type, param, value, id) VALUES `+strings.Join(idxRows[k:hi], ", "), idxArgs[4*k:4*hi]...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bulk load: %w", err)
		}
	}
	return nil
}
