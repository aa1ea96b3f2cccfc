package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
	"github.com/kraken-ops/kraken/tentacle/diagram"
)

func (r *Registry) tentacleVerbs() []*verb {
	return []*verb{
		{Command: Command{Name: "list", Summary: "the tentacles deployed here", Enclave: true}, op: enclave.OpList, run: r.list},
		{Command: Command{Name: "deploy", Usage: "[example or file name]", Summary: "deploy a tentacle from a .tar.gz or .zip you uploaded here, or a named example; shows the picture and what changes before you confirm", Enclave: true, Destructive: true, Params: []Param{word("source", "an example's name or an uploaded file's name; leave out for the newest upload", false)}},
			op: enclave.OpDeploy, run: r.deploy, preview: r.previewDeploy,
			confirm: func(c *call) (string, string) {
				return "Deploy " + c.audit["tentacle"], "Confirm to deploy it; the running revision keeps serving until the new one is ready."
			}},
		{Command: Command{Name: "status", Usage: "<tentacle>", Summary: "how a tentacle is doing", Enclave: true, Params: []Param{word("tentacle", "the tentacle's name", true)}}, op: enclave.OpStatus, onTentacle: true, minArgs: 1, run: r.status},
		{Command: Command{Name: "run", Usage: "<tentacle> [JSON input]", Summary: "run a tentacle now and show the result", Enclave: true, Params: []Param{word("tentacle", "the tentacle's name", true), {Name: "input", Kind: ParamJSON, Description: "the run's input, a JSON value"}}}, op: enclave.OpRun, onTentacle: true, minArgs: 1, run: r.run},
		{Command: Command{Name: "logs", Usage: "<tentacle> [lines]", Summary: "a tentacle's latest log lines", Enclave: true, Params: []Param{word("tentacle", "the tentacle's name", true), number("lines", "how many lines, 1 to 500", false)}}, op: enclave.OpLogs, onTentacle: true, minArgs: 1, run: r.logs},
		{Command: Command{Name: "undeploy", Usage: "<tentacle>", Summary: "remove a tentacle (its revisions go too)", Enclave: true, Destructive: true, Params: []Param{word("tentacle", "the tentacle's name", true)}}, op: enclave.OpUndeploy, onTentacle: true, minArgs: 1, run: r.undeploy,
			confirm: func(c *call) (string, string) {
				return "Undeploy " + c.args[0], fmt.Sprintf("Tentacle %s will stop and be removed from enclave %s, with its earlier revisions.", c.args[0], c.enc.Name)
			}},
		{Command: Command{Name: "rollback", Usage: "<tentacle> [revision]", Summary: "go back to an earlier revision (the one before the current, unless you name one)", Enclave: true, Destructive: true, Params: []Param{word("tentacle", "the tentacle's name", true), number("revision", "the revision's number", false)}}, op: enclave.OpRollback, onTentacle: true, minArgs: 1, run: r.rollback,
			confirm: func(c *call) (string, string) {
				to := "the revision before the current one"
				if len(c.args) > 1 {
					to = "revision " + c.args[1]
				}
				return "Roll back " + c.args[0], fmt.Sprintf("Tentacle %s will be redeployed as %s (currently revision %d).", c.args[0], to, c.status.Revision)
			}},
	}
}

// notDeployed is the reply for a verb on a tentacle that isn't there.
func notDeployed(c *call) Reply {
	return private(failed(fmt.Sprintf("There is no tentacle called %s in enclave %s. `/kraken list` shows what is deployed.", c.args[0], c.enc.Name)))
}

func (r *Registry) list(ctx context.Context, c *call) Reply {
	list, err := r.tentacles.List(ctx, c.enc.Name)
	if err != nil {
		return failed(explain("list the tentacles", err))
	}
	if len(list) == 0 {
		return Reply{Text: fmt.Sprintf("Nothing is deployed in enclave %s yet. `/kraken deploy hello-fanout` deploys an example.", c.enc.Name)}
	}
	lines := make([]string, 0, len(list))
	for _, s := range list {
		lines = append(lines, fmt.Sprintf("• *%s* %s (revision %d): %s", s.Name, s.Version, s.Revision, healthWords(s)))
	}
	return Reply{Text: fmt.Sprintf("Enclave %s has %d tentacles:\n%s", c.enc.Name, len(list), strings.Join(lines, "\n"))}
}

