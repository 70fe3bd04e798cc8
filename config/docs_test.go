package config

import (
	"os"
	"strings"
	"testing"
)

// Every configuration key is documented in the README, and the example
// deployment configuration loads.
func TestDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(readme), "`"+k.Env+"`") {
			t.Errorf("README.md does not document %s (%s)", k.Env, k.Path)
		}
	}
	if _, err := Load("../deployments/imaginghub.yaml", nil); err != nil {
		t.Errorf("deployments/imaginghub.yaml: %v", err)
	}
}
