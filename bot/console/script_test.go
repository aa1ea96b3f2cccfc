package console_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/console"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
)

// local is a console over the real registry and the in-process cluster,
// as `kraken dev` wires them.
type local struct {
	c      *console.Console
	images string
}

func newLocal(t *testing.T) *local {
	t.Helper()
	return newLocalIO(t, strings.NewReader(""), io.Discard)
}

// newLocalIO is newLocal reading in and writing out, for Run.
func newLocalIO(t *testing.T, in io.Reader, out io.Writer) *local {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	db, err := store.Open(filepath.Join(dir, "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// Deno is found as kraken finds it: $KRAKEN_DENO, or `make deno`'s.
	rt, err := dev.Open(context.Background(), dev.Options{Dir: filepath.Join(dir, "cluster"), Logger: log})
	if err != nil {
		t.Fatalf("%v (run `make deno` first)", err)
	}
	t.Cleanup(func() { rt.Close() })
	ch := console.NewChannel(console.ChannelState{TeamID: "T-LOCAL", ID: "C-LOCAL", Name: "local", Members: []string{"you"}})
	reg, err := command.New(command.Config{
		Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Store: db, Channels: ch,
		Examples: os.DirFS(filepath.Join("..", "..", "examples")), Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(dir, "images")
	c, err := console.New(console.Config{In: in, Out: out, Commands: reg, Channel: ch, ImageDir: images, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return &local{c: c, images: images}
}

// step is a line typed and what the output must (and must not) hold.
type step struct {
	line string
	want []string
	not  []string
}

func (l *local) play(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		out, _ := l.c.Line(context.Background(), s.line)
		t.Logf("> %s\n%s", s.line, out)
		for _, w := range s.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", s.line, w, out)
			}
		}
		for _, n := range s.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: output has %q:\n%s", s.line, n, out)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// provisioned is the start most scripts share.
var provisioned = []step{
	{line: "/kraken provision", want: []string{"Enclave local is ready, owned by @you."}},
}

func TestScripts(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"newcomer", []step{
			{line: "/kraken info", want: []string{"✗ This channel has no enclave yet. `/kraken provision` makes one."}},
			{line: "!invite", want: []string{"@you invited the bot to #local.", "Hi @you, thanks for inviting me!", "[1] Provision enclave local — type !click 1"}},
			{line: "!click 1", want: []string{"Enclave local is ready, owned by @you."}, not: []string{"✗"}},
			{line: "/kraken deploy hello-fanout", want: []string{
				"Ready to deploy hello-fanout 1.0 from the example hello-fanout into enclave local.",
				"Picture of hello-fanout 1.0: ",
				"Type !confirm to deploy, or !cancel",
			}},
			{line: "!confirm", want: []string{"Deployed hello-fanout 1.0 as revision 1."}, not: []string{"✗"}},
			{line: `/kraken run hello-fanout {"name": "octo"}`, want: []string{"hello-fanout succeeded in ", "(5 steps)", "• shout: ", "OCTO"}, not: []string{"✗"}},
			{line: "/kraken info", want: []string{"Enclave local is active.", "  Owner: @you", "  Tentacles: 1"}},
			{line: "/kraken logs hello-fanout", want: []string{"log lines of hello-fanout:\n    "}},
		}},
		{"a confirmation is the asker's, and can be cancelled", append(provisioned, []step{
			{line: "/kraken deploy hello-fanout", want: []string{"Type !confirm to deploy"}},
			{line: "!as @alex", want: []string{"You are now @alex, who is not in #local."}},
			{line: "!confirm", want: []string{"✗ Only @you, who asked for this, can confirm it."}},
			{line: "/kraken deploy hello-fanout", want: []string{"✗ "}},
			{line: "!as", want: []string{"You are now @you, who is in #local."}},
			{line: "!cancel", want: []string{"Cancelled: `/kraken deploy hello-fanout` was not done."}},
			{line: "!confirm", want: []string{"✗ There is nothing to confirm."}},
			{line: "/kraken list", want: []string{"Nothing is deployed in enclave local yet."}},
		}...)},
		{"people joining and leaving are the enclave's members", append(provisioned, []step{
			{line: "!join @alex", want: []string{"@alex joined #local."}},
			{line: "!as @alex", want: []string{"who is in #local"}},
			{line: "/kraken whoami", want: []string{"You are @alex, a member of enclave local."}},
			{line: "/kraken members", want: []string{"@you (owner)", "• @alex"}},
			{line: "!leave", want: []string{"@alex left #local."}},
			{line: "/kraken whoami", want: []string{"not a member"}},
			{line: "!as", want: []string{"@you"}},
			{line: "/kraken add @sam", want: []string{"@sam is now a member of this channel and enclave local."}},
			{line: "!as @sam", want: []string{"who is in #local"}},
		}...)},
		{"an archived channel freezes its enclave", append(provisioned, []step{
			{line: "!archive", want: []string{"@you archived #local."}},
			{line: "/kraken info", want: []string{"✗ #local is archived: no one can type in it."}},
			{line: "!unarchive", want: []string{"This channel is back, and enclave local is active."}},
			{line: "/kraken info", want: []string{"Enclave local is active."}},
		}...)},
		{"a renamed channel renames nothing but the channel", append(provisioned, []step{
			{line: "!rename payments", want: []string{"@you renamed #local to #payments."}},
			{line: "/kraken info", want: []string{"Enclave local is active.", "  Channel: #payments"}},
		}...)},
		{"a deleted channel asks its owner to deprovision", append(provisioned, []step{
			{line: "!delete", want: []string{"@you deleted #local.", "(direct message to @you)", "The channel of enclave local was deleted", "Type !confirm local to deprovision, or !cancel"}},
			{line: "/kraken info", want: []string{"✗ #local was deleted"}},
			{line: "!confirm lcoal", want: []string{"✗ To confirm, type the enclave's name exactly: local."}},
			{line: "!confirm local", want: []string{"Enclave local and everything in it has been removed."}},
		}...)},
		{"an uploaded folder deploys", append(provisioned, []step{
			{line: "/kraken deploy", want: []string{"✗ Upload the tentacle's folder", "hello-fanout"}},
			{line: "!upload testdata/tiny", want: []string{"@you shared tiny.tar.gz ("}},
			{line: "/kraken deploy", want: []string{"Ready to deploy tiny 1.0 from tiny.tar.gz into enclave local.", "Type !confirm to deploy"}, not: []string{"secret"}},
			{line: "!confirm", want: []string{"Deployed tiny 1.0 as revision 1."}, not: []string{"secret"}},
			{line: `/kraken run tiny {"name":"there"}`, want: []string{"tiny succeeded", "• hi: hi there"}},
		}...)},
		{"a run tells its progress", append(provisioned, []step{
			{line: "/kraken deploy flaky-retry", want: []string{"Type !confirm to deploy"}},
			{line: "!confirm", want: []string{"Deployed flaky-retry"}},
			{line: "/kraken run flaky-retry", want: []string{"Running flaky-retry…\n", "Running flaky-retry… 0 of 2 steps done: flaky … (try 2)",
				"Running flaky-retry… 1 of 2 steps done: flaky ✓", "flaky-retry succeeded in ", "• report: ", "after 2 retries"}},
		}...)},
		{"a failing run says what failed", append(provisioned, []step{
			{line: "/kraken deploy failing-step", want: []string{"Type !confirm to deploy"}},
			{line: "!confirm", want: []string{"Deployed failing-step"}},
			{line: "/kraken run failing-step", want: []string{"✗ failing-step failed after", "order has no orderId"}},
		}...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			newLocal(t).play(t, tt.steps)
		})
	}
}

func TestTheDeployPictureIsAPNGFile(t *testing.T) {
	l := newLocal(t)
	l.play(t, append(provisioned, step{line: "/kraken deploy hello-fanout", want: []string{"Picture of hello-fanout 1.0: " + filepath.Join(l.images, "hello-fanout.png")}}))
	b, err := os.ReadFile(filepath.Join(l.images, "hello-fanout.png"))
	if err != nil || !strings.HasPrefix(string(b), "\x89PNG") {
		t.Fatalf("no picture: %v", err)
	}
}

// writes records each write to the terminal.
type writes struct {
	mu sync.Mutex
	w  []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w = append(w.w, string(p))
	return len(p), nil
}

// TestProgressGoesOutAsItComes: at the terminal, a run's progress is
// written while it runs, before its end.
func TestProgressGoesOutAsItComes(t *testing.T) {
	out := &writes{}
	script := "/kraken provision\n/kraken deploy flaky-retry\n!confirm\n/kraken run flaky-retry\n"
	l := newLocalIO(t, strings.NewReader(script), out)
	if err := l.c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	progress, end := -1, -1
	for i, w := range out.w {
		if strings.Contains(w, "(try ") && progress < 0 {
			progress = i
		}
		if strings.Contains(w, "flaky-retry succeeded") {
			end = i
		}
	}
	if progress < 0 || end < 0 || progress >= end || strings.Contains(out.w[progress], "succeeded") {
		t.Fatalf("progress written at %d, the end at %d: %q", progress, end, out.w)
	}
}
