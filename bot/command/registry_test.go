package command_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine/dev"
	"github.com/kraken-ops/kraken/store"
)

// channels is the workspace as the registry sees it, in memory: the Slack
// side is tested through the real transport in bot/slack.
type channels struct {
	mu       sync.Mutex
	members  map[string][]string
	info     map[string]command.ChannelInfo
	failNext error
}

func (c *channels) Members(_ context.Context, ch enclave.Channel) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.failNext; err != nil {
		c.failNext = nil
		return nil, err
	}
	return slices.Clone(c.members[ch.ID]), nil
}

func (c *channels) Info(_ context.Context, ch enclave.Channel) (command.ChannelInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info[ch.ID], nil
}

func (c *channels) Invite(_ context.Context, ch enclave.Channel, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.HasPrefix(user, "UGHOST") {
		return errors.New("user_not_found")
	}
	c.members[ch.ID] = append(c.members[ch.ID], user)
	return nil
}

func (c *channels) Kick(_ context.Context, ch enclave.Channel, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[ch.ID] = slices.DeleteFunc(c.members[ch.ID], func(m string) bool { return m == user })
	return nil
}

const team = "T1"

var (
	general = enclave.Channel{TeamID: team, ID: "C1", Name: "payments"}
	owner   = enclave.Principal{TeamID: team, UserID: "UOWNER"}
	member  = enclave.Principal{TeamID: team, UserID: "UMEMBER"}
	other   = enclave.Principal{TeamID: team, UserID: "UOTHER"}
	foreign = enclave.Principal{TeamID: "T2", UserID: "UFOREIGN"}
)

