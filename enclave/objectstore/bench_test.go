package objectstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

var benchTentacles = []string{"reports", "ledger", "audit"}

// provision is what a new enclave with three tentacles costs here.
func provision(b *testing.B, f *fixture, encl string) {
	ctx := context.Background()
	if err := f.b.Open(ctx, encl); err != nil {
		b.Fatal(err)
	}
	for _, tn := range benchTentacles {
		if _, err := f.b.Grant(ctx, encl, tn); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProvision: Open and three Grants for one enclave.
func BenchmarkProvision(b *testing.B) {
	f := setup(b)
	n := 0
	for b.Loop() {
		provision(b, f, fmt.Sprintf("enclave-%d", n))
		n++
	}
}

// BenchmarkProvision50: fifty enclaves in a row, as a fresh platform
// provisions its channels; ms/enclave is the figure. The server keeps
// what earlier iterations made, and versitygw's users file is read and
// written whole for every user made, so with -benchtime Nx the last fifty
// (last-ms/enclave) show the cost on a server with 150·N users.
func BenchmarkProvision50(b *testing.B) {
	f := setup(b)
	n := 0
	var total, last time.Duration
	for b.Loop() {
		start := time.Now()
		for range 50 {
			provision(b, f, fmt.Sprintf("enclave-%d", n))
			n++
		}
		last = time.Since(start)
		total += last
	}
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(n), "ms/enclave")
	b.ReportMetric(float64(last.Microseconds())/1e3/50, "last-ms/enclave")
}