// healthWords says how a tentacle is doing in a few words.
func healthWords(s tentacle.Status) string {
	switch {
	case s.Ready && s.LastError == "":
		return "running"
	case s.Ready:
		return "running, but " + s.LastError
	case s.LastError != "":
		return "not running: " + s.LastError
	}
	return "starting"
}

func (r *Registry) status(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	s := c.status
	fields := []Field{
		{"Health", healthWords(s)},
		{"Version", s.Version},
		{"Revision", strconv.Itoa(s.Revision)},
		{"Replicas ready", fmt.Sprintf("%d of %d", s.ReadyReplicas, s.Replicas)},
		{"Restarts", strconv.Itoa(s.Restarts)},
	}
	if s.DeployedBy != "" {
		fields = append(fields, Field{"Deployed by", "<@" + s.DeployedBy + ">"})
	}
	if !s.DeployedAt.IsZero() {
		fields = append(fields, Field{"Deployed", s.DeployedAt.UTC().Format("2 Jan 15:04 MST")})
	}
	return Reply{Text: fmt.Sprintf("Tentacle *%s* is %s.", s.Name, healthWords(s)), Fields: fields,
		Buttons: []Button{{Label: "Run", Value: RunValue("run " + s.Name)}, {Label: "Runs", Value: RunValue("runs " + s.Name)}}}
}

// maxRunInput bounds a run's input typed in a command.
const maxRunInput = 64 << 10

func (r *Registry) run(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	name := c.args[0]
	input := strings.TrimSpace(strings.TrimPrefix(c.rest, name))
	if input == "" {
		input = "{}"
	}
	if len(input) > maxRunInput {
		return private(failed("That input is too long; keep it under 64 KiB."))
	}
	if !json.Valid([]byte(input)) {
		return private(failed(fmt.Sprintf("The input after the tentacle's name must be JSON, like `/kraken run %s {\"city\": \"Oslo\"}`.", name)))
	}
	return r.startRun(ctx, c, runs.Request{
		Enclave: c.enc.Name, Tentacle: name, Revision: c.status.Revision,
		Trigger: "manual", Actor: actorID(c.req), Input: json.RawMessage(input),
	})
}

// startRun starts a run and answers at once that it runs, with a Cancel
// button; its progress follows in Later as steps end, then its result.
func (r *Registry) startRun(ctx context.Context, c *call, req runs.Request) Reply {
	done := make(chan ended, 1)
	rec, err := r.runs.Start(ctx, req, func(rec runs.Record, body json.RawMessage) { done <- ended{rec, body} })
	if errors.Is(err, runs.ErrStopping) {
		return failed("I'm restarting and start no new runs just now. Try again in a minute.")
	}
	if err != nil {
		r.log.Warn("run not started", "enclave", req.Enclave, "tentacle", req.Tentacle, "err", err)
		return failed(explain("run "+req.Tentacle, err))
	}
	c.audit["run"] = rec.ID
	// A run that ended already cannot be followed: its end comes alone.
	updates, _ := r.runs.Follow(rec.ID)
	buttons := []Button{{Label: "Cancel", Value: RunValue("cancel " + rec.ID), Style: "danger"}}
	later := make(chan Reply, 1)
	go r.streamRun(context.WithoutCancel(ctx), rec, updates, done, buttons, later)
	return Reply{
		Text:    fmt.Sprintf("Running *%s*…", req.Tentacle),
		Buttons: buttons,
		Later:   later,
	}
}

// runResult says how a run ended in a few words, with the DAG picture
// coloured by each step's outcome when the workflow can be read; what
// each step returned, or why it failed, goes in Details.
func (r *Registry) runResult(ctx context.Context, rec runs.Record, body json.RawMessage) Reply {
	name := rec.Tentacle
	var rep Reply
	var res engine.Result
	switch {
	case rec.State == runs.Cancelled:
		return Reply{Text: fmt.Sprintf("The run of *%s* was cancelled after %s.", name, rec.Duration(rec.Ended).Round(time.Millisecond))}
	case rec.State == runs.Interrupted:
		return Reply{Text: fmt.Sprintf("The run of *%s* was interrupted: the bot restarted while it ran.", name), Failed: true,
			Buttons: []Button{{Label: "Retry", Value: RunValue("retry " + rec.ID)}}}
	case len(body) == 0 || json.Unmarshal(body, &res) != nil:
		r.log.Warn("run failed", "enclave", rec.Enclave, "tentacle", name, "err", rec.Error)
		if rec.Error == "the tentacle answered something unreadable" {
			return failed(fmt.Sprintf("Tentacle %s answered something I can't read. `/kraken logs %s` may say why.", name, name))
		}
		return failed(explain("run "+name, errors.New(rec.Error)))
	}
	text, details := describeResult(name, res, time.Duration(res.Timing.DurationMs)*time.Millisecond)
	rep = Reply{Text: text, Details: details, Failed: !res.Success}
	if img := r.runPicture(ctx, rec); img != nil {
		rep.Image = img
	}
	return rep
}