type fixture struct {
	t   *testing.T
	reg *command.Registry
	db  *store.DB
	ch  *channels
	now time.Time
	mu  sync.Mutex
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
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
	f := &fixture{t: t, db: db, now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		ch: &channels{members: map[string][]string{general.ID: {owner.UserID, member.UserID}}, info: map[string]command.ChannelInfo{general.ID: {Name: general.Name}}}}
	f.reg, err = command.New(command.Config{
		Enclaves: rt.Enclaves(), Tentacles: rt.Tentacles(), Store: db, Channels: f.ch,
		Examples: os.DirFS(filepath.Join(repoRoot(t), "examples")), Now: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) do(who enclave.Principal, text string) command.Reply {
	f.t.Helper()
	return f.reg.Do(context.Background(), command.Request{Actor: who, Via: command.ViaConsole, Channel: general, Text: text}).Wait(context.Background())
}

func (f *fixture) ok(who enclave.Principal, text string) command.Reply {
	f.t.Helper()
	r := f.do(who, text)
	if r.Failed {
		f.t.Fatalf("%s: /kraken %s failed: %s", who.UserID, text, r.Text)
	}
	return r
}

// confirmed asks for a destructive act and confirms the card.
func (f *fixture) confirmed(who enclave.Principal, text, typed string) command.Reply {
	f.t.Helper()
	r := f.ok(who, text)
	if r.Confirm == nil {
		f.t.Fatalf("/kraken %s asked no confirmation: %+v", text, r)
	}
	return f.reg.Click(context.Background(), command.Click{Actor: who, Via: command.ViaConsole, Channel: general, Value: r.Confirm.ConfirmValue, Typed: typed})
}

func (f *fixture) provisioned() {
	f.t.Helper()
	f.ok(owner, "provision")
}

func TestHelpAndUnknown(t *testing.T) {
	f := newFixture(t)
	help := f.ok(other, "help")
	for _, c := range f.reg.Commands() {
		if !strings.Contains(help.Text, "`"+c.Name) {
			t.Errorf("help does not mention %s", c.Name)
		}
	}
	if !help.Private {
		t.Error("help is not private")
	}
	if r := f.do(other, ""); r.Text != help.Text {
		t.Errorf("an empty command is not help: %q", r.Text)
	}
	r := f.do(owner, "deplyo hello")
	if !r.Failed || !strings.Contains(r.Text, "/kraken deploy") {
		t.Errorf("unknown verb: %+v", r)
	}
	r = f.do(owner, "status")
	if !r.Failed || !strings.Contains(r.Text, "<tentacle>") {
		t.Errorf("missing argument: %+v", r)
	}
}

func TestProvision(t *testing.T) {
	f := newFixture(t)
	if r := f.do(owner, "info"); !r.Failed || !strings.Contains(r.Text, "/kraken provision") {
		t.Errorf("info before provision: %+v", r)
	}
	if r := f.do(other, "provision"); !r.Failed {
		t.Errorf("someone outside the channel provisioned it: %+v", r)
	}
	r := f.ok(owner, "provision")
	if !strings.Contains(r.Text, "payments") || !strings.Contains(r.Text, "<@UOWNER>") {
		t.Errorf("provision reply: %q", r.Text)
	}
	if r := f.do(member, "provision other"); !r.Failed || !strings.Contains(r.Text, "already has an enclave") {
		t.Errorf("second provision: %+v", r)
	}
	info := f.ok(member, "info")
	for _, want := range []string{"Owner:<@UOWNER>", "State:active", "Mode:rwxrwx--- (team)", "Members:2", "Channel:#payments"} {
		if !slices.ContainsFunc(info.Fields, func(fl command.Field) bool { return fl.Label+":"+fl.Value == want }) {
			t.Errorf("info lacks %s: %+v", want, info.Fields)
		}
	}
	if strings.Contains(info.Text, "C1") {
		t.Errorf("info shows a channel id: %q", info.Text)
	}
	f.ch.failNext = errors.New("channel_not_found")
	r = f.reg.Do(context.Background(), command.Request{Actor: owner, Channel: enclave.Channel{TeamID: team, ID: "C9", Name: "x"}, Text: "provision"})
	if !r.Failed || !strings.Contains(r.Text, "member of the channel") {
		t.Errorf("provision when the channel can't be read: %+v", r)
	}
}

// TestAuthorization checks every verb for every role under one mode: the
// registry must ask Decide before each, and refuse with its reason.
func TestAuthorization(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	f.confirmed(owner, "deploy hello-fanout", "")
	f.ok(owner, "mode team-run")
	type want struct{ owner, member, other, foreign bool }
	read := want{true, true, false, false}
	run := want{true, true, false, false}
	write := want{true, false, false, false}
	tests := []struct {
		text string
		want want
	}{
		{"info", read},
		{"members", read},
		{"list", read},
		{"status hello-fanout", read},
		{"logs hello-fanout", read},
		{"run hello-fanout", run},
		{"deploy hello-fanout", write},
		{"undeploy hello-fanout", write},
		{"rollback hello-fanout", write},
		{"add @UNEW", write},
		{"mode team", write},
		{"freeze", write},
		{"audit", write},
		{"transfer @UMEMBER", write},
		{"deprovision", write},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			who     enclave.Principal
			allowed bool
		}{{owner, tt.want.owner}, {member, tt.want.member}, {other, tt.want.other}, {foreign, tt.want.foreign}} {
			r := f.do(c.who, tt.text)
			refused := r.Failed && (strings.Contains(r.Text, "can't") || strings.Contains(r.Text, "only the owner") || strings.Contains(r.Text, "Only the owner"))
			if refused == c.allowed {
				t.Errorf("%s: /kraken %s: allowed=%t but got %+v", c.who.UserID, tt.text, c.allowed, r)
			}
			if refused && !r.Private {
				t.Errorf("%s: refusal of %s is not private", c.who.UserID, tt.text)
			}
		}
	}
	// Every refusal is in the audit log with its reason.
	entries, err := f.db.ListAudit(context.Background(), store.AuditQuery{Actor: "UOTHER", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(tests) {
		t.Errorf("audit has %d entries for UOTHER, want %d", len(entries), len(tests))
	}
	for _, e := range entries {
		if e.Decision != store.DecisionDenied || e.Reason == "" || e.Enclave != "payments" || e.Via != command.ViaConsole {
			t.Errorf("audit entry %+v", e)
		}
	}
}

func TestDeployRunRollback(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	r := f.ok(member, "deploy hello-fanout")
	if r.Confirm == nil || r.Image == nil || len(r.Image.PNG) < 100 || !strings.Contains(r.Text, "First deploy") {
		t.Fatalf("deploy preview: %+v", r)
	}
	done := f.reg.Click(context.Background(), command.Click{Actor: member, Channel: general, Value: r.Confirm.ConfirmValue})
	if done.Failed || !strings.Contains(done.Text, "revision 1") {
		t.Fatalf("deploy: %+v", done)
	}
	// The same bundle again changes nothing.
	if r := f.do(member, "deploy hello-fanout"); r.Confirm != nil || !strings.Contains(r.Text, "Nothing to deploy") {
		t.Errorf("identical redeploy: %+v", r)
	}
	run := f.ok(member, `run hello-fanout {"name": "Ada"}`)
	if !strings.Contains(run.Text, "succeeded") || strings.Contains(run.Text, "{") {
		t.Errorf("run reply: %q", run.Text)
	}
	// What a tentacle outputs can't ping anyone or fake a link.
	if r := f.ok(member, `run hello-fanout {"name": "<!channel> & <https://evil|click>"}`); strings.Contains(r.Text, "<!channel>") || !strings.Contains(r.Text, "&lt;!channel&gt; &amp;") {
		t.Errorf("untrusted output not escaped: %q", r.Text)
	}
	if r := f.do(member, "run hello-fanout {not json"); !r.Failed || !strings.Contains(r.Text, "must be JSON") {
		t.Errorf("bad input: %+v", r)
	}
	st := f.ok(member, "status hello-fanout")
	if !slices.Contains(st.Fields, command.Field{Label: "Revision", Value: "1"}) {
		t.Errorf("status: %+v", st.Fields)
	}
	if r := f.do(member, "status nope"); !r.Failed || !strings.Contains(r.Text, "no tentacle called nope") {
		t.Errorf("status of a missing tentacle: %+v", r)
	}
	if r := f.do(member, "list"); !strings.Contains(r.Text, "*hello-fanout*") {
		t.Errorf("list: %q", r.Text)
	}
	logs := f.ok(member, "logs hello-fanout")
	if strings.Contains(logs.Text, `"msg"`) {
		t.Errorf("logs show raw JSON: %q", logs.Text)
	}
	home, err := f.reg.Home(context.Background(), member)
	if err != nil || len(home.Enclaves) != 1 || len(home.Runs) != 2 || !home.Runs[0].OK || home.Enclaves[0].Role != "member" {
		t.Errorf("home: %+v %v", home, err)
	}
	if home, _ := f.reg.Home(context.Background(), other); len(home.Enclaves) != 0 {
		t.Errorf("home of someone outside: %+v", home)
	}
	if r := f.do(member, "rollback hello-fanout"); !r.Failed && r.Confirm != nil {
		c := f.reg.Click(context.Background(), command.Click{Actor: member, Channel: general, Value: r.Confirm.ConfirmValue})
		if !c.Failed {
			t.Errorf("rollback with one revision: %+v", c)
		}
	}
	un := f.confirmed(member, "undeploy hello-fanout", "")
	if un.Failed {
		t.Fatalf("undeploy: %+v", un)
	}
	if r := f.do(member, "run hello-fanout"); !r.Failed {
		t.Errorf("run after undeploy: %+v", r)
	}
}

func TestConfirmations(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	ctx := context.Background()
	r := f.ok(owner, "deprovision")
	if r.Confirm == nil || r.Confirm.TypeName != "payments" {
		t.Fatalf("deprovision card: %+v", r)
	}
	click := func(who enclave.Principal, value, typed string) command.Reply {
		return f.reg.Click(ctx, command.Click{Actor: who, Channel: general, Value: value, Typed: typed})
	}
	if c := click(member, r.Confirm.ConfirmValue, "payments"); !c.Failed || !strings.Contains(c.Text, "Only <@UOWNER>") {
		t.Errorf("someone else confirmed: %+v", c)
	}
	if c := click(owner, r.Confirm.ConfirmValue, "payment"); !c.Failed || !strings.Contains(c.Text, "type the enclave's name") {
		t.Errorf("wrong name: %+v", c)
	}
	if c := click(member, r.Confirm.CancelValue, ""); !c.Failed {
		t.Errorf("someone else cancelled: %+v", c)
	}
	if c := click(owner, r.Confirm.CancelValue, ""); c.Failed || !strings.Contains(c.Text, "Cancelled") {
		t.Errorf("cancel: %+v", c)
	}
	if c := click(owner, r.Confirm.ConfirmValue, "payments"); !c.Failed {
		t.Errorf("confirmed after cancel: %+v", c)
	}
	// A card goes stale.
	r = f.ok(owner, "deprovision")
	f.advance(11 * time.Minute)
	if c := click(owner, r.Confirm.ConfirmValue, "payments"); !c.Failed || !strings.Contains(c.Text, "expired") {
		t.Errorf("stale card: %+v", c)
	}
	// The rights are checked again at the click: the mode changed since.
	r = f.ok(owner, "deprovision")
	c := click(owner, r.Confirm.ConfirmValue, "payments")
	if c.Failed {
		t.Fatalf("deprovision: %+v", c)
	}
	if again := click(owner, r.Confirm.ConfirmValue, "payments"); !again.Failed {
		t.Errorf("second click ran again: %+v", again)
	}
	if r := f.do(owner, "info"); !r.Failed {
		t.Errorf("info after deprovision: %+v", r)
	}
	if c := f.reg.Click(ctx, command.Click{Actor: owner, Value: "bogus"}); !c.Failed {
		t.Errorf("unknown button: %+v", c)
	}
}

func TestRightsCheckedAgainAtConfirmation(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	f.confirmed(owner, "deploy hello-fanout", "")
	r := f.ok(member, "undeploy hello-fanout")
	f.ok(owner, "mode team-run")
	c := f.reg.Click(context.Background(), command.Click{Actor: member, Channel: general, Value: r.Confirm.ConfirmValue})
	if !c.Failed || !strings.Contains(c.Text, "can't") {
		t.Errorf("confirmation after losing the right: %+v", c)
	}
}

func TestFrozen(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	f.confirmed(owner, "deploy hello-fanout", "")
	f.ok(owner, "freeze")
	for _, text := range []string{"deploy hello-fanout", "run hello-fanout", "add @UNEW"} {
		if r := f.do(member, text); !r.Failed || !strings.Contains(r.Text, "froze this enclave") {
			t.Errorf("frozen: /kraken %s: %+v", text, r)
		}
	}
	f.ok(member, "list")
	if r := f.do(owner, "freeze"); !r.Failed || !strings.Contains(r.Text, "already frozen") {
		t.Errorf("second freeze: %+v", r)
	}
	f.ok(owner, "unfreeze")
	f.ok(member, "run hello-fanout")
}

func TestMembersModeTransfer(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	f.ok(member, "add @UNEW")
	if r := f.ok(owner, "members"); !strings.Contains(r.Text, "<@UNEW>") {
		t.Errorf("members: %q", r.Text)
	}
	if r := f.do(member, "add @UGHOST"); !r.Failed || !strings.Contains(r.Text, "couldn't add") {
		t.Errorf("adding a missing person: %+v", r)
	}
	if r := f.do(member, "add alex"); !r.Failed || !strings.Contains(r.Text, "Mention them") {
		t.Errorf("adding a non-mention: %+v", r)
	}
	f.confirmed(member, "remove <@UNEW|new>", "")
	if slices.Contains(f.ch.members[general.ID], "UNEW") {
		t.Error("remove did not kick")
	}
	if r := f.do(owner, "mode rwxr-x--x"); r.Failed {
		t.Errorf("mode bits: %+v", r)
	}
	if r := f.do(owner, "mode tema"); !r.Failed || !strings.Contains(r.Text, "team") {
		t.Errorf("mode typo: %+v", r)
	}
	f.ok(owner, "mode hello-fanout private")
	if r := f.ok(owner, "info"); !slices.Contains(r.Fields, command.Field{Label: "Mode of hello-fanout", Value: "rwx------ (private)"}) {
		t.Errorf("tentacle mode not shown: %+v", r.Fields)
	}
	f.ok(owner, "mode hello-fanout inherit")
	f.confirmed(owner, "transfer <@UMEMBER>", "")
	if r := f.do(owner, "freeze"); !r.Failed {
		t.Errorf("the old owner still owns it: %+v", r)
	}
	f.ok(member, "freeze")
}

func TestChannelEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	posts := f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.BotJoined, Channel: general, User: owner.UserID})
	if len(posts) != 1 || len(posts[0].Reply.Buttons) != 1 {
		t.Fatalf("invite card: %+v", posts)
	}
	r := f.reg.Click(ctx, command.Click{Actor: owner, Channel: general, Value: posts[0].Reply.Buttons[0].Value})
	if r.Failed {
		t.Fatalf("provision button: %+v", r)
	}
	f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.Archived, Channel: general})
	if r := f.ok(owner, "info"); !strings.Contains(r.Text, "frozen (channel archived)") {
		t.Errorf("after archive: %q", r.Text)
	}
	if r := f.do(owner, "unfreeze"); !r.Failed || !strings.Contains(r.Text, "unarchive") {
		t.Errorf("unfreeze of an archived enclave: %+v", r)
	}
	f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.Archived, Channel: general}) // redelivered
	f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.Unarchived, Channel: general})
	if r := f.ok(owner, "info"); !strings.Contains(r.Text, "is active") {
		t.Errorf("after unarchive: %q", r.Text)
	}
	renamed := general
	renamed.Name = "payments-eu"
	f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.Renamed, Channel: renamed})
	if r := f.ok(owner, "info"); !slices.Contains(r.Fields, command.Field{Label: "Channel", Value: "#payments-eu"}) || !strings.Contains(r.Text, "payments") {
		t.Errorf("after rename: %+v", r)
	}
	f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.MemberJoined, Channel: general, User: "UNEW"})
	if r := f.do(enclave.Principal{TeamID: team, UserID: "UNEW"}, "list"); r.Failed {
		t.Errorf("a new member can't list: %+v", r)
	}
	posts = f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.MemberLeft, Channel: general, User: owner.UserID})
	if len(posts) != 1 || !strings.Contains(posts[0].Reply.Text, "needs a new owner") {
		t.Errorf("owner left: %+v", posts)
	}
	f.ok(member, "list") // still works
	posts = f.reg.ChannelEvent(ctx, command.ChannelEvent{Kind: command.Deleted, Channel: general})
	if len(posts) != 1 || posts[0].User != owner.UserID || posts[0].Reply.Confirm == nil || posts[0].Reply.Confirm.TypeName != "payments" {
		t.Fatalf("deleted channel: %+v", posts)
	}
	if r := f.do(member, "list"); r.Failed {
		t.Errorf("looking at a flagged enclave: %+v", r)
	}
	if r := f.do(owner, "info"); !strings.Contains(r.Text, "flagged for deprovision") {
		t.Errorf("flagged: %q", r.Text)
	}
	// Nothing is deprovisioned until the owner confirms.
	c := f.reg.Click(ctx, command.Click{Actor: owner, Value: posts[0].Reply.Confirm.ConfirmValue, Typed: "payments"})
	if c.Failed {
		t.Fatalf("confirming deprovision of a deleted channel's enclave: %+v", c)
	}
}

