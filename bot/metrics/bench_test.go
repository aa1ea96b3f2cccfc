package metrics_test

import (
	"io"
	"testing"

	"github.com/kraken-ops/kraken/bot/metrics"
)

func BenchmarkCounterWithInc(b *testing.B) {
	c := metrics.NewRegistry().Counter("c_total", "h", "verb", "outcome")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.With("deploy", "ok").Inc()
		}
	})
}

func BenchmarkHistogramWithObserve(b *testing.B) {
	h := metrics.NewRegistry().Histogram("h_seconds", "h", metrics.DefaultBuckets, "transport")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.With("http").Observe(0.012)
		}
	})
}

func BenchmarkWriteTo(b *testing.B) {
	r := metrics.NewRegistry()
	c := r.Counter("c_total", "h", "verb", "outcome")
	h := r.Histogram("h_seconds", "h", metrics.DefaultBuckets, "transport")
	for _, v := range []string{"deploy", "run", "status", "logs", "undeploy", "rollback"} {
		for _, o := range []string{"ok", "denied", "error"} {
			c.With(v, o).Inc()
		}
	}
	h.With("http").Observe(0.01)
	h.With("socket").Observe(0.01)
	b.ReportAllocs()
	for b.Loop() {
		r.WriteTo(io.Discard)
	}
}
