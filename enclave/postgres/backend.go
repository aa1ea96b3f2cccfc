package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"

	"github.com/kraken-ops/kraken/enclave"
)

// Open makes the enclave's database, owned by a NOLOGIN role of its own,
// that nobody may connect to until Grant says so, and whose public
// schema takes nobody's tables. Running it again repairs what drifted.
func (b *Backend) Open(ctx context.Context, name string) error {
	n, err := namesOf(b.prefix, name)
	if err != nil {
		return err
	}
	err = b.locked(ctx, n.database, func(c *pgx.Conn) error { return b.open(ctx, c, name, n) })
	if err != nil {
		return b.fail("open the database of enclave "+name, err)
	}
	return nil
}

func (b *Backend) open(ctx context.Context, c *pgx.Conn, name string, n spaceNames) error {
	owner, db := quote(n.owner), quote(n.database)
	if err := b.ensureRole(ctx, c, n.owner, "CREATE ROLE "+owner+" NOLOGIN"); err != nil {
		return err
	}
	if !b.superuser {
		// A role with CREATEROLE may only make a database for an owner
		// it is a member of; membership of the owner also lets it grant
		// in the database and terminate the tentacles' sessions.
		if _, err := c.Exec(ctx, "GRANT "+owner+" TO CURRENT_USER"); err != nil {
			return fmt.Errorf("make the admin a member of %s: %w", n.owner, err)
		}
	}
	var exists bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, n.database).Scan(&exists); err != nil {
		return err
	}
	stmts := []string{
		"ALTER DATABASE " + db + " OWNER TO " + owner,
		"COMMENT ON DATABASE " + db + " IS " + quoteLiteral("kraken: the database of enclave "+name),
		"COMMENT ON ROLE " + owner + " IS " + quoteLiteral("kraken: the owner of enclave "+name+"'s database"),
		// CONNECT and TEMPORARY go to PUBLIC by default: to every role
		// on the server, other enclaves' tentacles included.
		"REVOKE ALL ON DATABASE " + db + " FROM PUBLIC",
	}
	if !exists {
		// No transaction can hold CREATE DATABASE; the lock keeps a
		// second replica from racing this one.
		stmts[0] = "CREATE DATABASE " + db + " OWNER " + owner
	}
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			return err
		}
	}
	return b.inDatabase(ctx, n.database, func(c *pgx.Conn) error {
		// A schema everyone may create in is a schema tentacles share.
		_, err := c.Exec(ctx, `DO $$ BEGIN
			IF EXISTS (SELECT FROM pg_namespace WHERE nspname = 'public') THEN
				REVOKE ALL ON SCHEMA public FROM PUBLIC;
			END IF;
		END $$`)
		return err
	})
}

// ensureRole runs create when role does not exist. The caller holds the
// enclave's lock.
func (b *Backend) ensureRole(ctx context.Context, c *pgx.Conn, role, create string) error {
	var exists bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := c.Exec(ctx, create); err != nil {
		return fmt.Errorf("create role %s: %w", role, err)
	}
	return nil
}

// Grant makes the tentacle's login role and schema in its enclave's
// database, and sets its password again (repairing a changed one, or a
// Revoke). The role may connect to that database alone, and finds its
// schema first on its search_path.
//
// The enclave's owner role is made a member of the tentacle's role: that
// records which roles Drop must remove, and gives the tentacle nothing
// (the other way round would make it the database's owner).
func (b *Backend) Grant(ctx context.Context, name, tentacle string) (enclave.Space, error) {
	n, err := namesOf(b.prefix, name)
	if err != nil {
		return enclave.Space{}, err
	}
	r, err := roomNamesOf(b.prefix, name, tentacle)
	if err != nil {
		return enclave.Space{}, err
	}
	secret := enclave.DeriveSecret(b.key, string(enclave.Postgres), name, tentacle)
	verifier, err := scramVerifier(secret, scramSalt(b.key, r.role))
	if err != nil {
		return enclave.Space{}, err
	}
	err = b.locked(ctx, n.database, func(c *pgx.Conn) error {
		return b.grant(ctx, c, name, tentacle, n, r, verifier)
	})
	if err != nil {
		return enclave.Space{}, b.fail(fmt.Sprintf("grant tentacle %s a room in enclave %s", tentacle, name), err)
	}
	return enclave.Space{
		Kind:     enclave.Postgres,
		Protocol: "postgresql",
		Host:     b.host,
		Port:     b.port,
		TLS:      b.tls,
		Database: n.database,
		Schema:   r.schema,
		User:     r.role,
		Secret:   secret,
		Network:  copyNetwork(b.network),
	}, nil
}

