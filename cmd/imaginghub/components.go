package main

import (
	"sort"
	"strings"

	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/ingest"
)

// components are the parts that "imaginghub <name>" runs alone and "serve"
// runs together, in this order.
var components = map[string]func(rt *hub.Runtime) (hub.Component, error){
	"ingest": func(rt *hub.Runtime) (hub.Component, error) { return ingest.New(rt) },
}

// allComponents is the start order for serve.
var allComponents = []string{"ingest"}

func componentNames() string {
	names := make([]string, 0, len(components))
	for n := range components {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