// runPicture draws the tentacle's DAG with each step coloured by how it
// did in the run, or nil when the workflow can't be read.
func (r *Registry) runPicture(ctx context.Context, rec runs.Record) *Image {
	g := r.graphOf(ctx, rec)
	if g == nil {
		return nil
	}
	status := map[string]diagram.Status{}
	for _, id := range g.wf.NodeIDs {
		status[id] = diagram.Pending
		if n, ok := rec.Nodes[id]; ok {
			status[id] = diagram.Succeeded
			if n.State == runs.Failed {
				status[id] = diagram.Failed
			}
		}
	}
	var png bytes.Buffer
	if err := diagram.PNG(&png, g.wf, g.stages, status); err != nil {
		return nil
	}
	return &Image{Name: rec.Tentacle + "-run.png", Title: "Run of " + rec.Tentacle, Alt: "The steps of " + rec.Tentacle + ", coloured by how each did", PNG: png.Bytes()}
}

// describeResult says a run's result in words: a line on whether it
// worked and how long it took, and the details: what each step produced
// (short), or what failed.
func describeResult(name string, res engine.Result, dur time.Duration) (text, details string) {
	var b strings.Builder
	if !res.Success {
		failedSteps := sortedNames(res.Errors)
		at := "step"
		if len(failedSteps) > 1 {
			at = "steps"
		}
		text = fmt.Sprintf("*%s* failed after %s at %s %s.", name, dur, at, escape(strings.Join(failedSteps, ", ")))
		for _, n := range failedSteps {
			fmt.Fprintf(&b, "• step %s: %s\n", n, escape(res.Errors[n]))
		}
		fmt.Fprintf(&b, "`/kraken logs %s` shows what it logged.", name)
		return text, b.String()
	}
	text = fmt.Sprintf("*%s* succeeded in %s (%d steps).", name, dur, len(res.Outputs))
	for i, n := range sortedNames(res.Outputs) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "• %s: %s", n, escape(describeValue(res.Outputs[n])))
	}
	return text, b.String()
}

func firstError(res engine.Result) string {
	for _, n := range sortedNames(res.Errors) {
		return n + ": " + res.Errors[n]
	}
	return "unknown error"
}

// describeValue shows a step's output as words: scalars as they are,
// objects as "key: value" pairs, long things cut short.
func describeValue(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "(unreadable)"
	}
	s := valueWords(v, 0)
	if len(s) > 300 {
		s = s[:297] + "…"
	}
	return s
}

func valueWords(v any, depth int) string {
	switch t := v.(type) {
	case nil:
		return "nothing"
	case string:
		return t
	case bool:
		if t {
			return "yes"
		}
		return "no"
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case []any:
		if depth > 1 {
			return fmt.Sprintf("%d items", len(t))
		}
		parts := make([]string, 0, len(t))
		for _, x := range t {
			parts = append(parts, valueWords(x, depth+1))
		}
		return strings.Join(parts, ", ")
	case map[string]any:
		if depth > 1 {
			return fmt.Sprintf("%d fields", len(t))
		}
		parts := make([]string, 0, len(t))
		for _, k := range sortedNames(t) {
			parts = append(parts, k+" "+valueWords(t[k], depth+1))
		}
		return strings.Join(parts, "; ")
	}
	return fmt.Sprint(v)
}

// maxLogBytes bounds the log text a reply carries.
const maxLogBytes = 12 << 10

