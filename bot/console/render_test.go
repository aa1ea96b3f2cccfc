package console_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/console"
)

// canned is a registry that answers every request with the same reply
// and records what it was asked.
type canned struct {
	reply   command.Reply
	posts   []command.Post
	reqs    []command.Request
	clicks  []command.Click
	events  []command.ChannelEvent
	secrets []command.SecretSubmission
}

func (f *canned) SubmitSecret(_ context.Context, s command.SecretSubmission) command.Reply {
	f.secrets = append(f.secrets, s)
	return f.reply
}

func (f *canned) Do(_ context.Context, r command.Request) command.Reply {
	f.reqs = append(f.reqs, r)
	return f.reply
}

func (f *canned) Click(_ context.Context, k command.Click) command.Reply {
	f.clicks = append(f.clicks, k)
	return f.reply
}

func (f *canned) Commands() []command.Command {
	return []command.Command{{Name: "help"}, {Name: "deploy"}}
}

func (f *canned) ChannelEvent(_ context.Context, ev command.ChannelEvent) []command.Post {
	f.events = append(f.events, ev)
	return f.posts
}

func localChannel() *console.Channel {
	return console.NewChannel(console.ChannelState{TeamID: "T-LOCAL", ID: "C-LOCAL", Name: "local", Members: []string{"you"}})
}