func (b *Backend) grant(ctx context.Context, c *pgx.Conn, name, tentacle string, n spaceNames, r roomNames, verifier string) error {
	var exists bool
	if err := c.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, n.database).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%w: open it first", ErrNotOpen)
	}
	role, owner, db, schema := quote(r.role), quote(n.owner), quote(n.database), quote(r.schema)
	login := fmt.Sprintf(" LOGIN PASSWORD %s CONNECTION LIMIT %d", quoteLiteral(verifier), b.connLimit)
	// The role and its record in the owner's memberships come together,
	// so Drop never misses a role a cut-short Grant made.
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if err := b.ensureRole(ctx, tx.Conn(), r.role, "CREATE ROLE "+role+login); err != nil {
			return err
		}
		var member bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_auth_members m
			JOIN pg_roles t ON t.oid = m.roleid JOIN pg_roles o ON o.oid = m.member
			WHERE t.rolname = $1 AND o.rolname = $2)`, r.role, n.owner).Scan(&member)
		if err != nil {
			return err
		}
		stmts := []string{
			"ALTER ROLE " + role + login,
			"COMMENT ON ROLE " + role + " IS " + quoteLiteral("kraken: tentacle "+tentacle+" of enclave "+name),
		}
		if !member {
			stmts = append(stmts, "GRANT "+role+" TO "+owner)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range []string{
		"GRANT CONNECT ON DATABASE " + db + " TO " + role,
		"ALTER ROLE " + role + " IN DATABASE " + db + " SET search_path = " + schema,
	} {
		if _, err := c.Exec(ctx, s); err != nil {
			return err
		}
	}
	return b.inDatabase(ctx, n.database, func(c *pgx.Conn) error {
		for _, s := range []string{
			"CREATE SCHEMA IF NOT EXISTS " + schema + " AUTHORIZATION " + role,
			"ALTER SCHEMA " + schema + " OWNER TO " + role,
			"REVOKE ALL ON SCHEMA " + schema + " FROM PUBLIC",
		} {
			if _, err := c.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
}

// Revoke stops the tentacle's role from logging in and ends its
// sessions. Its schema and tables stay until the enclave is dropped; a
// later Grant lets it in again.
func (b *Backend) Revoke(ctx context.Context, name, tentacle string) error {
	n, err := namesOf(b.prefix, name)
	if err != nil {
		return err
	}
	r, err := roomNamesOf(b.prefix, name, tentacle)
	if err != nil {
		return err
	}
	err = b.locked(ctx, n.database, func(c *pgx.Conn) error { return shut(ctx, c, r.role) })
	if err != nil {
		return b.fail(fmt.Sprintf("revoke tentacle %s of enclave %s", tentacle, name), err)
	}
	return nil
}

// shut makes role NOLOGIN and terminates its sessions; a role that is
// gone is shut already.
func shut(ctx context.Context, c *pgx.Conn, role string) error {
	if _, err := c.Exec(ctx, "ALTER ROLE "+quote(role)+" NOLOGIN"); err != nil {
		if sqlState(err) == "42704" { // undefined_object
			return nil
		}
		return err
	}
	_, err := c.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
	return err
}

// Usage says how big the enclave's database is and how many tables it
// holds. Tables are counted in every schema but the system's: the
// tentacles' schemas, and whatever an administrator put elsewhere.
func (b *Backend) Usage(ctx context.Context, name string) (enclave.Usage, error) {
	n, err := namesOf(b.prefix, name)
	if err != nil {
		return enclave.Usage{}, err
	}
	u := enclave.Usage{Kind: enclave.Postgres, What: "database " + n.database}
	err = b.pool.QueryRow(ctx, `SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1`, n.database).Scan(&u.Bytes)
	if errors.Is(err, pgx.ErrNoRows) || sqlState(err) == "3D000" { // dropped meanwhile
		return u, nil
	}
	if err != nil {
		return u, b.fail("measure the database of enclave "+name, err)
	}
	err = b.inDatabase(ctx, n.database, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p') AND s.nspname <> 'information_schema' AND s.nspname NOT LIKE 'pg\_%'`).Scan(&u.Objects)
	})
	if sqlState(err) == "3D000" { // invalid_catalog_name: dropped meanwhile
		u.Bytes = 0
		return u, nil
	}
	if err != nil {
		return u, b.fail("count the tables of enclave "+name, err)
	}
	u.Exists = true
	return u, nil
}

// Drop destroys the enclave's database, its tentacles' roles and its
// owner role, ending their sessions. What is gone already is skipped.
func (b *Backend) Drop(ctx context.Context, name string) error {
	n, err := namesOf(b.prefix, name)
	if err != nil {
		return err
	}
	err = b.locked(ctx, n.database, func(c *pgx.Conn) error { return b.drop(ctx, c, n) })
	if err != nil {
		return b.fail("drop the database of enclave "+name, err)
	}
	return nil
}

func (b *Backend) drop(ctx context.Context, c *pgx.Conn, n spaceNames) error {
	// FORCE terminates the sessions in the database first.
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+quote(n.database)+" WITH (FORCE)"); err != nil {
		return err
	}
	rows, err := c.Query(ctx, `SELECT t.rolname FROM pg_auth_members m
		JOIN pg_roles t ON t.oid = m.roleid JOIN pg_roles o ON o.oid = m.member
		WHERE o.rolname = $1 ORDER BY 1`, n.owner)
	if err != nil {
		return err
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, role := range append(roles, n.owner) {
		// A tentacle may hold a session in another database open to
		// PUBLIC; a dropped role must not keep it.
		if err := shut(ctx, c, role); err != nil {
			return fmt.Errorf("end the sessions of role %s: %w", role, err)
		}
		if _, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+quote(role)); err != nil {
			return fmt.Errorf("drop role %s: %w", role, err)
		}
	}
	return nil
}

func copyNetwork(ns []enclave.Network) []enclave.Network {
	if ns == nil {
		return nil
	}
	out := make([]enclave.Network, len(ns))
	for i, n := range ns {
		n.Pods = maps.Clone(n.Pods)
		out[i] = n
	}
	return out
}
