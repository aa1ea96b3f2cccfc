package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/llmtest"
	"github.com/kraken-ops/kraken/bot/oidctest"
	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"github.com/kraken-ops/kraken/k8s/k8stest/botenv"
	"github.com/kraken-ops/kraken/store"
)

func TestServeSettings(t *testing.T) {
	full := map[string]string{
		"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "KRAKEN_IMAGE": "img",
		"KRAKEN_NAMESPACE": "kraken-system", "KRAKEN_ENCLAVE_ROLE": "kraken-enclave",
		"KRAKEN_POD_LABELS": `{"app":"kraken"}`, "KRAKEN_TENTACLE_NODE_SELECTOR": "null",
		"KRAKEN_STORE_KEY": keyText(1),
	}
	tests := []struct {
		name  string
		set   map[string]string
		wants []string // in the error; none means it must work
	}{
		{"complete", nil, nil},
		{"socket mode only", map[string]string{"SLACK_SIGNING_SECRET": "", "SLACK_APP_TOKEN": "xapp-1"}, nil},
		{"nothing", map[string]string{"SLACK_BOT_TOKEN": "", "SLACK_SIGNING_SECRET": "", "KRAKEN_IMAGE": "", "KRAKEN_NAMESPACE": "", "KRAKEN_STORE_KEY": ""},
			[]string{"SLACK_BOT_TOKEN", "neither SLACK_SIGNING_SECRET", "KRAKEN_IMAGE", "KRAKEN_NAMESPACE", "KRAKEN_STORE_KEY_FILE"}},
		{"labels as the chart writes them", map[string]string{"KRAKEN_POD_LABELS": "app.kubernetes.io/name=kraken,app.kubernetes.io/instance=k"}, nil},
		{"bad labels", map[string]string{"KRAKEN_POD_LABELS": "app"}, []string{`KRAKEN_POD_LABELS: "app" is not key=value`}},
		{"bad JSON labels", map[string]string{"KRAKEN_POD_LABELS": "{app"}, []string{"not a JSON object of labels"}},
		{"short webhook key", map[string]string{"KRAKEN_WEBHOOK_KEY": "short", "KRAKEN_PUBLIC_URL": "https://k"}, []string{"at least 32 bytes"}},
		{"webhooks without a public address", map[string]string{"KRAKEN_WEBHOOK_KEY": strings.Repeat("k", 32)}, []string{"KRAKEN_PUBLIC_URL"}},
		{"bad interval", map[string]string{"KRAKEN_RECONCILE_INTERVAL": "1s"}, []string{"at least 10s"}},
		{"bad retention", map[string]string{"KRAKEN_RUN_RETENTION": "5m"}, []string{"KRAKEN_RUN_RETENTION"}},
		{"half an OIDC", map[string]string{"KRAKEN_OIDC_ISSUER": "https://idp"}, []string{"KRAKEN_OIDC_AUDIENCE"}},
	}
	for _, tt := range tests {
		env := map[string]string{}
		for k, v := range full {
			env[k] = v
		}
		for k, v := range tt.set {
			env[k] = v
		}
		s, err := serveSettingsFrom(func(k string) string { return env[k] })
		if len(tt.wants) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error (settings %+v)", tt.name, s)
			continue
		}
		for _, w := range tt.wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q:\n%v", tt.name, w, err)
			}
		}
	}
}

// e2e is a running `kraken serve`: the real bot, as its least-privileged
// ServiceAccount on the test control plane, talking to a fake Slack, with
// a fake kubelet running its tentacles' pods. Tests reach it only as
// Slack and operators do: its HTTP endpoints and Socket Mode.
type e2e struct {
	t            *testing.T
	srv          *slacktest.Server
	idp          *oidctest.Issuer
	llm          *llmtest.Server
	slackURL     string
	adminURL     string
	alice, bob   slacktest.User
	carol        slacktest.User
	ops          slacktest.Channel
	admin        *k8s.Client
	cancel       func()
	done         chan error
	commandsSent int
}