func newConsole(t *testing.T, cmds console.Commands, styled bool) *console.Console {
	t.Helper()
	c, err := console.New(console.Config{
		In: strings.NewReader(""), Out: io.Discard, Commands: cmds, Channel: localChannel(),
		ImageDir: t.TempDir(), Styled: &styled,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pngBytes(t *testing.T) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRenderReplies(t *testing.T) {
	tests := []struct {
		name   string
		reply  command.Reply
		styled bool
		want   []string
		not    []string
	}{
		{
			name:  "mentions, links and emphasis become plain text",
			reply: command.Reply{Text: "Enclave *local* is ready, owned by <@you>. _Really_ ~not~ <@U1|alex> in <#C1|ops>, see <https://x.example|the docs>; @here is <!here>. Running *etl*…"},
			want:  []string{"Enclave local is ready, owned by @you. Really not @alex in #ops, see the docs (https://x.example); @here is @here. Running etl…\n"},
			not:   []string{"*", "<@", "\x1b["},
		},
		{
			name:  "code keeps its backticks and its markup",
			reply: command.Reply{Text: "Type `/kraken provision <name>` or `rwx*`, 2*3*4 and snake_case_name stay."},
			want:  []string{"Type `/kraken provision <name>` or `rwx*`, 2*3*4 and snake_case_name stay.\n"},
		},
		{
			name:  "escaped text shows as it was written",
			reply: command.Reply{Text: "• greet: hello &lt;!channel&gt; &amp; co"},
			want:  []string{"• greet: hello <!channel> & co\n"},
		},
		{
			name:  "code blocks are indented, untouched",
			reply: command.Reply{Text: "The last 2 log lines of *hello*:\n```\n12:00:00 INFO *not bold* <@x>\nsecond\n```\nafter"},
			want:  []string{"The last 2 log lines of hello:\n    12:00:00 INFO *not bold* <@x>\n    second\nafter\n"},
		},
		{
			name:  "failed replies are marked",
			reply: command.Reply{Text: "This channel has no enclave yet.", Failed: true},
			want:  []string{"✗ This channel has no enclave yet.\n"},
		},
		{
			name:  "fields are label: value lines",
			reply: command.Reply{Text: "Enclave *local* is active.", Fields: []command.Field{{Label: "Owner", Value: "<@you>"}, {Label: "Mode", Value: "team"}}},
			want:  []string{"  Owner: @you\n  Mode: team\n"},
		},
		{
			name:  "buttons are numbered choices",
			reply: command.Reply{Text: "Hi!", Buttons: []command.Button{{Label: "Provision enclave local", Value: "run:provision"}, {Label: "Not now", Value: "x"}}},
			want:  []string{"  [1] Provision enclave local — type !click 1\n  [2] Not now — type !click 2\n"},
		},
		{
			name: "a confirmation card says what to type",
			reply: command.Reply{Text: "Deprovision enclave local?", Confirm: &command.Confirm{
				Title: "Deprovision enclave local", Prompt: "Everything goes.", ConfirmLabel: "Deprovision", TypeName: "local",
				ConfirmValue: "confirm:1", CancelValue: "cancel:1", Expires: time.Now().Add(time.Minute),
			}},
			want: []string{"  Deprovision enclave local: Everything goes.\n  Type !confirm local to deprovision, or !cancel (until "},
		},
		{
			name:   "styling on a terminal",
			reply:  command.Reply{Text: "*bold* and _it_", Failed: true},
			styled: true,
			want:   []string{"\x1b[31m✗\x1b[0m \x1b[1mbold\x1b[0m and \x1b[3mit\x1b[0m"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConsole(t, &canned{reply: tt.reply}, tt.styled)
			out, quit := c.Line(context.Background(), "/kraken info")
			if quit {
				t.Fatal("quit")
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(out, n) {
					t.Errorf("output has %q:\n%s", n, out)
				}
			}
		})
	}
}

func TestImagesAreSavedAndNamedSafely(t *testing.T) {
	dir := t.TempDir()
	f := &canned{reply: command.Reply{Text: "Ready.", Image: &command.Image{Name: "../../evil name", Title: "hello 1.0", PNG: pngBytes(t)}}}
	styled := false
	c, err := console.New(console.Config{In: strings.NewReader(""), Out: io.Discard, Commands: f, Channel: localChannel(), ImageDir: dir, Styled: &styled})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := c.Line(context.Background(), "/kraken deploy x")
	path := filepath.Join(dir, "evil-name.png")
	if !strings.Contains(out, "Picture of hello 1.0: "+path) {
		t.Fatalf("output:\n%s", out)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, f.reply.Image.PNG) {
		t.Fatalf("picture not saved: %v", err)
	}
}

func TestRequestsCarryTheChannelThePersonAndTheFiles(t *testing.T) {
	f := &canned{reply: command.Reply{Text: "ok", Buttons: []command.Button{{Label: "Go", Value: "run:provision"}},
		Confirm: &command.Confirm{ConfirmValue: "confirm:7", CancelValue: "cancel:7", ConfirmLabel: "Deploy"}}}
	c := newConsole(t, f, false)
	ctx := context.Background()
	c.Line(ctx, "!upload testdata/tiny")
	c.Line(ctx, "!as @alex")
	c.Line(ctx, "/kraken   deploy")
	if len(f.reqs) != 1 {
		t.Fatalf("requests: %+v", f.reqs)
	}
	r := f.reqs[0]
	if r.Text != "deploy" || r.Via != command.ViaConsole || r.Actor.UserID != "alex" || r.Actor.TeamID != "T-LOCAL" ||
		r.Channel.ID != "C-LOCAL" || r.Channel.Name != "local" || len(r.Files) != 1 || r.Files[0].Name != "tiny.tar.gz" || r.Files[0].SharedBy != "you" {
		t.Fatalf("request: %+v", r)
	}
	if _, err := r.Files[0].Open(ctx, 10); err == nil {
		t.Fatal("a file above the asked maximum opened")
	}
	// The folder is packed under its name; its secrets stay home.
	rc, err := r.Files[0].Open(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tr := tar.NewReader(zr); ; {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "tiny/ tiny/nodes/ tiny/nodes/hi.ts tiny/workflow.yaml" {
		t.Fatalf("packed %s", got)
	}
	c.Line(ctx, "!click 1")
	f.reply = command.Reply{Text: "Deployed."}
	c.Line(ctx, "!confirm typed name")
	// Done with: the card is gone, as Slack replaces it.
	if out, _ := c.Line(ctx, "!cancel"); !strings.Contains(out, "nothing to cancel") {
		t.Fatalf("cancel after confirm: %s", out)
	}
	want := []command.Click{{Value: "run:provision"}, {Value: "confirm:7", Typed: "typed name"}}
	if len(f.clicks) != len(want) {
		t.Fatalf("clicks: %+v", f.clicks)
	}
	for i, k := range f.clicks {
		if k.Value != want[i].Value || k.Typed != want[i].Typed || k.Actor.UserID != "alex" || k.Via != command.ViaConsole {
			t.Errorf("click %d: %+v", i, k)
		}
	}
}

func TestConsoleLines(t *testing.T) {
	tests := []struct {
		line string
		want string
	}{
		{"hello there", "(a message to the channel, which the bot does not read.) `/kraken help` lists"},
		{"Deploy hello-fanout", "To ask the bot, type `/kraken Deploy hello-fanout`."},
		{"/deploy x", "✗ Only /kraken is a command here"},
		{"/krakenx", "✗ Only /kraken is a command here"},
		{"!bogus", "✗ There is no !bogus"},
		{"!click 1", "✗ There is no button to press."},
		{"!confirm", "✗ There is nothing to confirm."},
		{"!cancel", "✗ There is nothing to cancel."},
		{"!secret v", "✗ There is no secret form to fill in."},
		{"!as @not a name", "✗ Name a person"},
		{"!join", "@you joined #local"},
		{"!leave @ghost", "✗ @ghost is not in #local"},
		{"!rename #Team_Ops", "@you renamed #local to #team_ops."},
		{"!rename", "✗ Give the new name"},
		{"!upload", "✗ Name a tentacle folder"},
		{"!upload /no/such/dir", "✗ Nothing shared: stat /no/such/dir"},
		{"!help", "!upload PATH"},
		{"# a comment", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			f := &canned{}
			c := newConsole(t, f, false)
			out, quit := c.Line(context.Background(), tt.line)
			if quit || (tt.want == "" && out != "") || !strings.Contains(out, tt.want) {
				t.Fatalf("got %q (quit %v), want %q", out, quit, tt.want)
			}
			if len(f.reqs) != 0 {
				t.Fatalf("sent to the registry: %+v", f.reqs)
			}
		})
	}
}

func TestRunReadsUntilQuitEOFOrCancel(t *testing.T) {
	f := &canned{reply: command.Reply{Text: "pong"}}
	var out bytes.Buffer
	c, err := console.New(console.Config{In: strings.NewReader("/kraken ping\n!quit\n/kraken never\n"), Out: &out, Commands: f, Channel: localChannel()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil || out.String() != "pong\n\n" || len(f.reqs) != 1 {
		t.Fatalf("err %v, output %q, requests %d", err, out.String(), len(f.reqs))
	}

	c, _ = console.New(console.Config{In: strings.NewReader("/kraken ping"), Out: io.Discard, Commands: f, Channel: localChannel()})
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("at end of input: %v", err)
	}

	pr, pw := io.Pipe()
	defer pw.Close()
	c, _ = console.New(console.Config{In: pr, Out: io.Discard, Commands: f, Channel: localChannel()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when cancelled")
	}
}

func TestChannelEventsReachTheRegistry(t *testing.T) {
	f := &canned{posts: []command.Post{{User: "you", Reply: command.Reply{Text: "Deprovision?", Confirm: &command.Confirm{ConfirmValue: "confirm:9", CancelValue: "cancel:9", TypeName: "local", ConfirmLabel: "Deprovision"}}}}}
	c := newConsole(t, f, false)
	ctx := context.Background()
	script := []struct {
		line string
		kind command.ChannelEventKind
		user string
		want string
	}{
		{"!invite", command.BotJoined, "you", "@you invited the bot to #local."},
		{"!join @alex", command.MemberJoined, "alex", "@alex joined #local."},
		{"!leave @alex", command.MemberLeft, "alex", "@alex left #local."},
		{"!rename ops", command.Renamed, "", "@you renamed #local to #ops."},
		{"!archive", command.Archived, "", "@you archived #ops."},
		{"!unarchive", command.Unarchived, "", "@you unarchived #ops."},
		{"!delete", command.Deleted, "", "(direct message to @you)\nDeprovision?\n  Type !confirm local to deprovision, or !cancel."},
	}
	for i, s := range script {
		out, _ := c.Line(ctx, s.line)
		if !strings.Contains(out, s.want) {
			t.Errorf("%s: output lacks %q:\n%s", s.line, s.want, out)
		}
		if len(f.events) != i+1 {
			t.Fatalf("%s: events %+v", s.line, f.events)
		}
		ev := f.events[i]
		if ev.Kind != s.kind || ev.User != s.user || ev.Via != command.ViaConsole || ev.Channel.ID != "C-LOCAL" {
			t.Errorf("%s: event %+v", s.line, ev)
		}
	}
	if f.events[3].Channel.Name != "ops" {
		t.Errorf("the rename event names the channel %q", f.events[3].Channel.Name)
	}
	// A deleted channel takes nothing more, but the owner's direct
	// message still takes the confirmation.
	for _, line := range []string{"/kraken info", "!invite", "!join @bob", "!archive", "!upload testdata/tiny"} {
		if out, _ := c.Line(ctx, line); !strings.HasPrefix(out, "✗ ") {
			t.Errorf("%s in a deleted channel: %s", line, out)
		}
	}
	if len(f.reqs) != 0 || len(f.events) != len(script) {
		t.Fatalf("a deleted channel reached the registry: %+v %+v", f.reqs, f.events)
	}
	c.Line(ctx, "!confirm local")
	if len(f.clicks) != 1 || f.clicks[0].Value != "confirm:9" || f.clicks[0].Typed != "local" {
		t.Fatalf("clicks %+v", f.clicks)
	}
}

func TestChannelIsTheRegistrysWorkspace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "channel.json")
	ch, err := console.OpenChannel(path, console.ChannelState{TeamID: "T", ID: "C", Name: "local", Members: []string{"you", "you"}})
	if err != nil {
		t.Fatal(err)
	}
	ref := ch.Ref()
	if err := ch.Invite(ctx, ref, "alex"); err != nil {
		t.Fatal(err)
	}
	if m, _ := ch.Members(ctx, ref); strings.Join(m, ",") != "alex,you" {
		t.Fatalf("members %v", m)
	}
	if err := ch.Kick(ctx, ref, "ghost"); err == nil {
		t.Fatal("kicked someone not there")
	}
	if _, err := ch.Members(ctx, console.NewChannel(console.ChannelState{ID: "C-OTHER"}).Ref()); err == nil {
		t.Fatal("another channel's members were given")
	}

	// Kept across a restart.
	again, err := console.OpenChannel(path, console.ChannelState{ID: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if s := again.State(); s.ID != "C" || strings.Join(s.Members, ",") != "alex,you" {
		t.Fatalf("reopened: %+v", s)
	}

	// An archived channel takes no one, and says so in words the
	// registry shows.
	c, err := console.New(console.Config{In: strings.NewReader(""), Out: io.Discard, Commands: &canned{}, Channel: again})
	if err != nil {
		t.Fatal(err)
	}
	c.Line(ctx, "!archive")
	err = again.Invite(ctx, ref, "bob")
	var plain interface{ Plain() string }
	if !errors.As(err, &plain) || plain.Plain() != "the channel is archived" {
		t.Fatalf("invite into an archived channel: %v", err)
	}
	if info, _ := again.Info(ctx, ref); !info.Archived || info.Name != "local" {
		t.Fatalf("info %+v", info)
	}
}

func TestSecretForm(t *testing.T) {
	ctx := context.Background()
	f := &canned{reply: command.Reply{Text: "Set secret token of *hello* in the private form.", Private: true, Secret: &command.SecretForm{Tentacle: "hello", Key: "token", Token: "tok-1"}}}
	c := newConsole(t, f, false)
	out, _ := c.Line(ctx, "/kraken secret hello token")
	if !strings.Contains(out, "Type !secret <value> to set it") {
		t.Fatalf("secret form: %s", out)
	}
	f.reply = command.Reply{Text: "Secret token of *hello* is set.", Private: true}
	if out, _ := c.Line(ctx, "!secret s3cr3t value"); strings.Contains(out, "s3cr3t") || !strings.Contains(out, "is set") {
		t.Errorf("after !secret: %s", out)
	}
	if len(f.secrets) != 1 || f.secrets[0].Token != "tok-1" || f.secrets[0].Value != "s3cr3t value" || f.secrets[0].Actor.UserID != "you" {
		t.Errorf("submissions: %+v", f.secrets)
	}
	if out, _ := c.Line(ctx, "!secret again"); !strings.Contains(out, "no secret form") {
		t.Errorf("a form used twice: %s", out)
	}
}
