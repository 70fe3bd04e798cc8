package main

import (
	"sort"
	"strings"

	"github.com/imaginghub/imaginghub/dicomweb"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hl7out"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/ingest"
	"github.com/imaginghub/imaginghub/qr"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// components are the parts that "imaginghub <name>" runs alone and "serve"
// runs together, in this order.
var components = map[string]func(rt *hub.Runtime) (hub.Component, error){
	// The DICOM listener: C-STORE, and Query/Retrieve on the same port.
	"ingest": func(rt *hub.Runtime) (hub.Component, error) {
		in, err := ingest.New(rt)
		if err != nil {
			return nil, err
		}
		if _, err := qr.New(rt, in.Registry, qr.Options{}); err != nil {
			return nil, err
		}
		return in, nil
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
}

// allComponents is the start order for serve.
var allComponents = []string{"ingest", "dicomweb", "hl7", "his-bridge", "ris-bridge", "hl7out"}

func componentNames() string {
	names := make([]string, 0, len(components))
	for n := range components {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
