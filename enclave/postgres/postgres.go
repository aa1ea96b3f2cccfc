// Package postgres is the exoskeleton's Postgres service: on one shared
// server the platform team runs, every enclave gets a database of its
// own, and every tentacle a login role and a schema in it.
//
// Postgres itself keeps them apart: an enclave's database refuses
// CONNECT to everyone but its tentacles' roles, its public schema takes
// nobody's tables, and a tentacle's schema is owned by its role alone,
// so a tentacle can neither read nor write another's tables. What it can
// still see is the catalog: the names of the other schemas and roles.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kraken-ops/kraken/enclave"
)

// Config is the shared server, as the platform team configures it.
type Config struct {
	// AdminURL is the DSN of a role with CREATEDB and CREATEROLE (a
	// superuser works, and is not needed).
	AdminURL string
	// Host and Port are what tentacles dial; empty and zero take the
	// AdminURL's.
	Host string
	Port int
	// TLS says tentacles must connect with TLS.
	TLS bool
	// Network is copied into every Space: what a tentacle's egress
	// opens to reach the server.
	Network []enclave.Network
	// Key derives every tentacle's password; at least 32 bytes, and the
	// same on every replica.
	Key []byte
	// Prefix starts the name of everything the backend creates, so
	// several installations (and test runs) can share a server; empty
	// means "kraken".
	Prefix string
	// ConnectionLimit is how many sessions one tentacle may hold at once,
	// so one tentacle cannot take all the server's connections; zero
	// means 10.
	ConnectionLimit int
}

// Backend is the Postgres exoskeleton service. It is safe for
// concurrent use, also by several replicas sharing the server.
type Backend struct {
	pool      *pgxpool.Pool
	conn      *pgx.ConnConfig // the admin's, to open enclave databases with
	superuser bool
	host      string
	port      int
	tls       bool
	network   []enclave.Network
	key       []byte
	prefix    string
	connLimit int
}

var _ enclave.Backend = (*Backend)(nil)

// Errors callers branch on.
var (
	// ErrUnreachable means the server did not answer: down, restarting,
	// or the address is wrong. Retrying later is the remedy.
	ErrUnreachable error = &plainError{"the enclave database server is not reachable", "the enclave database server is not reachable right now; try again in a minute"}
	// ErrNotOpen means a tentacle was granted a room in an enclave whose
	// database was not made (Open) or was dropped.
	ErrNotOpen = errors.New("the enclave has no database")
)

// plainError is a sentinel that also says, in Plain, what the person who
// asked should read.
type plainError struct{ msg, plain string }

func (e *plainError) Error() string { return e.msg }
func (e *plainError) Plain() string { return e.plain }

// New connects to the server and checks that the admin role may create
// databases and roles.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.AdminURL == "" {
		return nil, errors.New("postgres: the admin URL is empty: set the DSN of a role with CREATEDB and CREATEROLE")
	}
	if len(cfg.Key) < 32 {
		return nil, fmt.Errorf("postgres: the key is %d bytes, it must be at least 32", len(cfg.Key))
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "kraken"
	}
	if err := checkPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("postgres: port %d is not a TCP port", cfg.Port)
	}
	if cfg.ConnectionLimit < 0 {
		return nil, fmt.Errorf("postgres: connection limit %d is negative", cfg.ConnectionLimit)
	}
	if cfg.ConnectionLimit == 0 {
		cfg.ConnectionLimit = 10
	}
	pc, err := pgxpool.ParseConfig(cfg.AdminURL)
	if err != nil {
		// pgx's message quotes the DSN, and redacts its password only
		// as well as it can parse what failed to parse.
		return nil, errors.New("postgres: the admin URL is not a valid connection string (details left out: it may hold a password)")
	}
	if cfg.Host == "" {
		cfg.Host = pc.ConnConfig.Host
		if strings.HasPrefix(cfg.Host, "/") {
			return nil, fmt.Errorf("postgres: the admin URL connects through the unix socket %s, which tentacles cannot reach: set Host", cfg.Host)
		}
	}
	if cfg.Port == 0 {
		cfg.Port = int(pc.ConnConfig.Port)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, errors.New("postgres: the admin URL is not a valid connection string (details left out: it may hold a password)")
	}
	b := &Backend{
		pool:      pool,
		conn:      pc.ConnConfig,
		host:      cfg.Host,
		port:      cfg.Port,
		tls:       cfg.TLS,
		network:   copyNetwork(cfg.Network),
		key:       cfg.Key,
		prefix:    cfg.Prefix,
		connLimit: cfg.ConnectionLimit,
	}
	if err := b.checkAdmin(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) checkAdmin(ctx context.Context) error {
	var (
		name                    string
		super, createdb, create bool
	)
	err := b.pool.QueryRow(ctx, `SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user`).
		Scan(&name, &super, &createdb, &create)
	if err != nil {
		return b.fail("check the admin role", err)
	}
	switch {
	case super:
		b.superuser = true
	case !createdb && !create:
		return fmt.Errorf("postgres: the admin role %s can create neither databases nor roles: ALTER ROLE it CREATEDB CREATEROLE", name)
	case !createdb:
		return fmt.Errorf("postgres: the admin role %s cannot create databases: ALTER ROLE it CREATEDB", name)
	case !create:
		return fmt.Errorf("postgres: the admin role %s cannot create roles: ALTER ROLE it CREATEROLE", name)
	}
	return nil
}

// Close closes the backend's connections.
func (b *Backend) Close() { b.pool.Close() }

// Kind is enclave.Postgres.
func (b *Backend) Kind() enclave.Kind { return enclave.Postgres }

// lockClass is the first key of the backend's advisory locks, so they
// do not meet anyone else's on the server.
const lockClass int32 = 0x6b726b6e // "krkn"

// locked runs fn on an admin connection holding the enclave's advisory
// lock, so replicas working on one enclave take turns: two that both
// find no role would otherwise both create it, and one would fail. The
// lock is the session's, as CREATE DATABASE cannot run in a transaction.
func (b *Backend) locked(ctx context.Context, database string, fn func(*pgx.Conn) error) error {
	c, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, lockClass, database); err != nil {
		c.Release()
		return err
	}
	defer func() {
		// Unlock even when ctx is done: a pooled connection must not
		// keep the lock. Failing that, closing the session drops it.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := c.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockClass, database); err != nil {
			c.Hijack().Close(uctx)
			return
		}
		c.Release()
	}()
	return fn(c.Conn())
}

// inDatabase runs fn connected to database as the admin. The connection
// is not pooled: it would stand in the way of DROP DATABASE.
func (b *Backend) inDatabase(ctx context.Context, database string, fn func(*pgx.Conn) error) error {
	cc := b.conn.Copy()
	cc.Database = database
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		c.Close(cctx)
	}()
	return fn(c)
}

// fail wraps err with what the backend was doing, and says plainly when
// the server did not answer at all.
func (b *Backend) fail(doing string, err error) error {
	if unreachable(err) {
		at := net.JoinHostPort(b.conn.Host, strconv.Itoa(int(b.conn.Port)))
		return fmt.Errorf("postgres: %s: %w at %s: %w", doing, ErrUnreachable, at, err)
	}
	return fmt.Errorf("postgres: %s: %w", doing, err)
}

func unreachable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// The server answered; only "starting up" and "shutting down"
		// mean it cannot serve yet.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P03"
	}
	// A connection that could not be made, or that broke under a query
	// (the server went away; pgx says "unexpected EOF").
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// sqlState is err's SQLSTATE, or "" when the server did not say.
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// quote quotes an identifier for SQL text.
func quote(name string) string { return pgx.Identifier{name}.Sanitize() }
