package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/enclave/natsuser/natstest"
	"github.com/kraken-ops/kraken/enclave/objectstore/s3test"
)

// BenchmarkExoskeleton measures provisioning a whole exoskeleton: an
// enclave's database, bucket and subjects, and one tentacle's rooms on
// all three, against real services on loopback (goal: under 2 s for one
// enclave). "50" does 50 enclaves in a row and reports the time per
// enclave. Dropping them is not timed.
func BenchmarkExoskeleton(b *testing.B) {
	ctx := context.Background()
	s3 := s3test.Start(b)
	nsrv := natstest.Start(b)
	prefix := fmt.Sprintf("kb%d", os.Getpid())
	env := map[string]string{
		"KRAKEN_POSTGRES_URL": cmp.Or(os.Getenv("KRAKEN_TEST_POSTGRES_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"KRAKEN_S3_ENDPOINT":  s3.Endpoint, "KRAKEN_S3_ADMIN_ENDPOINT": s3.AdminEndpoint, "KRAKEN_S3_REGION": s3.Region,
		"KRAKEN_S3_ACCESS_KEY": s3.RootAccessKey, "KRAKEN_S3_SECRET_KEY": s3.RootSecretKey,
		"KRAKEN_NATS_URL": nsrv.URL, "KRAKEN_NATS_ACCOUNT_SEED": nsrv.AccountSeed, "KRAKEN_NATS_ACCOUNT": nsrv.Account,
		"KRAKEN_EXOSKELETON_PREFIX": prefix, "KRAKEN_EXOSKELETON_KEY": strings.Repeat("b", 32),
	}
	s, problems := exoSettingsFrom(func(k string) string { return env[k] })
	if len(problems) > 0 {
		b.Fatal(problems)
	}
	x, err := openExoskeleton(ctx, s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer x.close()
	wants := map[string]enclave.Kind{"tentacular-postgres": enclave.Postgres, "tentacular-rustfs": enclave.ObjectStore, "tentacular-nats": enclave.Messaging}
	n := 0
	provision := func(b *testing.B) string {
		n++
		name := fmt.Sprintf("bench-%d", n)
		if err := x.Open(ctx, name); err != nil {
			b.Fatal(err)
		}
		if _, err := x.Grant(ctx, name, "reports", wants); err != nil {
			b.Fatal(err)
		}
		return name
	}
	drop := func(b *testing.B, names []string) {
		for _, name := range names {
			if err := x.Drop(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("one", func(b *testing.B) {
		for b.Loop() {
			name := provision(b)
			b.StopTimer()
			drop(b, []string{name})
			b.StartTimer()
		}
	})
	b.Run("50", func(b *testing.B) {
		var took time.Duration
		rounds := 0
		for b.Loop() {
			names := make([]string, 0, 50)
			start := time.Now()
			for range 50 {
				names = append(names, provision(b))
			}
			took += time.Since(start)
			rounds++
			b.StopTimer()
			drop(b, names)
			b.StartTimer()
		}
		b.ReportMetric(float64(took.Microseconds())/1000/float64(50*rounds), "ms/enclave")
	})
}
