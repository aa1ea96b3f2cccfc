package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-ops/kraken/enclave"
)

// The local test server trusts every connection from 127.0.0.1, so it
// does not check passwords: what these tests prove is that Postgres'
// own privileges keep tentacles and enclaves apart, whoever logs in.
// That the password set is the derived one is checked on the stored
// SCRAM verifier (and the verifier itself against RFC 7677).

func TestOpenAndGrantTwice(t *testing.T) {
	ctx := context.Background()
	s := server(t)
	b := newBackend(t)
	open(t, b, "idem")
	if err := b.Open(ctx, "idem"); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	first := grant(t, b, "idem", "reports")
	first.Network[0].Pods = map[string]string{"changed": "by the caller"}
	second := grant(t, b, "idem", "reports")
	want := enclave.Space{
		Kind:     enclave.Postgres,
		Protocol: "postgresql",
		Host:     "127.0.0.1",
		Port:     5432,
		Database: s.prefix + "_idem",
		Schema:   "reports",
		User:     s.prefix + "_idem_reports",
		Secret:   enclave.DeriveSecret(testKey, "postgres", "idem", "reports"),
		Network:  []enclave.Network{{CIDR: "127.0.0.1/32", Port: 5432}},
	}
	if !reflect.DeepEqual(second, want) {
		t.Errorf("second Grant = %+v\nwant %+v", redact(second), redact(want))
	}

	var (
		verifier string
		login    bool
		limit    int
		public   bool
	)
	err := s.admin.QueryRow(ctx, `SELECT rolpassword, rolcanlogin, rolconnlimit,
		has_database_privilege('public', $2, 'CONNECT')
		FROM pg_authid WHERE rolname = $1`, want.User, want.Database).Scan(&verifier, &login, &limit, &public)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := scramVerifier(want.Secret, scramSalt(testKey, want.User)); v != verifier {
		t.Error("the stored password is not the derived secret's verifier")
	}
	if !login || limit != 10 {
		t.Errorf("role: login %v, connection limit %d; want true, 10", login, limit)
	}
	if public {
		t.Error("PUBLIC may connect to the enclave's database")
	}

	// A password changed behind the backend's back is set again.
	if _, err := s.admin.Exec(ctx, "ALTER ROLE "+quote(want.User)+" PASSWORD 'drifted' CONNECTION LIMIT 500"); err != nil {
		t.Fatal(err)
	}
	grant(t, b, "idem", "reports")
	var again string
	if err := s.admin.QueryRow(ctx, `SELECT rolpassword, rolconnlimit FROM pg_authid WHERE rolname = $1`, want.User).Scan(&again, &limit); err != nil {
		t.Fatal(err)
	}
	if again != verifier || limit != 10 {
		t.Error("Grant did not repair the role's password and connection limit")
	}
}

