package command

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

func (r *Registry) runVerbs() []*verb {
	return []*verb{
		{Command: Command{Name: "runs", Usage: "<tentacle> [count]", Summary: "a tentacle's latest runs, whatever started them", Enclave: true,
			Params: []Param{word("tentacle", "the tentacle's name", true), number("count", "how many, 1 to 50", false)}},
			op: enclave.OpRuns, onTentacle: true, minArgs: 1, run: r.listRuns},
		{Command: Command{Name: "cancel", Usage: "<run>", Summary: "stop a run in progress", Enclave: true,
			Params: []Param{word("run", "the run's id, from /kraken runs", true)}},
			op: enclave.OpCancel, minArgs: 1, run: r.cancelRun},
		{Command: Command{Name: "retry", Usage: "<run>", Summary: "run again, with the same input, a run that was interrupted or failed", Enclave: true,
			Params: []Param{word("run", "the run's id, from /kraken runs", true)}},
			op: enclave.OpRun, minArgs: 1, run: r.retryRun},
		{Command: Command{Name: "resume", Usage: "<tentacle>", Summary: "start a tentacle's schedule again after it was paused for failing", Enclave: true,
			Params: []Param{word("tentacle", "the tentacle's name", true)}},
			op: enclave.OpRestart, onTentacle: true, minArgs: 1, run: r.resume},
	}
}

func (r *Registry) listRuns(ctx context.Context, c *call) Reply {
	n := 10
	if len(c.args) > 1 {
		v, err := strconv.Atoi(c.args[1])
		if err != nil || v < 1 || v > 50 {
			return private(failed("Give a count from 1 to 50, like `/kraken runs " + c.args[0] + " 20`."))
		}
		n = v
	}
	recs, err := r.runs.List(ctx, c.enc.Name, c.args[0], n)
	if err != nil {
		return failed(explain("read the runs", err))
	}
	if len(recs) == 0 {
		return Reply{Text: fmt.Sprintf("Tentacle %s has not run yet. `/kraken run %s` runs it.", c.args[0], c.args[0])}
	}
	now := r.cfg.Now()
	lines := make([]string, 0, len(recs))
	for _, rec := range recs {
		lines = append(lines, runLine(rec, now))
	}
	return Reply{Text: fmt.Sprintf("The latest runs of *%s*, newest first:\n%s", c.args[0], strings.Join(lines, "\n"))}
}

// runLine says one run in a line.
func runLine(rec runs.Record, now time.Time) string {
	who := triggerWords(rec)
	what := string(rec.State)
	switch rec.State {
	case runs.Succeeded:
		what = "succeeded, " + rec.Summary
	case runs.Running:
		what = fmt.Sprintf("running for %s", rec.Duration(now).Round(time.Second))
		switch done := stepsDone(rec); done {
		case 0:
		case 1:
			what += ", 1 step done"
		default:
			what += fmt.Sprintf(", %d steps done", done)
		}
	case runs.Failed, runs.Interrupted, runs.Cancelled:
		if rec.Error != "" {
			what += ": " + escape(rec.Error)
		}
	case runs.Skipped, runs.Missed:
		if rec.Summary != "" {
			what += ": " + escape(rec.Summary)
		}
	}
	return fmt.Sprintf("• %s %s (%s) `%s`", rec.Started.UTC().Format("2 Jan 15:04:05"), what, who, rec.ID)
}

// stepsDone counts the steps of a run that succeeded so far, as its
// record has them (written about once a second while it runs).
func stepsDone(rec runs.Record) int {
	n := 0
	for _, node := range rec.Nodes {
		if node.State == runs.Succeeded {
			n++
		}
	}
	return n
}

