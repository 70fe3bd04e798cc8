package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Targets of the benchmark.
const (
	qidoP99TargetMs     = 20
	metadataTargetMs    = 150
	metadataTargetCount = 1000
)

// report prints the measurements as tables, section by section, with the
// targets met or not and, where a section has a peer beside the hub, the
// ratio of the peer's time to the hub's (above 1: the hub is faster).
func report(path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var recs []record
	var sections []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("report: %s: %w", path, err)
		}
		recs = append(recs, r)
		if !slices.Contains(sections, r.Section) {
			sections = append(sections, r.Section)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	verdict := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	for _, s := range sections {
		fmt.Fprintf(stdout, "\n%s\n", s)
		fmt.Fprintf(stdout, "  %-30s %-52s %9s %9s %9s  %s\n", "system", "measurement", "first ms", "p50 ms", "p99 ms", "target")
		for _, r := range recs {
			if r.Section != s {
				continue
			}
			switch r.Kind {
			case "qido":
				target := fmt.Sprintf("p99 < %d ms: %s", qidoP99TargetMs, verdict(r.P99 < qidoP99TargetMs))
				fmt.Fprintf(stdout, "  %-30s %-52s %9s %9.2f %9.2f  %s\n", r.System, "QIDO-RS studies by "+r.Name+", limit 100", "", r.P50, r.P99, target)
			case "metadata":
				target := ""
				if r.Results == metadataTargetCount {
					target = fmt.Sprintf("first and p99 < %d ms: %s", metadataTargetMs, verdict(r.Cold < metadataTargetMs && r.P99 < metadataTargetMs))
				}
				fmt.Fprintf(stdout, "  %-30s %-52s %9.1f %9.1f %9.1f  %s\n", r.System, "WADO-RS metadata of a "+r.Name, r.Cold, r.P50, r.P99, target)
			case "retrieve":
				fmt.Fprintf(stdout, "  %-30s %-52s %29s\n", r.System, fmt.Sprintf("WADO-RS retrieve of %.0f instances, %s", r.Results, r.Name),
					fmt.Sprintf("%.1f MB at %.0f MB/s", float64(r.Bytes)/1e6, r.MBps))
			}
		}
		// Ratios: every peer against the hub measured in the same section.
		for _, peer := range recs {
			if peer.Section != s || isHub(peer.System) {
				continue
			}
			for _, hub := range recs {
				if hub.Section != s || !isHub(hub.System) || hub.Kind != peer.Kind || hub.Name != peer.Name {
					continue
				}
				switch peer.Kind {
				case "qido":
					fmt.Fprintf(stdout, "  ratio %s / %s, QIDO-RS %s: p50 %.1fx, p99 %.1fx\n",
						peer.System, hub.System, peer.Name, peer.P50/hub.P50, peer.P99/hub.P99)
				case "metadata":
					fmt.Fprintf(stdout, "  ratio %s / %s, metadata %s: first %.1fx, p50 %.1fx, p99 %.1fx\n",
						peer.System, hub.System, peer.Name, peer.Cold/hub.Cold, peer.P50/hub.P50, peer.P99/hub.P99)
				case "retrieve":
					fmt.Fprintf(stdout, "  ratio %s / %s, retrieve (%s): %.1fx\n",
						hub.System, peer.System, peer.Name, hub.MBps/peer.MBps)
				}
			}
		}
	}
	fmt.Fprintln(stdout, "\n(ratio > 1: the hub is faster)")
	return nil
}

func isHub(system string) bool { return strings.HasPrefix(system, "hub") }
