package k8s

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/k8s/k8stest"
)

// BenchmarkProvision provisions fresh enclaves, one after another,
// against the real control plane ($KUBECONFIG), and reports the latency
// of one Provision (p50, p95) and the API requests it makes, from a
// counting transport:
//
//	go test -run '^$' -bench BenchmarkProvision -benchtime 50x ./k8s
//
// The namespaces are deleted, without waiting, when it ends.
func BenchmarkProvision(b *testing.B) {
	rc, rec := recordedConfig(k8stest.Config(b))
	c := newEnclaveClient(b, rc, func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) })
	ctx := b.Context()
	var took []time.Duration
	rec.counts()
	for b.Loop() {
		// Its deletion is registered before the Provision, so a failing
		// one goes too, and outside the latency measured.
		name := enclaveName(b, "enc-bench")
		start := time.Now()
		if err := c.Provision(ctx, testEnclave(name), testProvenance); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	reads, writes, _ := rec.counts()
	n := float64(len(took))
	slices.Sort(took)
	b.ReportMetric(provisionPercentile(took, 50).Seconds()*1000, "p50-ms")
	b.ReportMetric(provisionPercentile(took, 95).Seconds()*1000, "p95-ms")
	b.ReportMetric(float64(writes)/n, "writes/op")
	b.ReportMetric(float64(reads+writes)/n, "requests/op")
}

// provisionPercentile is the p-th percentile of sorted durations, by the
// nearest-rank method.
func provisionPercentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(i, 0)]
}
