package fhir

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	pushes        *prometheus.CounterVec
	pushSeconds   *prometheus.HistogramVec
	notifications *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_fhir_pushes_total", Help: "Push jobs by target and outcome (accepted, stale, failed, refused).",
		}, []string{"target", "outcome"}),
		pushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "imaginghub_fhir_push_seconds", Help: "Time a target took to accept a push (all its requests).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}, []string{"target"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imaginghub_fhir_notifications_total", Help: "Subscription notifications by outcome (delivered, failed).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.pushes, m.pushSeconds, m.notifications)
	}
	return m
}