// triggerWords says what started a run.
func triggerWords(rec runs.Record) string {
	kind, detail, _ := strings.Cut(rec.Trigger, ":")
	switch kind {
	case "manual":
		if strings.HasPrefix(rec.Actor, "admin:") {
			return "run by a platform admin"
		}
		return "run by <@" + rec.Actor + ">"
	case "cron":
		return "on schedule " + escape(detail)
	case "queue":
		return "from queue " + escape(detail)
	case "webhook":
		return "from webhook " + escape(detail)
	case "retry":
		return "retried by <@" + rec.Actor + ">"
	}
	return escape(rec.Trigger)
}

// runOf finds a run of this enclave by id.
func (r *Registry) runOf(ctx context.Context, c *call) (runs.Record, Reply, bool) {
	rec, found, err := r.runs.Get(ctx, c.enc.Name, c.args[0])
	switch {
	case err != nil:
		return rec, failed(explain("find that run", err)), false
	case !found:
		return rec, private(failed(fmt.Sprintf("There is no run %s in enclave %s. `/kraken runs <tentacle>` lists them.", escape(c.args[0]), c.enc.Name))), false
	}
	c.audit["tentacle"] = rec.Tentacle
	return rec, Reply{}, true
}

func (r *Registry) cancelRun(ctx context.Context, c *call) Reply {
	rec, rep, ok := r.runOf(ctx, c)
	if !ok {
		return rep
	}
	// The tentacle's own mode applies to cancelling its runs too.
	if c.req.Admin == nil {
		st, _ := r.tentacles.Status(ctx, c.enc.Name, rec.Tentacle)
		if d := enclave.Decide(c.req.Actor, enclave.AccessOf(c.enc), enclave.TentacleAccessOf(c.enc, rec.Tentacle, st.DeployedBy), enclave.OpCancel); !d.Allowed {
			return private(failed(capitalize(d.Reason) + "."))
		}
	}
	if err := r.runs.Cancel(rec.ID); errors.Is(err, runs.ErrNotRunning) {
		return private(Reply{Text: fmt.Sprintf("That run of *%s* is not running any more (%s).", rec.Tentacle, rec.State)})
	}
	return Reply{Text: fmt.Sprintf("Cancelling the run of *%s*.", rec.Tentacle)}
}

func (r *Registry) retryRun(ctx context.Context, c *call) Reply {
	rec, rep, ok := r.runOf(ctx, c)
	if !ok {
		return rep
	}
	switch rec.State {
	case runs.Interrupted, runs.Failed, runs.Cancelled:
	default:
		return private(failed(fmt.Sprintf("That run %s; only an interrupted, failed or cancelled run can be retried.", rec.State)))
	}
	st, err := r.tentacles.Status(ctx, c.enc.Name, rec.Tentacle)
	if err != nil {
		return failed(explain("retry the run of "+rec.Tentacle, err))
	}
	if c.req.Admin == nil {
		if d := enclave.Decide(c.req.Actor, enclave.AccessOf(c.enc), enclave.TentacleAccessOf(c.enc, rec.Tentacle, st.DeployedBy), enclave.OpRun); !d.Allowed {
			return private(failed(capitalize(d.Reason) + "."))
		}
	}
	return r.startRun(ctx, c, runs.Request{
		Enclave: c.enc.Name, Tentacle: rec.Tentacle, Revision: st.Revision,
		Trigger: "retry:" + rec.ID, Actor: actorID(c.req), Input: rec.Input,
	})
}

func (r *Registry) resume(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	if r.cfg.Schedules == nil {
		return private(failed("Schedules don't run here, so there is nothing to resume."))
	}
	if err := r.cfg.Schedules.Resume(ctx, c.enc.Name, c.args[0], actorID(c.req)); err != nil {
		return failed(explain("resume the schedule of "+c.args[0], err))
	}
	return Reply{Text: fmt.Sprintf("The schedule of *%s* runs again.", c.args[0])}
}