func startServe(t *testing.T) *e2e {
	t.Helper()
	bot := botenv.Install(t)
	kubelet := k8stest.StartKubelet(t, k8stest.Config(t), k8stest.KubeletOptions{})
	srv := slacktest.New(t, slacktest.WithWaitTimeout(time.Minute))
	e := &e2e{t: t, srv: srv, idp: oidctest.New(t), llm: llmtest.New(t), done: make(chan error, 1)}
	e.alice = srv.AddUser(slacktest.User{Name: "alice", Email: "alice@example.com"})
	e.bob = srv.AddUser(slacktest.User{Name: "bob", Email: "bob@example.com"})
	e.carol = srv.AddUser(slacktest.User{Name: "carol"})
	// A unique channel name: its enclave is a namespace on the shared
	// control plane.
	name := k8stest.UniqueName("ops")
	e.ops = srv.AddChannel(slacktest.Channel{Name: name, Members: []string{srv.BotUserID(), e.alice.ID, e.bob.ID}})
	t.Cleanup(func() { k8stest.CleanupNamespace(t, name) })

	kc := bot.Config(t)
	s := serveSettings{
		kube:       kc,
		kubeconfig: os.Getenv("KUBECONFIG"), // replaced by the bot's own token below
		data:       filepath.Join(t.TempDir(), "kraken.db"),
		httpAddr:   "127.0.0.1:0",
		adminAddr:  "127.0.0.1:0",
		examples:   examplesDir(""),
		reconcile:  time.Hour,
		storeKeys:  testStoreKeys(t),
	}
	s.slack.BotToken, s.slack.SigningSecret, s.slack.AppToken, s.slack.APIURL = srv.BotToken(), srv.SigningSecret(), srv.AppToken(), srv.APIURL()
	s.oidc.Issuer, s.oidc.Audience, s.oidc.AdminGroup = e.idp.URL(), e.idp.Audience(), "platform-admins"
	s.triggers = triggerSettings{webhookKey: []byte(strings.Repeat("w", 32)), publicURL: "https://kraken.test"}
	s.llm, s.llmOn = llmSettings(envMap{"KRAKEN_LLM_BASE_URL": e.llm.BaseURL(), "KRAKEN_LLM_API_KEY": "sk-test"}.get)
	addrs := make(chan [2]string, 1)
	hooks := serveHooks{
		kube: func(c *k8s.Config) {
			c.Rest = bot.Rest
			c.RunTransport = kubelet.Transport()
			c.NodeSelector = kubelet.NodeSelector()
			c.RuntimeClass = "none"
		},
		listening: func(h, a string) { addrs <- [2]string{h, a} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	var out syncBuffer
	go func() {
		e.done <- serve(ctx, env{stdout: &out, stderr: &out, getenv: func(string) string { return "" }}, s, hooks)
	}()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("kraken serve's log:\n%s", out.String())
		}
	})
	select {
	case a := <-addrs:
		e.slackURL, e.adminURL = "http://"+a[0], "http://"+a[1]
	case err := <-e.done:
		e.cancel = nil
		t.Fatalf("serve ended: %v\n%s", err, out.String())
	case <-time.After(time.Minute):
		t.Fatal("serve did not start listening")
	}
	e.eventually("the bot ready", func() bool { code, _ := e.get("/readyz", ""); return code == http.StatusOK })
	admin, err := k8s.New(k8s.Config{Rest: k8stest.Config(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.admin = admin
	return e
}

func (e *e2e) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("serve did not stop within 30s of its context ending")
	}
}

type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *e2e) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *e2e) get(path, token string) (int, string) {
	return e.request("GET", e.adminURL+path, token)
}

func (e *e2e) request(method, url, token string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// send posts a body to the bot as Slack does, signed at time at.
func (e *e2e) send(path string, body []byte, at time.Time) (int, string) {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(e.srv.SignedRequest(e.slackURL+path, body, at))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *e2e) event(id string, inner map[string]any) {
	e.t.Helper()
	if code, body := e.send("/slack/events", e.srv.EventCallback(e.srv.TeamID(), id, inner), time.Now()); code != http.StatusOK {
		e.t.Fatalf("event %v: %d %s", inner["type"], code, body)
	}
}

// command sends /kraken text as user over HTTP (or Socket Mode) and
// returns the bot's answer: the ephemeral response, or the message it
// posted in the channel.
func (e *e2e) command(user slacktest.User, text string, socket bool) string {
	e.t.Helper()
	seen := map[string]bool{}
	for _, m := range e.srv.Messages(e.ops.ID) {
		seen[m.TS] = true
	}
	c := e.srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: text, UserID: user.ID, ChannelID: e.ops.ID})
	if socket {
		e.srv.WaitAck(e.srv.SendSlashCommand(c))
	} else if code, body := e.send("/slack/commands", c.Body(), time.Now()); code != http.StatusOK {
		e.t.Fatalf("/kraken %s: %d %s", text, code, body)
	}
	var answer string
	e.eventually("an answer to /kraken "+text, func() bool {
		for _, r := range e.srv.Responses(c.ResponseURL) {
			if !r.DeleteOriginal && !strings.Contains(r.Text, "Working on it") && !strings.Contains(r.Text, "Thinking…") {
				answer = r.AllText()
				return true
			}
		}
		for _, m := range e.srv.Messages(e.ops.ID) {
			// Commands run one at a time here: the bot's next message is
			// the answer.
			// A run's message says it runs, then is updated in place.
			// A picture the bot shares is a message of its own, with no text.
			// A run's output goes in its message's thread.
			text := strings.TrimSpace(m.AllText())
			if !seen[m.TS] && m.BotID != "" && text != "" && !strings.Contains(text, "Thinking…") && !strings.Contains(text, "Running *") && (m.ThreadTS == "" || m.ThreadTS == m.TS) {
				answer = m.AllText()
				return true
			}
		}
		return false
	})
	return answer
}

