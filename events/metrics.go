package events

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Bus's Prometheus collectors. A nil *metrics records
// nothing, so a Bus without a Registerer pays no cost.
type metrics struct {
	publishedTotal    *prometheus.CounterVec
	processedTotal    *prometheus.CounterVec
	retriedTotal      *prometheus.CounterVec
	deadLetteredTotal *prometheus.CounterVec
	handlerSeconds    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		publishedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "imaginghub", Subsystem: "events", Name: "published_total",
			Help: "Messages acknowledged by JetStream, by whether the ack was a duplicate.",
		}, []string{"duplicate"}),
		processedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "imaginghub", Subsystem: "events", Name: "processed_total",
			Help: "Messages a consumer's handler processed and acknowledged.",
		}, []string{"consumer"}),
		retriedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "imaginghub", Subsystem: "events", Name: "retried_total",
			Help: "Handler failures answered with a delayed redelivery.",
		}, []string{"consumer"}),
		deadLetteredTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "imaginghub", Subsystem: "events", Name: "dead_lettered_total",
			Help: "Messages a consumer moved to the dead-letter stream.",
		}, []string{"consumer"}),
		handlerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "imaginghub", Subsystem: "events", Name: "handler_duration_seconds",
			Help:    "Time spent in consumer handlers.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1ms .. ~65s
		}, []string{"consumer"}),
	}
	var err error
	m.publishedTotal, err = register(reg, m.publishedTotal)
	if err == nil {
		m.processedTotal, err = register(reg, m.processedTotal)
	}
	if err == nil {
		m.retriedTotal, err = register(reg, m.retriedTotal)
	}
	if err == nil {
		m.deadLetteredTotal, err = register(reg, m.deadLetteredTotal)
	}
	if err == nil {
		m.handlerSeconds, err = register(reg, m.handlerSeconds)
	}
	if err != nil {
		return nil, fmt.Errorf("events: register metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// the same description, so that several Buses can share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) published(duplicate bool) {
	if m == nil {
		return
	}
	d := "false"
	if duplicate {
		d = "true"
	}
	m.publishedTotal.WithLabelValues(d).Inc()
}

func (m *metrics) processed(consumer string) {
	if m != nil {
		m.processedTotal.WithLabelValues(consumer).Inc()
	}
}

func (m *metrics) retried(consumer string) {
	if m != nil {
		m.retriedTotal.WithLabelValues(consumer).Inc()
	}
}

func (m *metrics) deadLettered(consumer string) {
	if m != nil {
		m.deadLetteredTotal.WithLabelValues(consumer).Inc()
	}
}

func (m *metrics) observe(consumer string, d time.Duration) {
	if m != nil {
		m.handlerSeconds.WithLabelValues(consumer).Observe(d.Seconds())
	}
}
