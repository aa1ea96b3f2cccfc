package enclave

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// memBackend is an exoskeleton service in memory, for the orchestration
// rules; the real services are tested in their own packages.
type memBackend struct {
	kind    Kind
	spaces  map[string]bool            // enclave → opened
	grants  map[string]map[string]bool // enclave → tentacle → granted
	failOn  string                     // "open", "grant", "drop": fail that op
	dropped []string
}

func newMem(k Kind) *memBackend {
	return &memBackend{kind: k, spaces: map[string]bool{}, grants: map[string]map[string]bool{}}
}

var errDown = errors.New("connection refused")

func (m *memBackend) Kind() Kind { return m.kind }
func (m *memBackend) Open(_ context.Context, enc string) error {
	if m.failOn == "open" {
		return errDown
	}
	m.spaces[enc] = true
	return nil
}
func (m *memBackend) Grant(_ context.Context, enc, t string) (Space, error) {
	if m.failOn == "grant" {
		return Space{}, errDown
	}
	if !m.spaces[enc] {
		return Space{}, errors.New("no space")
	}
	if m.grants[enc] == nil {
		m.grants[enc] = map[string]bool{}
	}
	m.grants[enc][t] = true
	return Space{User: enc + "/" + t, Secret: DeriveSecret([]byte("k"), string(m.kind), enc, t)}, nil
}
func (m *memBackend) Revoke(_ context.Context, enc, t string) error {
	delete(m.grants[enc], t)
	return nil
}
func (m *memBackend) Usage(_ context.Context, enc string) (Usage, error) {
	return Usage{What: string(m.kind) + " " + enc, Exists: m.spaces[enc], Bytes: 42}, nil
}
func (m *memBackend) Drop(_ context.Context, enc string) error {
	if m.failOn == "drop" {
		return errDown
	}
	delete(m.spaces, enc)
	delete(m.grants, enc)
	m.dropped = append(m.dropped, enc)
	return nil
}

func TestExoskeletonGrant(t *testing.T) {
	ctx := context.Background()
	pg, nats := newMem(Postgres), newMem(Messaging)
	x, err := NewExoskeleton(pg, nats)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewExoskeleton(pg, newMem(Postgres)); err == nil {
		t.Error("two postgres services were accepted")
	}

	// Two dependencies on one kind share the tentacle's one room; the
	// space is opened on first use even when the enclave predates it.
	got, err := x.Grant(ctx, "payments", "ledger", map[string]Kind{"tentacular-postgres": Postgres, "db2": Postgres, "bus": Messaging})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["db2"].User != got["tentacular-postgres"].User || got["bus"].Kind != Messaging {
		t.Errorf("spaces = %+v", got)
	}
	if !pg.grants["payments"]["ledger"] || !nats.grants["payments"]["ledger"] {
		t.Error("a service was not granted")
	}

	// A kind the platform did not configure refuses the whole grant
	// before anything is made.
	before := len(pg.grants["payments"])
	_, err = x.Grant(ctx, "payments", "reports", map[string]Kind{"db": Postgres, "files": ObjectStore})
	var se *ServiceError
	if !errors.As(err, &se) || !errors.Is(err, ErrNoService) || se.Dependency != "files" || se.Kind != ObjectStore {
		t.Fatalf("err = %v, want ErrNoService for files", err)
	}
	if len(pg.grants["payments"]) != before {
		t.Error("a refused grant granted a room anyway")
	}
	if p := se.Plain(); !strings.Contains(p, "object storage") || !strings.Contains(p, "files") {
		t.Errorf("plain = %q", p)
	}

	// No services wanted: nothing to do, even with no exoskeleton.
	var none *Exoskeleton
	if s, err := none.Grant(ctx, "payments", "x", nil); err != nil || s != nil {
		t.Errorf("nil exoskeleton: %v %v", s, err)
	}
	if _, err := none.Grant(ctx, "payments", "x", map[string]Kind{"db": Postgres}); !errors.Is(err, ErrNoService) {
		t.Errorf("nil exoskeleton granted: %v", err)
	}
}