func (r *Registry) logs(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	n := 30
	if len(c.args) > 1 {
		v, err := strconv.Atoi(c.args[1])
		if err != nil || v < 1 || v > 500 {
			return private(failed("Give a number of lines from 1 to 500, like `/kraken logs " + c.args[0] + " 100`."))
		}
		n = v
	}
	rc, err := r.tentacles.Logs(ctx, c.enc.Name, c.args[0], tentacle.LogOptions{TailLines: n})
	if err != nil {
		return failed(explain("read the logs of "+c.args[0], err))
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 4*maxLogBytes))
	if err != nil {
		return failed(explain("read the logs of "+c.args[0], err))
	}
	lines := readableLogLines(data)
	if len(lines) == 0 {
		return Reply{Text: fmt.Sprintf("Tentacle %s has logged nothing yet.", c.args[0])}
	}
	text := escape(strings.Join(lines, "\n"))
	for len(text) > maxLogBytes {
		lines = lines[1:]
		text = escape(strings.Join(lines, "\n"))
	}
	return Reply{Text: fmt.Sprintf("The last %d log lines of *%s*:\n```\n%s\n```", len(lines), c.args[0], text)}
}

// readableLogLines turns the engine's structured log lines into
// "15:04:05 INFO message key=value" and leaves other lines as they are.
func readableLogLines(data []byte) []string {
	var out []string
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec map[string]any
		if json.Unmarshal(line, &rec) != nil {
			out = append(out, string(line))
			continue
		}
		var b strings.Builder
		if ts, ok := rec["time"].(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				b.WriteString(t.UTC().Format("15:04:05") + " ")
			}
		}
		if lv, ok := rec["level"].(string); ok {
			b.WriteString(lv + " ")
		}
		b.WriteString(fmt.Sprint(rec["msg"]))
		for _, k := range sortedNames(rec) {
			if k == "time" || k == "level" || k == "msg" {
				continue
			}
			fmt.Fprintf(&b, " %s=%s", k, valueWords(rec[k], 2))
		}
		out = append(out, b.String())
	}
	return out
}

func (r *Registry) undeploy(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	// Unknown counts as used: revoking what was never granted does no
	// harm.
	kinds, known := r.deployedServices(ctx, c.enc.Name, c.args[0])
	if err := r.tentacles.Undeploy(ctx, c.enc.Name, c.args[0], c.prov); err != nil {
		return failed(explain("undeploy "+c.args[0], err))
	}
	kept := ""
	if r.cfg.Exoskeleton != nil && (!known || len(kinds) > 0) {
		// Its data stays with the enclave; its credentials go.
		if err := r.cfg.Exoskeleton.Revoke(ctx, c.enc.Name, c.args[0]); err != nil {
			r.log.Warn("service credentials of an undeployed tentacle not revoked", "enclave", c.enc.Name, "tentacle", c.args[0], "err", err)
		}
		kept = " What it stored in the enclave's services stays until the enclave is deprovisioned."
	}
	if _, ok := c.enc.TentacleModes[c.args[0]]; ok {
		if _, err := r.enclaves.SetMode(ctx, c.enc.Name, c.args[0], nil, c.prov); err != nil {
			r.log.Warn("tentacle mode not cleared after undeploy", "tentacle", c.args[0], "err", err)
		}
	}
	return Reply{Text: fmt.Sprintf("Tentacle %s was undeployed from enclave %s.%s", c.args[0], c.enc.Name, kept)}
}

