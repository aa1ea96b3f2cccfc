package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/enclave/natsuser/natstest"
	"github.com/kraken-ops/kraken/enclave/objectstore"
	"github.com/kraken-ops/kraken/enclave/objectstore/s3test"
	"github.com/kraken-ops/kraken/enclave/postgres"
)

func TestParseNetworks(t *testing.T) {
	tests := []struct {
		in   string
		want []enclave.Network
		err  string
	}{
		{"", nil, ""},
		{"10.0.5.0/24", []enclave.Network{{CIDR: "10.0.5.0/24"}}, ""},
		{"10.0.5.7/24", []enclave.Network{{CIDR: "10.0.5.0/24"}}, ""},
		{"10.0.5.7, fd00::1", []enclave.Network{{CIDR: "10.0.5.7/32"}, {CIDR: "fd00::1/128"}}, ""},
		{"ns:databases", []enclave.Network{{Namespace: "databases"}}, ""},
		{"ns:databases/app=postgres+role=primary", []enclave.Network{{Namespace: "databases", Pods: map[string]string{"app": "postgres", "role": "primary"}}}, ""},
		{"ns:", nil, "names no namespace"},
		{"ns:db/app", nil, "key=value"},
		{"postgres.db.svc", nil, "neither a CIDR"},
	}
	for _, tt := range tests {
		got, err := parseNetworks(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestExoSettings(t *testing.T) {
	key := strings.Repeat("k", 32)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "s3-secret")
	if err := os.WriteFile(secretFile, []byte("root-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		problems []string
		check    func(t *testing.T, s exoSettings)
	}{
		{"none", nil, nil, func(t *testing.T, s exoSettings) {
			if s.configured() {
				t.Error("services configured from nothing")
			}
		}},
		{"key missing", map[string]string{"KRAKEN_POSTGRES_URL": "postgres://kraken@db:5432/postgres"}, []string{"KRAKEN_EXOSKELETON_KEY (or KRAKEN_EXOSKELETON_KEY_FILE) must be at least 32 bytes"}, nil},
		{"key short", map[string]string{"KRAKEN_POSTGRES_URL": "postgres://db/postgres", "KRAKEN_EXOSKELETON_KEY": "short"}, []string{"at least 32 bytes"}, nil},
		{"nats without url", map[string]string{"KRAKEN_NATS_ACCOUNT_SEED": "SA...", "KRAKEN_EXOSKELETON_KEY": key}, []string{"KRAKEN_NATS_URL must say where NATS is"}, nil},
		{"bad network", map[string]string{"KRAKEN_POSTGRES_URL": "postgres://db/postgres", "KRAKEN_EXOSKELETON_KEY": key, "KRAKEN_POSTGRES_NETWORK": "db.svc"}, []string{"KRAKEN_POSTGRES_NETWORK: \"db.svc\" is neither"}, nil},
		{"bad host", map[string]string{"KRAKEN_POSTGRES_URL": "postgres://db/postgres", "KRAKEN_EXOSKELETON_KEY": key, "KRAKEN_POSTGRES_HOST": "pg.db.svc"}, []string{"KRAKEN_POSTGRES_HOST: \"pg.db.svc\" is not host:port"}, nil},
		{"all three", map[string]string{
			"KRAKEN_POSTGRES_URL": "postgres://kraken@db:5432/postgres", "KRAKEN_POSTGRES_HOST": "pg.db.svc:6432", "KRAKEN_POSTGRES_NETWORK": "ns:db/app=pg",
			"KRAKEN_S3_ENDPOINT": "s3.svc:9000", "KRAKEN_S3_ACCESS_KEY": "root", "KRAKEN_S3_SECRET_KEY_FILE": secretFile,
			"KRAKEN_NATS_URL": "nats://nats:4222", "KRAKEN_NATS_ACCOUNT_SEED": "SAXYZ",
			"KRAKEN_EXOSKELETON_KEY": key, "KRAKEN_EXOSKELETON_PREFIX": "k2",
		}, nil, func(t *testing.T, s exoSettings) {
			if s.postgres.Host != "pg.db.svc" || s.postgres.Port != 6432 || s.postgres.Network[0].Pods["app"] != "pg" || string(s.postgres.Key) != key || s.postgres.Prefix != "k2" {
				t.Errorf("postgres = %+v", s.postgres)
			}
			if s.s3.SecretKey != "root-secret" || s.s3.Prefix != "k2" || string(s.s3.Key) != key {
				t.Errorf("s3 = %+v", s.s3)
			}
			if s.nats.URL != "nats://nats:4222" || s.nats.Prefix != "k2" {
				t.Errorf("nats = %+v", s.nats)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, problems := exoSettingsFrom(func(k string) string { return tt.env[k] })
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems = %q, want %q", problems, tt.problems)
			}
			for i, want := range tt.problems {
				if !strings.Contains(problems[i], want) {
					t.Errorf("problem %q lacks %q", problems[i], want)
				}
			}
			for _, p := range problems {
				if strings.Contains(p, "root-secret") || strings.Contains(p, key) {
					t.Errorf("a problem shows a secret: %q", p)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

// TestDevExoskeleton drives `kraken dev` with all three services, real
// ones on loopback: the enclave gets its database, bucket and subjects;
// a tentacle that declares them gets rooms it can reach; info says what
// the enclave keeps; the deprovision card lists it with sizes, and
// confirming destroys it.
func TestDevExoskeleton(t *testing.T) {
	ctx := context.Background()
	pgURL := cmp.Or(os.Getenv("KRAKEN_TEST_POSTGRES_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	s3 := s3test.Start(t)
	nsrv := natstest.Start(t)
	prefix := fmt.Sprintf("kt%d", os.Getpid())
	env := map[string]string{
		"KRAKEN_POSTGRES_URL": pgURL,
		"KRAKEN_S3_ENDPOINT":  s3.Endpoint, "KRAKEN_S3_ADMIN_ENDPOINT": s3.AdminEndpoint, "KRAKEN_S3_REGION": s3.Region,
		"KRAKEN_S3_ACCESS_KEY": s3.RootAccessKey, "KRAKEN_S3_SECRET_KEY": s3.RootSecretKey,
		"KRAKEN_NATS_URL": nsrv.URL, "KRAKEN_NATS_ACCOUNT_SEED": nsrv.AccountSeed, "KRAKEN_NATS_ACCOUNT": nsrv.Account,
		"KRAKEN_EXOSKELETON_PREFIX": prefix,
	}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}

	// What the bot made is checked, and cleaned up if the test fails
	// half way, with the services' own view.
	key, data := []byte(nil), filepath.Join(t.TempDir(), "data")
	pgBackend := func() *postgres.Backend {
		pg, err := postgres.New(ctx, postgres.Config{AdminURL: pgURL, Key: key, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pg.Close)
		return pg
	}
	s3Backend := func() *objectstore.Backend {
		b, err := objectstore.New(ctx, objectstore.Config{Endpoint: s3.Endpoint, AdminEndpoint: s3.AdminEndpoint, Region: s3.Region, AccessKey: s3.RootAccessKey, SecretKey: s3.RootSecretKey, Key: key, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	tdir := t.TempDir()
	files := map[string]string{
		"workflow.yaml": `name: notes
version: "1.0"
triggers:
  - type: manual
nodes:
  check:
    path: nodes/check.ts
contract:
  version: "1"
  dependencies:
    tentacular-postgres:
      protocol: postgresql
    tentacular-rustfs:
      protocol: s3
    tentacular-nats:
      protocol: nats
`,
		"nodes/check.ts": `export default async function run(ctx) {
  const out = {};
  for (const name of ["tentacular-postgres", "tentacular-rustfs", "tentacular-nats"]) {
    const d = ctx.dependency(name);
    const conn = await Deno.connect({ hostname: d.host, port: d.port });
    conn.close();
    out[name] = { reached: true, database: d.database, schema: d.schema, bucket: d.bucket, prefix: d.prefix, inbox: d.inboxPrefix, credentials: !!d.user && !!d.secret };
  }
  return out;
}`,
	}
	for name, content := range files {
		p := filepath.Join(tdir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	script := strings.Join([]string{
		"/kraken provision",
		"!upload " + tdir,
		"/kraken deploy",
		"!confirm",
		"/kraken run notes",
		"/kraken info",
		"/kraken deprovision",
	}, "\n") + "\n"
	var out, stderr bytes.Buffer
	if err := runDev(ctx, env2(&out, &stderr, getenv), strings.NewReader(script), []string{"--data", data, "--examples", examplesDir("")}); err != nil {
		t.Fatalf("%v\n%s\n%s", err, out.String(), stderr.String())
	}
	// The key kraken dev generated derives the credentials; the checks
	// below use it to see what the bot made.
	k, _, err := loadOrMakeKey(filepath.Join(data, devExoskeletonKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	key = k
	pg, ob := pgBackend(), s3Backend()
	t.Cleanup(func() {
		_ = pg.Drop(context.Background(), "local")
		_ = ob.Drop(context.Background(), "local")
	})
	o := out.String()
	wantAll(t, o,
		"Enclave local is ready",
		"Deployed notes 1.0 as revision 1.",
		"notes succeeded in",
		"Database: ", "Object storage: ", "Messaging: subjects of its own (nothing is stored)",
		"The database: ", "The object storage: ",
		"Deprovisioning enclave local destroys, for good:", "1 tentacle, with its run history: notes",
		"Reaches the enclave's database (dependency tentacular-postgres)",
	)
	if !strings.Contains(o, "inbox "+prefix+".local._INBOX") {
		t.Errorf("the NATS dependency lacks its inbox prefix:\n%s", o)
	}
	if strings.Count(o, "reached yes") != 3 {
		t.Errorf("the node did not reach all three services:\n%s", o)
	}
	for _, u := range []func() (enclave.Usage, error){
		func() (enclave.Usage, error) { return pg.Usage(ctx, "local") },
		func() (enclave.Usage, error) { return ob.Usage(ctx, "local") },
	} {
		if got, err := u(); err != nil || !got.Exists {
			t.Errorf("before deprovision: %+v, %v", got, err)
		}
	}
	if strings.Contains(o+stderr.String(), nsrv.AccountSeed) || strings.Contains(o, s3.RootSecretKey) {
		t.Error("a service credential was shown")
	}

	// A revision that no longer asks for the database loses its role's
	// login there (its data stays until the enclave goes).
	canLogin := func() bool {
		t.Helper()
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", prefix+"_local_notes").Scan(&ok); err != nil {
			t.Fatalf("the tentacle's role: %v", err)
		}
		return ok
	}
	if !canLogin() {
		t.Fatal("the deployed tentacle's role cannot log in")
	}
	v2 := strings.Replace(files["workflow.yaml"], "    tentacular-postgres:\n      protocol: postgresql\n", "", 1)
	v2 = strings.Replace(v2, `version: "1.0"`, `version: "1.1"`, 1)
	if err := os.WriteFile(filepath.Join(tdir, "workflow.yaml"), []byte(v2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tdir, "nodes", "check.ts"), []byte(`export default async function run() { return "no database"; }`), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runDev(ctx, env2(&out, &stderr, getenv), strings.NewReader("!upload "+tdir+"\n/kraken deploy\n!confirm\n"), []string{"--data", data, "--examples", examplesDir("")}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	wantAll(t, out.String(), "No longer reaches the enclave's database (removed dependency tentacular-postgres)", "Deployed notes 1.1 as revision 2.")
	if canLogin() {
		t.Error("the role of a dependency the tentacle dropped can still log in")
	}

	// Confirming destroys the enclave's data.
	out.Reset()
	if err := runDev(ctx, env2(&out, &stderr, getenv), strings.NewReader("/kraken deprovision\n!confirm local\n"), []string{"--data", data, "--examples", examplesDir("")}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	wantAll(t, out.String(), "Enclave local and everything in it has been removed.")
	for _, u := range []func() (enclave.Usage, error){
		func() (enclave.Usage, error) { return pg.Usage(ctx, "local") },
		func() (enclave.Usage, error) { return ob.Usage(ctx, "local") },
	} {
		if got, err := u(); err != nil || got.Exists {
			t.Errorf("after deprovision: %+v, %v", got, err)
		}
	}
}

func env2(stdout, stderr *bytes.Buffer, getenv func(string) string) env {
	return env{stdout: stdout, stderr: stderr, getenv: getenv}
}