func TestReconcileRepairsDrift(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.provisioned()
	// Events missed: the channel was archived and renamed, someone left
	// and someone joined.
	f.ch.info[general.ID] = command.ChannelInfo{Name: "payments-v2", Archived: true}
	f.ch.members[general.ID] = []string{owner.UserID, "UNEW"}
	if _, err := f.reg.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	r := f.ok(owner, "info")
	if !strings.Contains(r.Text, "frozen (channel archived)") || !slices.Contains(r.Fields, command.Field{Label: "Channel", Value: "#payments-v2"}) {
		t.Errorf("after reconcile: %+v", r)
	}
	if r := f.do(member, "info"); !r.Failed {
		t.Errorf("a member who left still reads: %+v", r)
	}
	// Reconciling again changes nothing more.
	before, _ := f.db.ListAudit(ctx, store.AuditQuery{Limit: 1000})
	if _, err := f.reg.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := f.db.ListAudit(ctx, store.AuditQuery{Limit: 1000})
	if len(after) != len(before) {
		t.Errorf("a second reconcile changed things: %d → %d audit entries", len(before), len(after))
	}
	f.ch.info[general.ID] = command.ChannelInfo{Deleted: true}
	posts, err := f.reg.Reconcile(ctx)
	if err != nil || len(posts) != 1 || posts[0].User != owner.UserID {
		t.Errorf("reconcile of a deleted channel: %+v %v", posts, err)
	}
}