// card waits for the bot's newest channel message containing text.
func (e *e2e) card(text string) slacktest.Message {
	e.t.Helper()
	var found slacktest.Message
	e.eventually("a message saying "+text, func() bool {
		msgs := e.srv.Messages(e.ops.ID)
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].BotID != "" && strings.Contains(msgs[i].AllText(), text) {
				found = msgs[i]
				return true
			}
		}
		return false
	})
	return found
}

// press clicks a button on a card, by its label.
func (e *e2e) press(user slacktest.User, m slacktest.Message, label string, state map[string]map[string]any) {
	e.t.Helper()
	var blocks []map[string]any
	_ = json.Unmarshal(m.Blocks, &blocks)
	for _, b := range blocks {
		if b["type"] != "actions" {
			continue
		}
		for _, el := range b["elements"].([]any) {
			btn := el.(map[string]any)
			if btn["text"].(map[string]any)["text"] == label {
				a := e.srv.BlockAction(slacktest.BlockAction{UserID: user.ID, ChannelID: e.ops.ID, MessageTS: m.TS, Value: btn["value"].(string), Text: label, State: state})
				if code, body := e.send("/slack/interactions", a.Body(), time.Now()); code != http.StatusOK {
					e.t.Fatalf("pressing %s: %d %s", label, code, body)
				}
				return
			}
		}
	}
	e.t.Fatalf("no %q button on: %s", label, m.AllText())
}

