package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNewRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	s := server(t)
	// Roles the server has that lack what the backend needs.
	weak, dbOnly := s.prefix+"_weak", s.prefix+"_dbonly"
	for _, q := range []string{
		"CREATE ROLE " + quote(weak) + " LOGIN",
		"CREATE ROLE " + quote(dbOnly) + " LOGIN CREATEDB",
	} {
		if _, err := s.admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, r := range []string{weak, dbOnly} {
			if _, err := s.admin.Exec(ctx, "DROP ROLE IF EXISTS "+quote(r)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	as := func(role string) string {
		return fmt.Sprintf("postgres://%s:hunter2hunter2@127.0.0.1:5432/postgres?sslmode=disable", role)
	}
	const password = "hunter2hunter2"
	tests := []struct {
		name   string
		edit   func(*Config)
		want   string
		wantIs error
	}{
		{"no admin URL", func(c *Config) { c.AdminURL = "" }, "admin URL is empty", nil},
		{"short key", func(c *Config) { c.Key = c.Key[:31] }, "key is 31 bytes, it must be at least 32", nil},
		{"no key", func(c *Config) { c.Key = nil }, "key is 0 bytes", nil},
		{"prefix with underscore", func(c *Config) { c.Prefix = "my_kraken" }, `prefix "my_kraken" must be`, nil},
		{"port out of range", func(c *Config) { c.Port = 70000 }, "port 70000 is not a TCP port", nil},
		{"negative connection limit", func(c *Config) { c.ConnectionLimit = -1 }, "connection limit -1 is negative", nil},
		{"unparsable URL", func(c *Config) { c.AdminURL = "postgres://u:" + password + "@127.0.0.1:port/db" }, "not a valid connection string", nil},
		{"unix socket", func(c *Config) { c.AdminURL = "postgres:///postgres?host=/var/run/postgresql" }, "unix socket /var/run/postgresql, which tentacles cannot reach", nil},
		{"nobody listening", func(c *Config) {
			c.AdminURL = "postgres://postgres:" + password + "@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=3"
		}, "the enclave database server is not reachable", ErrUnreachable},
		{"role without rights", func(c *Config) { c.AdminURL = as(weak) }, "can create neither databases nor roles", nil},
		{"role without CREATEROLE", func(c *Config) { c.AdminURL = as(dbOnly) }, "cannot create roles", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{AdminURL: s.url, Key: testKey, Prefix: s.prefix}
			tt.edit(&cfg)
			b, err := New(ctx, cfg)
			if err == nil {
				b.Close()
				t.Fatal("New accepted it")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want it to say %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("New = %v, want errors.Is %v", err, tt.wantIs)
			}
			noSecret(t, err, password)
		})
	}
}

func TestNewDefaults(t *testing.T) {
	b := newBackend(t, func(c *Config) { c.Prefix = "" })
	if b.prefix != "kraken" || b.host != "127.0.0.1" || b.port != 5432 || b.connLimit != 10 || b.Kind() != "postgres" {
		t.Errorf("defaults: prefix %q, host %q, port %d, connection limit %d, kind %q", b.prefix, b.host, b.port, b.connLimit, b.Kind())
	}
	var plain interface{ Plain() string }
	if !errors.As(ErrUnreachable, &plain) || !strings.Contains(plain.Plain(), "try again") {
		t.Error("ErrUnreachable has no plain words for people")
	}
}