// TestConcurrentOpenAndGrant runs two replicas' worth of backends on one
// enclave at once: the advisory lock must keep them from tripping over
// each other's CREATE ROLE and CREATE DATABASE.
func TestConcurrentOpenAndGrant(t *testing.T) {
	ctx := context.Background()
	s := server(t)
	replicas := []*Backend{newBackend(t), newBackend(t)}
	t.Cleanup(func() {
		if err := replicas[0].Drop(ctx, "conc"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	tentacles := []string{"t1", "t2", "t3"}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			b := replicas[i%2]
			if err := b.Open(ctx, "conc"); err != nil {
				errs <- err
				return
			}
			if _, err := b.Grant(ctx, "conc", tentacles[i%3]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Open/Grant: %v", err)
	}
	for _, tn := range tentacles {
		c := mustConnect(t, grant(t, replicas[0], "conc", tn))
		var schema string
		if err := c.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil || schema != tn {
			t.Errorf("tentacle %s: current_schema() = %q, %v", tn, schema, err)
		}
	}
	var members int
	err := s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_auth_members m JOIN pg_roles o ON o.oid = m.member
		WHERE o.rolname = $1`, s.prefix+"_conc").Scan(&members)
	if err != nil || members != 3 {
		t.Errorf("the owner role records %d tentacle roles (%v), want 3", members, err)
	}
}

func TestTentaclesAreIsolated(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	open(t, b, "iso-x")
	open(t, b, "iso-y")
	a := grant(t, b, "iso-x", "alpha")
	bb := grant(t, b, "iso-x", "beta")
	y := grant(t, b, "iso-y", "gamma")

	ca := mustConnect(t, a)
	var user, schema string
	if err := ca.QueryRow(ctx, `SELECT current_user, current_schema()`).Scan(&user, &schema); err != nil {
		t.Fatal(err)
	}
	if user != a.User || schema != a.Schema {
		t.Fatalf("alpha is %s in schema %s, want %s in %s", user, schema, a.User, a.Schema)
	}
	for _, q := range []string{
		`CREATE TABLE notes (id int PRIMARY KEY, body text)`,
		`INSERT INTO notes VALUES (1, 'kept')`,
	} {
		if _, err := ca.Exec(ctx, q); err != nil {
			t.Fatalf("alpha: %s: %v", q, err)
		}
	}
	var body, in string
	if err := ca.QueryRow(ctx, `SELECT n.body, c.relnamespace::regnamespace::text FROM notes n, pg_class c WHERE c.oid = 'notes'::regclass`).Scan(&body, &in); err != nil || body != "kept" {
		t.Fatalf("alpha reads %q, %v", body, err)
	}
	if in != quote(a.Schema) && in != a.Schema {
		t.Errorf("alpha's table is in schema %s, want %s", in, a.Schema)
	}

	// Someone opens the public schema to all; Open closes it again.
	err := asAdmin(t, a.Database, `GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC`)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Open(ctx, "iso-x"); err != nil {
		t.Fatal(err)
	}

	// Beta, same enclave: Postgres itself refuses.
	cb := mustConnect(t, bb)
	notes := quote(a.Schema) + ".notes"
	for _, q := range []string{
		`SELECT * FROM ` + notes,
		`INSERT INTO ` + notes + ` VALUES (2, 'from beta')`,
		`DELETE FROM ` + notes,
		`DROP TABLE ` + notes,
		`CREATE TABLE public.shared (id int)`,
		`CREATE SCHEMA shared`,
		`CREATE TABLE ` + quote(a.Schema) + `.planted (id int)`,
	} {
		_, err := cb.Exec(ctx, q)
		if got := sqlState(err); got != "42501" {
			t.Errorf("beta: %s: error %v (SQLSTATE %q), want insufficient_privilege 42501", q, err, got)
		}
	}

	// A tentacle of one enclave cannot connect to another's database.
	for _, cross := range []struct {
		who  enclave.Space
		into string
	}{{y, a.Database}, {a, y.Database}} {
		s := cross.who
		s.Database = cross.into
		c, err := connect(ctx, s)
		if err == nil {
			c.Close(ctx)
			t.Errorf("%s connected to %s", s.User, s.Database)
			continue
		}
		if got := sqlState(err); got != "42501" {
			t.Errorf("%s into %s: %v (SQLSTATE %q), want 42501", s.User, s.Database, err, got)
		}
		noSecret(t, err, s.Secret)
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	open(t, b, "rev")
	s := grant(t, b, "rev", "gone")
	c := mustConnect(t, s)
	if _, err := c.Exec(ctx, `CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(ctx, "rev", "gone"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := c.Exec(ctx, `SELECT 1`); err == nil {
		t.Error("the revoked tentacle's open session still works")
	}
	_, err := connect(ctx, s)
	if got := sqlState(err); got != "28000" {
		t.Errorf("login after Revoke: %v (SQLSTATE %q), want 28000 (role is not permitted to log in)", err, got)
	}
	for _, tn := range []string{"gone", "never-granted"} {
		if err := b.Revoke(ctx, "rev", tn); err != nil {
			t.Errorf("Revoke(%s) again: %v", tn, err)
		}
	}
	// The data stayed, and a Grant lets the tentacle back in.
	c = mustConnect(t, grant(t, b, "rev", "gone"))
	var id int
	if err := c.QueryRow(ctx, `SELECT id FROM kept`).Scan(&id); err != nil || id != 7 {
		t.Errorf("after a new Grant: kept = %d, %v; want 7", id, err)
	}
}

func TestUsageAndDrop(t *testing.T) {
	ctx := context.Background()
	s := server(t)
	b := newBackend(t)
	u, err := b.Usage(ctx, "used")
	want := enclave.Usage{Kind: enclave.Postgres, What: "database " + s.prefix + "_used"}
	if err != nil || u != want {
		t.Fatalf("Usage before Open = %+v, %v; want %+v", u, err, want)
	}
	open(t, b, "used")
	one, two := grant(t, b, "used", "one"), grant(t, b, "used", "two")
	c1 := mustConnect(t, one)
	if _, err := c1.Exec(ctx, `CREATE TABLE a (x int); CREATE TABLE b (x int); INSERT INTO a SELECT generate_series(1, 1000)`); err != nil {
		t.Fatal(err)
	}
	if _, err := mustConnect(t, two).Exec(ctx, `CREATE TABLE c (x int)`); err != nil {
		t.Fatal(err)
	}
	u, err = b.Usage(ctx, "used")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Exists || u.Bytes <= 0 || u.Objects != 3 || u.What != want.What || u.Kind != enclave.Postgres {
		t.Errorf("Usage = %+v, want it to exist with bytes > 0 and 3 tables", u)
	}

	if err := b.Drop(ctx, "used"); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	if _, err := c1.Exec(ctx, `SELECT 1`); err == nil {
		t.Error("a session in the dropped database still works")
	}
	var dbs, roles int
	err = s.admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_database WHERE datname = $1),
		(SELECT count(*) FROM pg_roles WHERE rolname = ANY($2))`,
		one.Database, []string{s.prefix + "_used", one.User, two.User}).Scan(&dbs, &roles)
	if err != nil {
		t.Fatal(err)
	}
	if dbs != 0 || roles != 0 {
		t.Errorf("after Drop: %d databases and %d roles left, want none", dbs, roles)
	}
	if err := b.Drop(ctx, "used"); err != nil {
		t.Errorf("second Drop: %v", err)
	}
	if u, err := b.Usage(ctx, "used"); err != nil || u.Exists {
		t.Errorf("Usage after Drop = %+v, %v; want it gone", u, err)
	}
	if _, err := b.Grant(ctx, "used", "one"); !errors.Is(err, ErrNotOpen) {
		t.Errorf("Grant after Drop = %v, want ErrNotOpen", err)
	}
}

// TestAdminWithoutSuperuser runs the whole life of an enclave as the
// platform would configure it: a role with CREATEDB and CREATEROLE only.
func TestAdminWithoutSuperuser(t *testing.T) {
	ctx := context.Background()
	s := server(t)
	admin := s.prefix + "_admin"
	if _, err := s.admin.Exec(ctx, "CREATE ROLE "+quote(admin)+" LOGIN CREATEDB CREATEROLE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := s.admin.Exec(ctx, "DROP ROLE "+quote(admin)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	cfg, err := pgx.ParseConfig(s.url)
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, func(c *Config) {
		c.AdminURL = fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", admin, cfg.Host, cfg.Port, cfg.Database)
	})
	if b.superuser {
		t.Fatal("the backend thinks its admin is a superuser")
	}
	open(t, b, "plain")
	if err := b.Open(ctx, "plain"); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	sp := grant(t, b, "plain", "worker")
	c := mustConnect(t, sp)
	if _, err := c.Exec(ctx, `CREATE TABLE t (x int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `CREATE TABLE public.t (x int)`); sqlState(err) != "42501" {
		t.Errorf("create in public: %v, want 42501", err)
	}
	if u, err := b.Usage(ctx, "plain"); err != nil || !u.Exists || u.Objects != 1 || u.Bytes <= 0 {
		t.Errorf("Usage = %+v, %v", u, err)
	}
	if err := b.Revoke(ctx, "plain", "worker"); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := c.Exec(ctx, `SELECT 1`); err == nil {
		t.Error("Revoke left the session alive")
	}
	if err := b.Drop(ctx, "plain"); err != nil {
		t.Fatalf("Drop: %v", err)
	}
	var left int
	if err := s.admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)`,
		[]string{sp.User, s.prefix + "_plain"}).Scan(&left); err != nil || left != 0 {
		t.Errorf("after Drop %d roles left (%v)", left, err)
	}
}

// TestServerGoneAway takes the server from under a working backend: the
// error must say so in plain words, and hold no secret.
func TestServerGoneAway(t *testing.T) {
	ctx := context.Background()
	p := newProxy(t, "127.0.0.1:5432")
	b := newBackend(t, func(c *Config) {
		c.AdminURL = "postgres://postgres:hunter2hunter2@" + p.addr() + "/postgres?sslmode=disable&connect_timeout=3"
		c.Host, c.Port = "127.0.0.1", 5432
	})
	direct := newBackend(t)
	t.Cleanup(func() {
		if err := direct.Drop(ctx, "away"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := b.Open(ctx, "away"); err != nil {
		t.Fatalf("Open through the proxy: %v", err)
	}
	p.stop()
	ops := map[string]func() error{
		"Open":   func() error { return b.Open(ctx, "away") },
		"Grant":  func() error { _, err := b.Grant(ctx, "away", "t"); return err },
		"Revoke": func() error { return b.Revoke(ctx, "away", "t") },
		"Usage":  func() error { _, err := b.Usage(ctx, "away"); return err },
		"Drop":   func() error { return b.Drop(ctx, "away") },
	}
	for name, op := range ops {
		err := op()
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(fmt.Sprint(err), "the enclave database server is not reachable") {
			t.Errorf("%s with the server gone = %v, want ErrUnreachable", name, err)
		}
		noSecret(t, err, "hunter2hunter2")
		noSecret(t, err, enclave.DeriveSecret(testKey, "postgres", "away", "t"))
	}
}

func TestInvalidNamesAreRefused(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t)
	if err := b.Open(ctx, "Bad_Name"); err == nil || !strings.Contains(err.Error(), "lower-case") {
		t.Errorf("Open(Bad_Name) = %v", err)
	}
	if _, err := b.Grant(ctx, "ok", `x"; DROP ROLE postgres; --`); err == nil || !strings.Contains(err.Error(), "kebab-case") {
		t.Errorf("Grant with an odd tentacle name = %v", err)
	}
}

// asAdmin runs sql as the test server's superuser in database.
func asAdmin(t *testing.T, database, sql string) error {
	t.Helper()
	cfg, err := pgx.ParseConfig(server(t).url)
	if err != nil {
		return err
	}
	cfg.Database = database
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(context.Background(), sql)
	return err
}

func noSecret(t *testing.T, err error, secret string) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("an error holds a secret: %T", err)
	}
}

// redact keeps secrets out of test output.
func redact(s enclave.Space) enclave.Space {
	if s.Secret != "" {
		s.Secret = "<redacted>"
	}
	return s
}