// Interrupted marks the runs a stopped bot left "running" as interrupted
// and returns a notice for each one's channel, with a Retry button. Call
// it when the bot starts.
func (r *Registry) Interrupted(ctx context.Context) ([]Post, error) {
	recs, err := r.runs.MarkInterrupted(ctx)
	if err != nil {
		return nil, err
	}
	var posts []Post
	for _, rec := range recs {
		e, err := r.cfg.Enclaves.Get(ctx, rec.Enclave)
		if err != nil || e.Channel.ID == "" {
			continue
		}
		posts = append(posts, Post{Channel: e.Channel, Reply: Reply{
			Text:    fmt.Sprintf("The run of *%s* started %s was interrupted: the bot restarted while it ran.", rec.Tentacle, rec.Started.UTC().Format("2 Jan 15:04 MST")),
			Buttons: []Button{{Label: "Retry", Value: RunValue("retry " + rec.ID)}},
		}})
	}
	return posts, nil
}

// RunEnded tells the channel about a run nobody was waiting for (a
// schedule's, a queue's, a webhook's) when it failed.
func (r *Registry) RunEnded(ctx context.Context, rec runs.Record) []Post {
	if rec.State != runs.Failed || rec.Trigger == "manual" || strings.HasPrefix(rec.Trigger, "retry:") {
		return nil
	}
	e, err := r.cfg.Enclaves.Get(ctx, rec.Enclave)
	if err != nil || e.Channel.ID == "" {
		return nil
	}
	text := fmt.Sprintf("*%s* failed (%s)", rec.Tentacle, triggerWords(rec))
	if rec.Error != "" {
		text += ": " + escape(rec.Error)
	}
	return []Post{{Channel: e.Channel, Reply: Reply{Text: text + ". `/kraken logs " + rec.Tentacle + "` shows what it logged.", Failed: true,
		Buttons: []Button{{Label: "Retry", Value: RunValue("retry " + rec.ID)}}}}}
}

// Webhooks is what the registry asks of the webhook triggers: each
// trigger's address and the secret its sender signs with.
type Webhooks interface {
	Secret(enclave, tentacle string, t tentacle.Trigger) string
	URL(enclave, tentacle, path string) string
}

func (r *Registry) webhookVerb() *verb {
	return &verb{
		Command: Command{Name: "webhooks", Usage: "<tentacle>", Summary: "where to send a tentacle's webhooks and the secret to sign them with (shown only to you)", Enclave: true,
			Params: []Param{word("tentacle", "the tentacle's name", true)}},
		op: enclave.OpDeploy, onTentacle: true, minArgs: 1, run: r.webhooks,
	}
}

// webhooks shows the person who may change a tentacle how to call its
// webhook triggers. The secret is shown privately, as a provider shows a
// new key: it is what they paste into the sender's settings.
func (r *Registry) webhooks(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	if r.cfg.Webhooks == nil {
		return private(failed("Webhooks are not set up on this bot."))
	}
	files, err := r.tentacles.Files(ctx, c.enc.Name, c.args[0], 0)
	if err != nil {
		return failed(explain("read "+c.args[0], err))
	}
	wf, err := tentacle.Parse(tentacle.FileName, files[tentacle.FileName])
	if err != nil {
		return failed(explain("read "+c.args[0], err))
	}
	var lines []string
	for _, t := range wf.Triggers {
		if t.Type != tentacle.TriggerWebhook {
			continue
		}
		how := "sign the body with HMAC-SHA256 and send it as `X-Kraken-Signature: sha256=<hex>`"
		if t.Provider == "github" {
			how = "paste it as the GitHub webhook's secret (content type application/json)"
		}
		lines = append(lines, fmt.Sprintf("• `%s`\n  secret `%s`: %s", r.cfg.Webhooks.URL(c.enc.Name, c.args[0], t.Path), r.cfg.Webhooks.Secret(c.enc.Name, c.args[0], t), how))
	}
	if len(lines) == 0 {
		return private(Reply{Text: fmt.Sprintf("*%s* has no webhook triggers.", c.args[0])})
	}
	return private(Reply{Text: fmt.Sprintf("Webhooks of *%s* (keep the secrets to yourself):\n%s", c.args[0], strings.Join(lines, "\n"))})
}
