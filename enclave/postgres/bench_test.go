package postgres

import (
	"context"
	"fmt"
	"testing"
)

var benchTentacles = []string{"ingest", "report-daily", "notify"}

// provision opens the enclave and grants it three tentacles: what a new
// enclave with a typical deploy costs the server.
func provision(b *testing.B, be *Backend, name string) {
	ctx := context.Background()
	if err := be.Open(ctx, name); err != nil {
		b.Fatal(err)
	}
	for _, tn := range benchTentacles {
		if _, err := be.Grant(ctx, name, tn); err != nil {
			b.Fatal(err)
		}
	}
}

func dropAll(b *testing.B, be *Backend, names []string) {
	for _, n := range names {
		if err := be.Drop(context.Background(), n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProvision is one enclave with three tentacles; Drop is not
// timed.
func BenchmarkProvision(b *testing.B) {
	be := newBackend(b)
	var made []string
	b.Cleanup(func() { dropAll(b, be, made) })
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("bench-%d", i)
		i++
		made = append(made, name)
		provision(b, be, name)
		b.StopTimer()
		dropAll(b, be, made)
		made = made[:0]
		b.StartTimer()
	}
}

// BenchmarkProvision50 is fifty enclaves in a row, as a platform
// adopting the bot would make them; ns/enclave is the figure to read.
func BenchmarkProvision50(b *testing.B) {
	be := newBackend(b)
	var made []string
	b.Cleanup(func() { dropAll(b, be, made) })
	for b.Loop() {
		for j := range 50 {
			name := fmt.Sprintf("bench50-%d", j)
			made = append(made, name)
			provision(b, be, name)
		}
		b.StopTimer()
		dropAll(b, be, made)
		made = made[:0]
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50), "ns/enclave")
}
