package router

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	forwarded    *prometheus.CounterVec
	failures     *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	queueDepth   *prometheus.GaugeVec
	inFlight     *prometheus.GaugeVec
	latency      *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	dest := []string{"destination"}
	m := &metrics{
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_router_forwarded_total",
			Help: "Deliveries the destination acknowledged (C-STORE success or warning, webhook 2xx).",
		}, dest),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_router_failures_total",
			Help: "Delivery attempts that failed (each is retried or dead-lettered).",
		}, dest),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_router_dead_lettered_total",
			Help: "Deliveries given up on and dead-lettered.",
		}, dest),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_router_skipped_total",
			Help: "Jobs skipped because the destination had acknowledged the same delivery before.",
		}, dest),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imaginghub_router_queue_depth",
			Help: "Jobs queued or in delivery per destination, as last measured.",
		}, dest),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imaginghub_router_in_flight",
			Help: "Deliveries running in this process.",
		}, dest),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imaginghub_router_delivery_seconds",
			Help:    "Time from queueing a job to the destination's acknowledgment.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, dest),
	}
	if reg != nil {
		reg.MustRegister(m.forwarded, m.failures, m.deadLettered, m.skipped, m.queueDepth, m.inFlight, m.latency)
	}
	return m
}