func TestServiceProvisionOpensServicesFirst(t *testing.T) {
	ctx := context.Background()
	pg := newMem(Postgres)
	x, _ := NewExoskeleton(pg)
	cl := &memCluster{enclaves: map[string]Enclave{}}
	s := &Service{Cluster: cl, Exoskeleton: x}

	// The service fails: the enclave is not made at all.
	pg.failOn = "open"
	_, err := s.Provision(ctx, testChannel, "payments", "UOWNER", nil, Provenance{})
	var se *ServiceError
	if !errors.As(err, &se) || se.Op != "open" || !errors.Is(err, errDown) {
		t.Fatalf("err = %v", err)
	}
	if len(cl.enclaves) != 0 {
		t.Error("the enclave was made although its database was not")
	}
	if p := se.Plain(); strings.Contains(p, "refused") {
		t.Errorf("plain words leak the service's error: %q", p)
	}

	// Again, with the service back: both are made.
	pg.failOn = ""
	if _, err := s.Provision(ctx, testChannel, "payments", "UOWNER", nil, Provenance{}); err != nil {
		t.Fatal(err)
	}
	if !pg.spaces["payments"] || !cl.enclaves["payments"].Ready {
		t.Error("provision did not make both the space and the enclave")
	}
}

func TestServiceDeprovisionDropsDataFirst(t *testing.T) {
	ctx := context.Background()
	pg, s3 := newMem(Postgres), newMem(ObjectStore)
	x, _ := NewExoskeleton(pg, s3)
	cl := &memCluster{enclaves: map[string]Enclave{}}
	s := &Service{Cluster: cl, Exoskeleton: x}
	if _, err := s.Provision(ctx, testChannel, "payments", "UOWNER", nil, Provenance{}); err != nil {
		t.Fatal(err)
	}
	u, err := s.Usage(ctx, "payments")
	if err != nil || len(u) != 2 || u[0].Kind != Postgres || !u[0].Exists || u[1].Kind != ObjectStore {
		t.Fatalf("usage = %+v, %v", u, err)
	}

	// One service fails: the other is still dropped, the enclave stays
	// so that deprovisioning again can finish.
	pg.failOn = "drop"
	if err := s.Deprovision(ctx, "payments", Provenance{}); !errors.Is(err, errDown) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := cl.enclaves["payments"]; !ok {
		t.Fatal("the enclave went although its database was not dropped")
	}
	if len(s3.dropped) != 1 {
		t.Error("one failing service stopped the others being dropped")
	}
	pg.failOn = ""
	if err := s.Deprovision(ctx, "payments", Provenance{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := cl.enclaves["payments"]; ok || pg.spaces["payments"] {
		t.Error("deprovision left the enclave or its database")
	}
}

func TestDeriveSecret(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	seen := map[string][]string{}
	for _, parts := range [][]string{
		{"postgres", "payments", "ledger"},
		{"postgres", "payments", "ledge", "r"},
		{"postgres", "paymentsledger"},
		{"s3", "payments", "ledger"},
		{"postgres", "payment", "sledger"},
	} {
		s := DeriveSecret(key, parts...)
		if prev, ok := seen[s]; ok {
			t.Errorf("%v and %v derive the same secret", prev, parts)
		}
		seen[s] = parts
		if again := DeriveSecret(key, parts...); again != s {
			t.Errorf("%v: not deterministic", parts)
		}
		if other := DeriveSecret([]byte("another key, also 32 bytes long!"), parts...); other == s {
			t.Errorf("%v: the key does not matter", parts)
		}
		if len(s) < 40 || strings.ContainsAny(s, "+/='\"\\ ") {
			t.Errorf("%q is not a long, quote-safe secret", s)
		}
	}
}
