package command_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
)

// A tentacle that asks for a service the platform did not set up is
// refused before anything is deployed, in words that say what to do.
func TestDeployWithoutTheServiceItNeeds(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rt, err := dev.Open(ctx, dev.Options{Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	examples := fstest.MapFS{
		"ledger/workflow.yaml": {Data: []byte(`name: ledger
version: "1.0"
nodes:
  book:
    path: nodes/book.ts
contract:
  version: "1"
  dependencies:
    tentacular-postgres:
      protocol: postgresql
`)},
		"ledger/nodes/book.ts": {Data: []byte(`export default async function run(ctx) { return ctx.dependency("tentacular-postgres").database; }`)},
	}
	f := &fixture{t: t, db: db, ch: &channels{members: map[string][]string{general.ID: {owner.UserID, member.UserID}}, info: map[string]command.ChannelInfo{general.ID: {Name: general.Name}}}}
	f.reg, err = command.New(command.Config{Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Store: db, Channels: f.ch, Examples: examples})
	if err != nil {
		t.Fatal(err)
	}
	f.provisioned()
	preview := f.ok(owner, "deploy ledger")
	if !strings.Contains(preview.Text, "Reaches the enclave's database (dependency tentacular-postgres)") {
		t.Errorf("preview = %q", preview.Text)
	}
	r := f.reg.Click(ctx, command.Click{Actor: owner, Via: command.ViaConsole, Channel: general, Value: preview.Confirm.ConfirmValue})
	want := "I couldn't deploy ledger: this cluster has no database for enclaves, so dependency tentacular-postgres can't be given one; ask your platform team to set it up, or remove the dependency."
	if !r.Failed || r.Text != want {
		t.Errorf("deploy = %+v\nwant %q", r, want)
	}
	if list := f.ok(owner, "list"); strings.Contains(list.Text, "ledger") {
		t.Errorf("the refused tentacle was deployed: %q", list.Text)
	}
	// No service configured: info has no service lines.
	for _, fl := range f.ok(owner, "info").Fields {
		if fl.Label == "Database" {
			t.Errorf("info shows a database the platform has not: %+v", fl)
		}
	}
}
