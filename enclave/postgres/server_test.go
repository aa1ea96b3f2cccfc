package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kraken-ops/kraken/enclave"
)

// The tests run against a real Postgres whose role may create databases
// and roles. Everything they make is named after a prefix of their own,
// kt + 10 random characters, so runs never meet; a run holds an advisory
// lock on its prefix while it lives, so the next run can tell a killed
// run's leftovers (no lock) from a live run's, and drops them.

const defaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// testLockClass keys the runs' liveness locks, apart from the backend's.
const testLockClass int32 = 0x6b746573 // "ktes"

var testKey = []byte("kraken test key, 32 bytes long!!")

type testServer struct {
	url    string
	prefix string
	admin  *pgxpool.Pool // superuser, for checks behind the backend's back
	live   *pgx.Conn     // holds this run's liveness lock
}

var (
	serverOnce sync.Once
	theServer  *testServer
	serverErr  error
)

// server is the test Postgres, once per test binary.
func server(t testing.TB) *testServer {
	t.Helper()
	serverOnce.Do(func() { theServer, serverErr = startServer() })
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return theServer
}

func startServer() (*testServer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	u := os.Getenv("KRAKEN_TEST_POSTGRES_URL")
	if u == "" {
		u = defaultTestURL
	}
	shown := "KRAKEN_TEST_POSTGRES_URL"
	if pu, err := url.Parse(u); err == nil {
		shown = pu.Redacted()
	}
	live, err := pgx.Connect(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("the test Postgres at %s is not reachable: %v\n"+
			"start it (e.g. `pg_ctlcluster 15 main start`) or set KRAKEN_TEST_POSTGRES_URL to the DSN of a superuser", shown, err)
	}
	admin, err := pgxpool.New(ctx, u)
	if err != nil {
		return nil, err
	}
	s := &testServer{url: u, prefix: "kt" + randomName(10), admin: admin, live: live}
	if _, err := live.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, testLockClass, s.prefix); err != nil {
		return nil, err
	}
	// Dropping a killed benchmark's hundreds of databases takes a while.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer scancel()
	if err := s.sweep(sctx); err != nil {
		fmt.Fprintf(os.Stderr, "postgres tests: leftovers of earlier runs were not all dropped: %v\n", err)
	}
	return s, nil
}

func randomName(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// sweep drops what runs that no longer hold their lock left behind.
func (s *testServer) sweep(ctx context.Context) error {
	rows, err := s.admin.Query(ctx, `SELECT DISTINCT substr(n, 1, 12) FROM (
		SELECT datname AS n FROM pg_database UNION ALL SELECT rolname FROM pg_roles) x
		WHERE n ~ '^kt[a-z0-9]{10}_'`)
	if err != nil {
		return err
	}
	prefixes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range prefixes {
		if p == s.prefix {
			continue
		}
		var free bool
		if err := s.live.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, testLockClass, p).Scan(&free); err != nil {
			return err
		}
		if !free {
			continue // a run still alive
		}
		errs = append(errs, s.dropPrefix(ctx, p))
		if _, err := s.live.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, testLockClass, p); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// dropPrefix drops every database and role named prefix_*. Roles go in
// rounds: one may hold what another needs gone first.
func (s *testServer) dropPrefix(ctx context.Context, prefix string) error {
	rows, err := s.admin.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, prefix+"_")
	if err != nil {
		return err
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, db := range dbs {
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quote(db)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", db, err)
		}
	}
	var last error
	for range 3 {
		last = nil
		rows, err := s.admin.Query(ctx, `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)`, prefix+"_")
		if err != nil {
			return err
		}
		roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(roles) == 0 {
			return err
		}
		for _, r := range roles {
			s.admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, r)
			if _, err := s.admin.Exec(ctx, "DROP ROLE IF EXISTS "+quote(r)); err != nil {
				last = fmt.Errorf("drop role %s: %w", r, err)
			}
		}
	}
	return last
}

// newBackend is a backend on the test server, closed when t ends.
func newBackend(t testing.TB, edit ...func(*Config)) *Backend {
	t.Helper()
	s := server(t)
	cfg := Config{
		AdminURL: s.url,
		Key:      testKey,
		Prefix:   s.prefix,
		Network:  []enclave.Network{{CIDR: "127.0.0.1/32", Port: 5432}},
	}
	for _, e := range edit {
		e(&cfg)
	}
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// open opens the enclave and drops it when t ends.
func open(t testing.TB, b *Backend, name string) {
	t.Helper()
	t.Cleanup(func() {
		if err := b.Drop(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := b.Open(context.Background(), name); err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
}

func grant(t testing.TB, b *Backend, name, tentacle string) enclave.Space {
	t.Helper()
	s, err := b.Grant(context.Background(), name, tentacle)
	if err != nil {
		t.Fatalf("Grant(%s, %s): %v", name, tentacle, err)
	}
	return s
}

// connect logs in with a space's credentials, as a tentacle would.
func connect(ctx context.Context, s enclave.Space) (*pgx.Conn, error) {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.User, s.Secret),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + s.Database,
		RawQuery: "sslmode=disable&connect_timeout=5",
	}
	return pgx.Connect(ctx, u.String())
}

func mustConnect(t testing.TB, s enclave.Space) *pgx.Conn {
	t.Helper()
	c, err := connect(context.Background(), s)
	if err != nil {
		t.Fatalf("%s cannot connect to %s: %v", s.User, s.Database, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// proxy forwards TCP to the test server until it is stopped, so a test
// can take the server away from a backend.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(p.stop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