func TestAuditRedactsSecrets(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	f.confirmed(owner, "deploy hello-fanout", "")
	f.ok(owner, `run hello-fanout {"name": "x", "api_token": "s3cr3t-value", "nested": {"password": "hunter2"}}`)
	f.do(owner, `run hello-fanout {"token": "s3cr3t-value"`) // broken JSON
	entries, err := f.db.ListAudit(context.Background(), store.AuditQuery{Verb: "run", Limit: 10})
	if err != nil || len(entries) != 2 {
		t.Fatalf("audit: %v %v", entries, err)
	}
	for _, e := range entries {
		s := fmt.Sprint(e)
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "hunter2") {
			t.Errorf("audit entry keeps a secret: %s", s)
		}
	}
	if !strings.Contains(entries[1].Args["args"], `"name":"x"`) {
		t.Errorf("audit lost the harmless input: %v", entries[1].Args)
	}
	a := f.ok(owner, "audit")
	if !strings.Contains(a.Text, "deploy") || strings.Contains(a.Text, "s3cr3t") {
		t.Errorf("audit reply: %q", a.Text)
	}
}

func TestAdmin(t *testing.T) {
	f := newFixture(t)
	f.provisioned()
	ctx := context.Background()
	admin := &command.Admin{Issuer: "https://idp", Subject: "ops-1", Email: "ops@example.com"}
	do := func(text, confirm string) command.Reply {
		return f.reg.Do(ctx, command.Request{Admin: admin, Via: command.ViaAdmin, Enclave: "payments", Text: text, Confirmed: confirm})
	}
	if r := do("freeze", ""); r.Failed {
		t.Fatalf("admin freeze: %+v", r)
	}
	if r := do("deprovision", ""); r.Confirm == nil {
		t.Errorf("admin deprovision without confirmation: %+v", r)
	}
	if r := do("deprovision", "nope"); !r.Failed {
		t.Errorf("admin deprovision with the wrong name: %+v", r)
	}
	if r := do("deprovision", "payments"); r.Failed {
		t.Errorf("admin deprovision: %+v", r)
	}
	entries, _ := f.db.ListAudit(ctx, store.AuditQuery{Actor: "admin:ops-1", Limit: 10})
	if len(entries) != 4 || entries[0].Subject != "ops-1" || entries[0].Via != command.ViaAdmin {
		t.Errorf("admin audit: %+v", entries)
	}
	if r := f.reg.Do(ctx, command.Request{Admin: admin, Enclave: "nope", Text: "info"}); !r.Failed || !strings.Contains(r.Text, `no enclave called "nope"`) {
		t.Errorf("admin on a missing enclave: %+v", r)
	}
}