func (e *e2e) enclave() enclave.Enclave {
	e.t.Helper()
	en, err := e.admin.Get(context.Background(), e.ops.Name)
	if err != nil {
		e.t.Fatalf("enclave %s: %v", e.ops.Name, err)
	}
	return en
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// TestServeEndToEnd walks a channel's life through the bot: invited,
// provisioned by a button, a tentacle deployed, run and undeployed,
// archived and back, members coming and going, and everything someone
// without the right, a forger or a replay tries.
func TestServeEndToEnd(t *testing.T) {
	e := startServe(t)
	ctx := context.Background()

	// Forged and stale requests are refused before anything happens.
	body := e.srv.EventCallback(e.srv.TeamID(), "EvFORGED", e.srv.MemberJoinedChannelEvent(e.ops.ID, e.srv.BotUserID(), e.carol.ID))
	req := e.srv.SignedRequest(e.slackURL+"/slack/events", body, time.Now())
	req.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("0", 64))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged signature: %d", resp.StatusCode)
	}
	if code, _ := e.send("/slack/events", body, time.Now().Add(-6*time.Minute)); code != http.StatusUnauthorized {
		t.Errorf("stale request: %d", code)
	}
	if code, got := e.send("/slack/events", e.srv.URLVerification("c-123"), time.Now()); code != http.StatusOK || !strings.Contains(got, "c-123") {
		t.Errorf("url_verification: %d %s", code, got)
	}

	// Invited, the bot offers to provision; alice presses the button.
	e.event("EvINVITE", e.srv.MemberJoinedChannelEvent(e.ops.ID, e.srv.BotUserID(), e.alice.ID))
	offer := e.card("thanks for inviting me")
	e.press(e.alice, offer, "Provision enclave "+e.ops.Name, nil)
	e.card("is ready, owned by <@" + e.alice.ID + ">")
	en := e.enclave()
	if en.Owner != e.alice.ID || !en.Ready || !en.IsMember(e.bob.ID) || en.Mode != enclave.DefaultMode {
		t.Fatalf("enclave after provision: %+v", en)
	}
	// Slack delivers the invite again: nothing happens twice.
	e.event("EvINVITE", e.srv.MemberJoinedChannelEvent(e.ops.ID, e.srv.BotUserID(), e.alice.ID))

	// People outside the channel, and unknown commands.
	mustContain(t, "carol's deploy", e.command(e.carol, "deploy hello-fanout", false), "can't deploy")
	mustContain(t, "an unknown command", e.command(e.bob, "deplyo", false), "I don't know the command", "/kraken deploy")

	// Deploy an example: the card shows the picture and the change, and
	// the deploy happens when alice confirms.
	e.command(e.alice, "deploy hello-fanout", false)
	card := e.card("Ready to deploy *hello-fanout*")
	mustContain(t, "the deploy card", card.AllText(), "First deploy")
	if files := e.srv.Files(); len(files) == 0 || !strings.HasSuffix(files[len(files)-1].Name, ".png") {
		t.Errorf("no DAG picture uploaded: %+v", files)
	}
	e.press(e.bob, card, "Deploy", nil) // not bob's to confirm
	e.press(e.alice, card, "Deploy", nil)
	e.card("Deployed *hello-fanout*")
	tent, err := k8s.NewTentacles(e.admin)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := tent.WaitReady(wctx, e.ops.Name, "hello-fanout"); err != nil {
		t.Fatalf("hello-fanout never ready: %v", err)
	}

	// Run it over Socket Mode, read its status and logs over HTTP.
	run := e.command(e.bob, `run hello-fanout {"name": "Ada"}`, true)
	mustContain(t, "the run", run, "*hello-fanout* succeeded")
	if strings.Contains(run, `{"`) {
		t.Errorf("the run's answer shows raw JSON: %s", run)
	}
	mustContain(t, "status", e.command(e.bob, "status hello-fanout", false), "running", "Revision")
	mustContain(t, "logs", e.command(e.bob, "logs hello-fanout", false), "log lines of *hello-fanout*")

	// Plain words, through the language model: it may only call what bob
	// may do here, and the answer replaces a placeholder in the thread.
	e.llm.CallTools(llmtest.Call{Name: "list", Arguments: `{}`})
	e.llm.Reply("One tentacle is deployed here: hello-fanout, and it is running.")
	question := e.srv.UserMessage(e.ops.ID, e.bob.ID, "", e.srv.BotMention()+" what is running here?")
	e.event("", e.srv.AppMentionEvent(question))
	e.card("One tentacle is deployed here: hello-fanout")
	asked := e.llm.Requests()[0]
	if tools := asked.ToolNames(); !slices.Contains(tools, "list") || !slices.Contains(tools, "run") || slices.Contains(tools, "secret") || slices.Contains(tools, "help") {
		t.Errorf("tools offered to the model for bob: %v", tools)
	}
	if last := e.llm.Requests()[1].LastToolResult(); !strings.Contains(last, "hello-fanout") {
		t.Errorf("the model did not get the list: %q", last)
	}
	// The model down: a plain answer, and commands still work.
	e.llm.Fail(http.StatusInternalServerError)
	e.llm.Fail(http.StatusInternalServerError)
	e.llm.Fail(http.StatusInternalServerError)
	mustContain(t, "free text with the model down", e.command(e.bob, "is everything fine?", false), "isn't answering")
	mustContain(t, "a command with the model down", e.command(e.bob, "list", false), "hello-fanout")

	// Archived, the enclave is frozen: no deploys, no runs, looking is fine.
	e.srv.ArchiveChannel(e.ops.ID)
	e.event("", e.srv.ChannelArchiveEvent(e.ops.ID, e.alice.ID))
	e.eventually("the enclave frozen", func() bool { en := e.enclave(); return en.Frozen && en.Archived })
	mustContain(t, "a deploy in a frozen enclave", e.command(e.alice, "deploy hello-fanout", false), "archived")
	mustContain(t, "a run in a frozen enclave", e.command(e.bob, "run hello-fanout", false), "archived")
	mustContain(t, "list in a frozen enclave", e.command(e.bob, "list", false), "hello-fanout")
	e.srv.UnarchiveChannel(e.ops.ID)
	e.event("", e.srv.ChannelUnarchiveEvent(e.ops.ID, e.alice.ID))
	e.eventually("the enclave active again", func() bool { return !e.enclave().Frozen })

	// Bob leaves: he loses his rights; carol joins: she gains them.
	e.event("", e.srv.MemberLeftChannelEvent(e.ops.ID, e.bob.ID))
	e.eventually("bob gone", func() bool { return !e.enclave().IsMember(e.bob.ID) })
	mustContain(t, "bob's run after leaving", e.command(e.bob, "run hello-fanout", false), "can't run")
	e.event("", e.srv.MemberJoinedChannelEvent(e.ops.ID, e.carol.ID, ""))
	e.eventually("carol in", func() bool { return e.enclave().IsMember(e.carol.ID) })
	mustContain(t, "carol's run", e.command(e.carol, "run hello-fanout", false), "succeeded")

	// Undeploy needs alice's confirmation.
	e.command(e.alice, "undeploy hello-fanout", false)
	e.press(e.alice, e.card("Undeploy hello-fanout"), "Undeploy", nil)
	e.card("was undeployed")
	if _, err := tent.Status(ctx, e.ops.Name, "hello-fanout"); err == nil {
		t.Error("hello-fanout is still deployed")
	}

	// A webhook trigger: the person who may change the tentacle learns
	// where to send pushes and the secret; a signed push runs it, anything
	// else runs nothing.
	e.command(e.alice, "deploy push-digest", false)
	e.press(e.alice, e.card("Ready to deploy *push-digest*"), "Deploy", nil)
	e.card("Deployed *push-digest*")
	if _, err := tent.WaitReady(wctx, e.ops.Name, "push-digest"); err != nil {
		t.Fatalf("push-digest never ready: %v", err)
	}
	where := e.command(e.alice, "webhooks push-digest", false)
	m := regexp.MustCompile(`https://kraken\.test(/hooks/\S+?)` + "`" + `[\s\S]*?secret ` + "`" + `([0-9a-f]{64})` + "`").FindStringSubmatch(where)
	if m == nil {
		t.Fatalf("webhooks answer: %s", where)
	}
	if got := e.command(e.bob, "webhooks push-digest", false); strings.Contains(got, m[2]) {
		t.Errorf("someone who may not change the tentacle saw its webhook secret")
	}
	push := []byte(`{"repository":{"full_name":"o/r"},"pusher":{"name":"ada"},"ref":"refs/heads/main","commits":[{"message":"m"}]}`)
	mac := hmac.New(sha256.New, []byte(m[2]))
	mac.Write(push)
	hook := func(sig string) int {
		req, _ := http.NewRequest("POST", e.slackURL+m[1], bytes.NewReader(push))
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "d-"+sig[len(sig)-6:])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := hook("sha256=" + strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Errorf("a forged push: %d", code)
	}
	if code := hook("sha256=" + hex.EncodeToString(mac.Sum(nil))); code != http.StatusAccepted {
		t.Fatalf("a signed push: %d", code)
	}
	e.eventually("the push's run recorded", func() bool {
		return strings.Contains(e.command(e.alice, "runs push-digest", false), "succeeded, 1 steps")
	})
	mustContain(t, "the push's run", e.command(e.alice, "runs push-digest", false), "from webhook /push")

	// The operators' side: metrics, and the audit log through the admin API.
	code, metricsText := e.get("/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	mustContain(t, "metrics", metricsText, `kraken_commands_total{verb="deploy",outcome="denied"}`, `kraken_runs_total{state="succeeded"}`, "kraken_ack_seconds_bucket", `kraken_slack_events_total{event="rejected"}`)
	if code, _ := e.get("/admin/v1/audit", ""); code != http.StatusUnauthorized {
		t.Errorf("admin API without a token: %d", code)
	}
	tok := e.idp.Token(map[string]any{"sub": "ops-1", "groups": []string{"platform-admins"}})
	code, auditJSON := e.get("/admin/v1/audit?enclave="+e.ops.Name+"&limit=200", tok)
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(auditJSON), &entries); code != http.StatusOK || err != nil {
		t.Fatalf("audit: %d %s", code, auditJSON)
	}
	count := map[string]int{}
	for _, a := range entries {
		count[a.Verb+"/"+a.Decision]++
		if strings.Contains(fmt.Sprint(a), e.srv.BotToken()) || strings.Contains(fmt.Sprint(a), e.srv.SigningSecret()) {
			t.Errorf("audit entry holds a secret: %+v", a)
		}
	}
	for _, want := range []string{"provision/allowed", "deploy/denied", "run/denied", "run/allowed", "undeploy/allowed", "channel-archived/allowed"} {
		if count[want] == 0 {
			t.Errorf("audit has no %s entry: %v", want, count)
		}
	}
	for _, m := range e.srv.Messages(e.ops.ID) {
		if strings.Contains(m.AllText(), "I'm back") {
			t.Errorf("the replayed invite was handled again: %s", m.AllText())
		}
	}
	code, list := e.request("POST", e.adminURL+"/admin/v1/enclaves/"+e.ops.Name+"/freeze", tok)
	if code != http.StatusOK || !e.enclave().Frozen {
		t.Errorf("admin freeze: %d %s", code, list)
	}
}
