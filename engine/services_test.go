package engine

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/enclave"
)

func TestLoadServices(t *testing.T) {
	if s, err := LoadServices(filepath.Join(t.TempDir(), "none")); err != nil || s != nil {
		t.Errorf("a missing directory: %v, %v; want no services", s, err)
	}
	if s, err := LoadServices(""); err != nil || s != nil {
		t.Errorf("no directory: %v, %v", s, err)
	}

	dir := t.TempDir()
	sp := enclave.Space{Protocol: "postgresql", Host: "pg.db.svc", Port: 5432, Database: "kraken_payments", Schema: "ledger", User: "kraken_payments_ledger", Secret: "pa55-word-xyz"}
	b, _ := json.Marshal(sp)
	for name, data := range map[string][]byte{
		"tentacular-postgres.json": b,
		"..data":                   []byte("bookkeeping of the Secret volume"),
		"README":                   []byte("not a service"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadServices(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["tentacular-postgres"].Secret != sp.Secret || got["tentacular-postgres"].Schema != "ledger" {
		t.Errorf("services = %+v", got)
	}

	// A broken file is named, and its content (credentials) is not quoted.
	if err := os.WriteFile(filepath.Join(dir, "bus.json"), []byte(`{"secret": "SUAM-seed-value" oops`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadServices(dir)
	if err == nil || !strings.Contains(err.Error(), "bus.json") || strings.Contains(err.Error(), "SUAM") {
		t.Errorf("err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bus.json"), make([]byte, maxServiceFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadServices(dir); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("oversized file: %v", err)
	}
}

// A node reaches the room its service granted, and only there: the
// allow-list names the granted host and port, the credentials come in
// ctx.dependency, and they never reach the log.
func TestDenoServiceDependency(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	const password = "derived-password-1234567890"
	dir := tentacleDir(t, map[string]string{
		"workflow.yaml": chainYAML(`contract:
  version: "1"
  dependencies:
    tentacular-postgres:
      protocol: postgresql
`, "db"),
		"nodes/db.ts": fmt.Sprintf(`export default async function run(ctx) {
  const db = ctx.dependency("tentacular-postgres");
  ctx.log.info("connecting with " + db.secret);
  const conn = await Deno.connect({ hostname: db.host, port: db.port });
  conn.close();
  let refused = "";
  try { (await Deno.connect({ hostname: "127.0.0.1", port: %d })).close(); } catch (e) { refused = e.name; }
  return { host: db.host, port: db.port, database: db.database, schema: db.schema, user: db.user, hasSecret: db.secret === %q, refused };
}`, other.Addr().(*net.TCPAddr).Port, password),
	})
	services := map[string]enclave.Space{"tentacular-postgres": {
		Protocol: "postgresql", Host: "127.0.0.1", Port: port, Database: "kraken_payments", Schema: "ledger", User: "ledger_role", Secret: password,
	}}
	wf, w, logs := startWorker(t, dir, denoOpts{services: services})
	res := runOnce(t, wf, w, `{}`)
	if !res.Success {
		t.Fatalf("errors = %v", res.Errors)
	}
	want := fmt.Sprintf(`{"host":"127.0.0.1","port":%d,"database":"kraken_payments","schema":"ledger","user":"ledger_role","hasSecret":true,"refused":"NotCapable"}`, port)
	if got := string(res.Outputs["db"]); got != want {
		t.Errorf("output = %s\nwant     %s", got, want)
	}
	if out := logs.String(); strings.Contains(out, password) || !strings.Contains(out, "connecting with [redacted]") {
		t.Errorf("the service's password is not redacted in the log:\n%s", out)
	}
}
