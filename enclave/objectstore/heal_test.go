package objectstore

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/enclave/objectstore/s3test"
)

// A user deleted behind the platform's back leaves its statements in the
// policy, which versitygw then refuses to take back: Grant and Revoke
// take them out and carry on, and say so.
func TestStaleStatementsAreTakenOut(t *testing.T) {
	srv := s3test.Start(t)
	var log bytes.Buffer
	b, err := New(context.Background(), Config{
		Endpoint: srv.Endpoint, AdminEndpoint: srv.AdminEndpoint, Region: srv.Region,
		AccessKey: srv.RootAccessKey, SecretKey: srv.RootSecretKey,
		Key: bytes.Repeat([]byte{1}, 32), Logger: slog.New(slog.NewTextHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Open(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"reports", "ledger", "audit"} {
		if _, err := b.Grant(ctx, "payments", tn); err != nil {
			t.Fatal(err)
		}
	}
	gone := b.AccessKey("payments", "ledger")
	if err := b.admin.deleteUser(ctx, gone); err != nil {
		t.Fatal(err)
	}
	s, err := b.Grant(ctx, "payments", "exports")
	if err != nil {
		t.Fatalf("Grant with a stale statement in the policy: %v", err)
	}
	p, err := b.policy(ctx, "payments", b.Bucket("payments"))
	if err != nil {
		t.Fatal(err)
	}
	var owners []string
	for _, st := range p.Statement {
		if !slices.Contains(owners, st.owner()) {
			owners = append(owners, st.owner())
		}
	}
	slices.Sort(owners)
	want := []string{b.AccessKey("payments", "audit"), b.AccessKey("payments", "exports"), b.AccessKey("payments", "reports")}
	if !slices.Equal(owners, want) {
		t.Fatalf("policy principals = %v, want %v", owners, want)
	}
	if !strings.Contains(log.String(), gone) || !strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), s.Secret) {
		t.Fatalf("log = %q: want a warning naming %s, and no secret", log.String(), gone)
	}
	// The same for Revoke.
	if err := b.admin.deleteUser(ctx, b.AccessKey("payments", "audit")); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(ctx, "payments", "reports"); err != nil {
		t.Fatalf("Revoke with a stale statement in the policy: %v", err)
	}
}
