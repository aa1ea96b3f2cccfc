package k8s

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkDeploy deploys a tentacle into a fresh enclave namespace per
// iteration against the real control plane, and reports the median
// deploy time and the API requests, writes and dry runs one deploy
// makes (requests counts them all). Run it with a fixed count, e.g.
// -bench Deploy -benchtime 30x: every iteration makes a namespace.
func BenchmarkDeploy(b *testing.B) {
	h := newHarness(b, harnessOptions{})
	bundle := loadBundle(b, echoFiles("bench", "hello"))
	var took []time.Duration
	var requests, writes, dryRuns int
	h.n.snapshot()
	for b.Loop() {
		b.StopTimer()
		ns := newEnclave(b, h.cs, "bench")
		h.n.snapshot()
		b.StartTimer()
		start := time.Now()
		if _, err := h.tc.Deploy(h.ctx, ns, bundle, prov); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		b.StopTimer()
		n := h.n.snapshot()
		requests += n.requests()
		writes += n.writes
		dryRuns += n.dryRuns
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(requests)/float64(len(took)), "requests/deploy")
	b.ReportMetric(float64(writes)/float64(len(took)), "writes/deploy")
	b.ReportMetric(float64(dryRuns)/float64(len(took)), "dry-runs/deploy")
}