// deployedServices lists the services the deployed revision of a
// tentacle has rooms on; ok is false when that can't be told (not
// deployed, files unreadable).
func (r *Registry) deployedServices(ctx context.Context, enc, name string) (kinds []enclave.Kind, ok bool) {
	if r.cfg.Exoskeleton == nil {
		return nil, true
	}
	files, err := r.tentacles.Files(ctx, enc, name, 0)
	if err != nil {
		return nil, false
	}
	b, err := tentacle.BundleFromFiles(files, nil)
	if err != nil {
		return nil, false
	}
	for _, k := range b.Workflow.Services() {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds, true
}

// revokeDropped takes back the rooms on services a tentacle's new
// revision no longer asks for; its data there stays.
func (r *Registry) revokeDropped(ctx context.Context, enc, name string, before []enclave.Kind, now map[string]enclave.Kind) {
	still := map[enclave.Kind]bool{}
	for _, k := range now {
		still[k] = true
	}
	var dropped []enclave.Kind
	for _, k := range before {
		if !still[k] {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) == 0 {
		return
	}
	if err := r.cfg.Exoskeleton.Revoke(ctx, enc, name, dropped...); err != nil {
		r.log.Warn("service credentials a tentacle no longer uses not revoked", "enclave", enc, "tentacle", name, "err", err)
	}
}

func (r *Registry) rollback(ctx context.Context, c *call) Reply {
	if !c.deployed {
		return notDeployed(c)
	}
	rev := 0
	if len(c.args) > 1 {
		v, err := strconv.Atoi(strings.TrimPrefix(strings.ToLower(c.args[1]), "r"))
		if err != nil || v < 1 {
			return private(failed("Name the revision by its number, like `/kraken rollback " + c.args[0] + " 2`."))
		}
		rev = v
	}
	got, err := r.tentacles.Rollback(ctx, c.enc.Name, c.args[0], rev, c.prov)
	if err != nil {
		return failed(explain("roll back "+c.args[0], err))
	}
	return Reply{Text: fmt.Sprintf("Tentacle %s now runs version %s again, as revision %d.%s", c.args[0], got.Version, got.Number, warningWords(got.Warnings))}
}

func warningWords(ws []string) string {
	if len(ws) == 0 {
		return ""
	}
	return "\nPlease note:\n• " + escape(strings.Join(ws, "\n• "))
}

// archiveExts are the file names deploy takes a bundle from.
var archiveExts = []string{".tar.gz", ".tgz", ".zip", ".tar"}

func isArchive(name string) bool {
	n := strings.ToLower(name)
	for _, e := range archiveExts {
		if strings.HasSuffix(n, e) {
			return true
		}
	}
	return false
}

// previewDeploy loads the bundle to deploy, checks the tentacle's own
// mode, and shows the picture and what changes, for the confirmation.
func (r *Registry) previewDeploy(ctx context.Context, c *call) (Reply, map[string][]byte, bool) {
	b, source, rep, ok := r.loadBundle(ctx, c)
	if !ok {
		return rep, nil, false
	}
	name := b.Workflow.Name
	c.audit["tentacle"] = name
	c.audit["source"] = source
	st, err := r.tentacles.Status(ctx, c.enc.Name, name)
	exists := err == nil
	if err != nil && !errors.Is(err, tentacle.ErrNotDeployed) {
		return failed(explain("look up tentacle "+name, err)), nil, false
	}
	if c.req.Admin == nil {
		d := enclave.Decide(c.req.Actor, enclave.AccessOf(c.enc), enclave.TentacleAccessOf(c.enc, name, st.DeployedBy), enclave.OpDeploy)
		if !d.Allowed {
			return private(failed(capitalize(d.Reason) + ".")), nil, false
		}
	}
	var prev map[string][]byte
	if exists {
		prev, err = r.tentacles.Files(ctx, c.enc.Name, name, 0)
		if err != nil && !errors.Is(err, tentacle.ErrNotDeployed) {
			return failed(explain("read the running revision of "+name, err)), nil, false
		}
	}
	changes, err := tentacle.Diff(prev, b.Files)
	if err != nil {
		return failed(explain("compare with the running revision", err)), nil, false
	}
	if exists && changes.Empty() {
		return Reply{Text: fmt.Sprintf("Tentacle %s is already running exactly this (revision %d). Nothing to deploy.", name, st.Revision)}, nil, false
	}
	text := fmt.Sprintf("Ready to deploy *%s* %s from %s into enclave %s.", name, escape(b.Workflow.Version), escape(source), c.enc.Name)
	if exists {
		text += fmt.Sprintf(" It replaces revision %d. What changes:", st.Revision)
	}
	text += "\n• " + escape(strings.Join(changes.Lines(), "\n• "))
	out := Reply{Text: text}
	if plan, err := engine.Compile(b.Workflow); err == nil {
		var png bytes.Buffer
		if err := diagram.PNG(&png, b.Workflow, plan.Stages, nil); err == nil {
			out.Image = &Image{Name: name + ".png", Title: name + " " + b.Workflow.Version, Alt: "The steps of " + name + " and how they connect", PNG: png.Bytes()}
		}
	}
	return out, b.Files, true
}

// loadBundle reads the tentacle a deploy names: an example, or a file
// shared in the channel (the newest archive when none is named).
func (r *Registry) loadBundle(ctx context.Context, c *call) (*tentacle.Bundle, string, Reply, bool) {
	if c.written != nil {
		b, err := tentacle.BundleFromFiles(c.written, nil)
		if err != nil {
			return nil, "", failed(explain("deploy the tentacle I wrote", err)), false
		}
		return b, "what I wrote", Reply{}, true
	}
	want := ""
	if len(c.args) > 0 {
		want = c.args[0]
	}
	if want != "" && r.cfg.Examples != nil {
		if sub, err := fs.Sub(r.cfg.Examples, want); err == nil {
			if _, err := fs.Stat(sub, tentacle.FileName); err == nil {
				b, err := bundleFromFS(sub)
				if err != nil {
					return nil, "", failed(explain("load example "+want, err)), false
				}
				return b, "the example " + want, Reply{}, true
			}
		}
	}
	var file *File
	for i := range c.req.Files {
		f := &c.req.Files[i]
		if (want == "" && isArchive(f.Name)) || (want != "" && f.Name == want) {
			file = f
			break
		}
	}
	if file == nil {
		msg := "Upload the tentacle's folder to this channel as a .tar.gz or .zip, then type `/kraken deploy`."
		if want != "" {
			msg = fmt.Sprintf("I found no example or uploaded file called %s. %s", escape(want), msg)
		}
		if ex := r.exampleNames(); len(ex) > 0 {
			msg += " Or deploy an example: " + strings.Join(ex, ", ") + "."
		}
		return nil, "", private(failed(msg)), false
	}
	if file.Open == nil {
		return nil, "", failed("I can't read " + escape(file.Name) + "."), false
	}
	rc, err := file.Open(ctx, tentacle.MaxBundleSize*2)
	if err != nil {
		r.log.Warn("shared file not read", "file", file.ID, "err", err)
		return nil, "", failed(fmt.Sprintf("I couldn't download %s. Make sure it was shared in this channel, then try again.", escape(file.Name))), false
	}
	defer rc.Close()
	b, err := tentacle.BundleFromArchive(file.Name, rc, nil)
	if err != nil {
		return nil, "", failed(explain("deploy "+escape(file.Name), err)), false
	}
	return b, file.Name, Reply{}, true
}

// exampleNames lists the examples one can deploy by name.
func (r *Registry) exampleNames() []string {
	if r.cfg.Examples == nil {
		return nil
	}
	entries, err := fs.ReadDir(r.cfg.Examples, ".")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if _, err := fs.Stat(r.cfg.Examples, path.Join(e.Name(), tentacle.FileName)); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// bundleFromFS reads a tentacle directory from an fs.FS; secrets never
// come from it.
func bundleFromFS(fsys fs.FS) (*tentacle.Bundle, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files[p] = data
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tentacle.BundleFromFiles(files, nil)
}

func (r *Registry) deploy(ctx context.Context, c *call) Reply {
	if c.pending == nil || len(c.pending.Files) == 0 {
		return failed("That deploy has nothing to deploy. Ask again with `/kraken deploy`.")
	}
	b, err := tentacle.BundleFromFiles(c.pending.Files, nil)
	if err != nil {
		return failed(explain("deploy", err))
	}
	name := b.Workflow.Name
	c.audit["tentacle"] = name
	// The tentacle's own mode may have changed since the preview.
	if c.req.Admin == nil {
		st, _ := r.tentacles.Status(ctx, c.enc.Name, name)
		d := enclave.Decide(c.req.Actor, enclave.AccessOf(c.enc), enclave.TentacleAccessOf(c.enc, name, st.DeployedBy), enclave.OpDeploy)
		if !d.Allowed {
			return private(failed(capitalize(d.Reason) + "."))
		}
	}
	// The rooms on the enclave's services come first: a deploy that
	// cannot have them is refused before anything changes.
	before, known := r.deployedServices(ctx, c.enc.Name, name)
	wants := b.Workflow.Services()
	if len(wants) > 0 {
		if b.Services, err = r.cfg.Exoskeleton.Grant(ctx, c.enc.Name, name, wants); err != nil {
			r.log.Warn("deploy failed: services not granted", "enclave", c.enc.Name, "tentacle", name, "err", err)
			return failed(explain("deploy "+name, err))
		}
	}
	rev, err := r.tentacles.Deploy(ctx, c.enc.Name, b, c.prov)
	if err != nil {
		r.log.Warn("deploy failed", "enclave", c.enc.Name, "tentacle", name, "err", err)
		return failed(explain("deploy "+name, err))
	}
	if known {
		r.revokeDropped(ctx, c.enc.Name, name, before, wants)
	}
	return Reply{Text: fmt.Sprintf("Deployed *%s* %s as revision %d. It starts in a moment; `/kraken status %s` shows how it is doing, `/kraken run %s` runs it.%s",
		name, rev.Version, rev.Number, name, name, warningWords(rev.Warnings))}
}
