package main

import (
	"sort"
	"strings"

	"github.com/imaginghub/imaginghub/dicomweb"
	"github.com/imaginghub/imaginghub/fhir"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hl7out"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/qr"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
	"github.com/imaginghub/imaginghub/router"
	"github.com/imaginghub/imaginghub/workflow"
	"github.com/imaginghub/imaginghub/worklist"
)

// components are the parts that "imaginghub <name>" runs alone and "serve"
// runs together, in this order.
var components = map[string]func(rt *hub.Runtime) (hub.Component, error){
	// The DICOM listener and C-STORE; Q/R, MWL and MPPS register their
	// SOP classes on the same listener (rt.DICOM) when they run in the
	// same process.
	"ingest": func(rt *hub.Runtime) (hub.Component, error) { return ingest.New(rt) },
	"qr":     func(rt *hub.Runtime) (hub.Component, error) { return qr.New(rt, rt.DICOM, qr.Options{}) },
	"router": func(rt *hub.Runtime) (hub.Component, error) { return router.New(rt, router.Options{}) },
	"worklist": func(rt *hub.Runtime) (hub.Component, error) {
		return worklist.New(rt, rt.DICOM, worklist.Options{
			IncludeFinalSteps: rt.Config.Worklist.IncludeFinalSteps,
			MaxMatches:        rt.Config.Worklist.MaxMatches,
		})
	},
	"dicomweb": func(rt *hub.Runtime) (hub.Component, error) {
		c := rt.Config.DICOMweb
		return dicomweb.New(rt, nil, dicomweb.Options{
			PublicURL:            c.PublicURL,
			CORSOrigins:          c.CORSOrigins,
			MaxQueryResults:      c.MaxQueryResults,
			MaxStoreRequestBytes: c.MaxStoreBytes,
			MetadataCacheBytes:   c.MetadataCacheBytes,
		})
	},
	// The MLLP listener takes the messages of both bridges.
	"hl7": func(rt *hub.Runtime) (hub.Component, error) {
		return hl7intake.New(rt, append(hisbridge.Routes(), risbridge.Routes()...)...)
	},
	"his-bridge": func(rt *hub.Runtime) (hub.Component, error) { return hisbridge.New(rt) },
	"ris-bridge": func(rt *hub.Runtime) (hub.Component, error) { return risbridge.New(rt) },
	"hl7out":     func(rt *hub.Runtime) (hub.Component, error) { return hl7out.New(rt), nil },
	// FHIR R4 API under /fhir, pushes to EMRs and subscriptions.
	"fhir": func(rt *hub.Runtime) (hub.Component, error) {
		opts, err := fhir.OptionsFromConfig(rt.Config)
		if err != nil {
			return nil, err
		}
		return fhir.New(rt, opts)
	},
	// Reconciliation, order status to the RIS, billing and reading tasks.
	"workflow": func(rt *hub.Runtime) (hub.Component, error) { return workflow.New(rt, workflow.OptionsFrom(rt.Config)) },
}

// allComponents is the start order for serve.
var allComponents = []string{"ingest", "qr", "worklist", "dicomweb", "hl7", "his-bridge", "ris-bridge", "hl7out", "router", "workflow", "fhir"}

func componentNames() string {
	names := make([]string, 0, len(components))
	for n := range components {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
