package dicomnet

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Server's Prometheus collectors; a nil *metrics records
// nothing, so ServerOptions.Registerer may be left nil.
type metrics struct {
	associations *prometheus.CounterVec
	activeGauge  prometheus.Gauge
	requests     *prometheus.CounterVec
	bytesIn      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		associations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_dicom_associations_total",
			Help: "DICOM association requests by outcome (accepted, rejected, limit, malformed).",
		}, []string{"result"}),
		activeGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imaginghub_dicom_associations_active",
			Help: "DICOM associations currently established.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_dicom_requests_total",
			Help: "DIMSE requests received, by command.",
		}, []string{"command"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imaginghub_dicom_dataset_bytes_received_total",
			Help: "Data set bytes received in P-DATA-TF.",
		}),
	}
	m.associations = register(reg, m.associations)
	m.activeGauge = register(reg, m.activeGauge)
	m.requests = register(reg, m.requests)
	m.bytesIn = register(reg, m.bytesIn)
	return m
}

// register registers c, or reuses the collector already registered under
// the same name (several servers in one process share their series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (m *metrics) association(result string) {
	if m != nil {
		m.associations.WithLabelValues(result).Inc()
	}
}

func (m *metrics) active(d float64) {
	if m != nil {
		m.activeGauge.Add(d)
	}
}

func (m *metrics) request(commandField uint16) {
	if m != nil {
		m.requests.WithLabelValues(commandName(commandField)).Inc()
	}
}

func (m *metrics) received(n int) {
	if m != nil {
		m.bytesIn.Add(float64(n))
	}
}

// commandName names a command field as PS3.7 does; unknown ones in hex,
// which keeps label cardinality bounded by 2^16 at worst.
func commandName(f uint16) string {
	switch f {
	case CStoreRQ:
		return "C-STORE"
	case CGetRQ:
		return "C-GET"
	case CFindRQ:
		return "C-FIND"
	case CMoveRQ:
		return "C-MOVE"
	case CEchoRQ:
		return "C-ECHO"
	case NEventReportRQ:
		return "N-EVENT-REPORT"
	case NGetRQ:
		return "N-GET"
	case NSetRQ:
		return "N-SET"
	case NActionRQ:
		return "N-ACTION"
	case NCreateRQ:
		return "N-CREATE"
	case NDeleteRQ:
		return "N-DELETE"
	}
	return fmt.Sprintf("0x%04X", f)
}
