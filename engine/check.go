package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

// CheckOptions configures Check.
type CheckOptions struct {
	// Deno is the Deno binary; "" means FindDeno's choice.
	Deno string
	// Timeout bounds the whole check; zero means 60 seconds.
	Timeout time.Duration
	Logger  *slog.Logger
}

// CheckReport is what Check found. Problems are self-contained lines, meant
// to be handed back as they are to whoever wrote the tentacle.
type CheckReport struct {
	// OK means the tentacle validates, has fixtures, and all of them pass.
	OK       bool
	Problems []string
	Fixtures int // how many fixtures ran
	Passed   int
}

const (
	defaultCheckTimeout = 60 * time.Second
	// checkNodeTimeout caps one node run: a fixture is a unit test, and a
	// workflow's production timeout (up to minutes) would let one stuck
	// node eat the whole check.
	checkNodeTimeout = 10 * time.Second
)

// Check validates files (paths relative to the tentacle directory, as
// tentacle.BundleFromFiles takes them) as a tentacle bundle and runs its
// fixtures, every tests/fixtures/<node>.json and tests/fixtures/pipeline.json
// if present, in a scratch directory with the production Deno sandbox, except
// that the network is closed: a check must not reach any service, not even
// the contract's. Each node run gets the workflow's timeout but at most 10
// seconds, and no retries.
//
// A tentacle without any fixture does not pass: the conversation loop should
// only ever propose tested tentacles, so "no fixtures" is a problem like any
// other.
//
// The error is for the check itself failing (no Deno, ctx done, the scratch
// directory not writable); everything wrong with the tentacle, including
// running out of opts.Timeout, is in the report.
func Check(ctx context.Context, files map[string][]byte, opts CheckOptions) (CheckReport, error) {
	if err := ctx.Err(); err != nil {
		return CheckReport{}, fmt.Errorf("check: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultCheckTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	bin, err := FindDeno(opts.Deno, os.Getenv)
	if err != nil {
		return CheckReport{}, fmt.Errorf("check: %w", err)
	}
	var r CheckReport
	// Paths and sizes are checked before anything is written, so "../x"
	// or a gigabyte never touches the disk.
	if p := unwritable(files); len(p) > 0 {
		r.Problems = p
		return r, nil
	}
	root, err := os.MkdirTemp("", "kraken-check-")
	if err != nil {
		return CheckReport{}, fmt.Errorf("check: %w", err)
	}
	defer os.RemoveAll(root)
	// Deno is given resolved paths; messages are cleaned of them below.
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return CheckReport{}, fmt.Errorf("check: %w", err)
	}
	c := &checker{opts: opts, bin: bin, files: files, root: root, dir: filepath.Join(root, "tentacle")}
	c.clean = strings.NewReplacer("file://"+c.dir+"/", "", c.dir+"/", "", root+"/", "")
	if err := c.write(); err != nil {
		return CheckReport{}, fmt.Errorf("check: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := c.run(cctx); err != nil {
		return CheckReport{}, fmt.Errorf("check: %w", err)
	}
	if ctx.Err() != nil {
		return CheckReport{}, fmt.Errorf("check: %w", ctx.Err())
	}
	if cctx.Err() != nil {
		c.problem("the check ran out of time after %s; make the nodes and fixtures faster (a fixture should take well under a second)", opts.Timeout)
	}
	c.report.OK = len(c.report.Problems) == 0
	return c.report, nil
}

// checker is one run of Check.
type checker struct {
	opts   CheckOptions
	bin    string
	files  map[string][]byte
	root   string // the scratch directory, removed afterwards
	dir    string // the tentacle, under root
	clean  *strings.Replacer
	report CheckReport
}

func (c *checker) problem(format string, args ...any) {
	c.report.Problems = append(c.report.Problems, oneLine(c.clean.Replace(fmt.Sprintf(format, args...))))
}

// oneLine keeps a problem on one line. Deno follows a syntax error with a
// code frame and its location; the first line and the location say it all.
func oneLine(msg string) string {
	first, rest, ok := strings.Cut(msg, "\n")
	if !ok {
		return msg
	}
	for _, l := range strings.Split(rest, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "at ") {
			return first + " (" + l + ")"
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}

// unwritable refuses what the bundle refuses before it is written out:
// paths that could land outside the scratch directory, too many or too
// large files, and a path that another path uses as its directory.
func unwritable(files map[string][]byte) []string {
	b := &tentacle.Bundle{Files: files}
	if err := cmp.Or(b.CheckPaths(), b.CheckSize()); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, p := range slices.Sorted(maps.Keys(files)) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := files[d]; ok {
				out = append(out, fmt.Sprintf("%s: %s is a file, so it cannot also be a directory", p, d))
				break
			}
		}
	}
	return out
}

func (c *checker) write() error {
	for p, data := range c.files {
		full := filepath.Join(c.dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(full, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// run fills the report; its error is for the check failing, not the
// tentacle.
func (c *checker) run(ctx context.Context) error {
	wf, ok := c.validate()
	if !ok {
		return nil
	}
	fixtures, pipeline := c.loadFixtures(wf)
	local, err := c.open(ctx, wf)
	if err != nil || local == nil {
		return err
	}
	defer local.Close()
	loadErrors := local.Worker.LoadErrors()
	for _, node := range slices.Sorted(maps.Keys(loadErrors)) {
		// The harness's message starts with the node id.
		c.problem("node %s", loadErrors[node])
	}
	if fixtures {
		outcomes, err := local.TestNodes(ctx, "")
		if err != nil {
			c.problem("%v", err)
		}
		c.record(wf, loadErrors, outcomes)
	}
	if pipeline && ctx.Err() == nil {
		outcomes, err := local.TestPipeline(ctx)
		if err != nil {
			c.problem("%v", err)
		}
		c.record(wf, loadErrors, outcomes)
	}
	return nil
}

// validate loads the tentacle from the scratch copy, so problems carry
// line numbers (a missing node file too), then applies the bundle's own
// limits. Nothing runs unless the workflow loads.
func (c *checker) validate() (*tentacle.Workflow, bool) {
	wf, err := tentacle.Load(c.dir)
	var spec *tentacle.SpecError
	switch {
	case errors.As(err, &spec):
		for _, p := range spec.Problems {
			p.File = c.clean.Replace(p.File)
			c.problem("%s", p)
		}
		return nil, false
	case errors.Is(err, fs.ErrNotExist):
		c.problem("%s is missing: every tentacle needs one at the top", tentacle.FileName)
		return nil, false
	case err != nil:
		c.problem("%v", err)
		return nil, false
	}
	if _, err := tentacle.BundleFromFiles(c.files, nil); err != nil {
		c.problem("%v", err)
	}
	return wf, true
}

// loadFixtures reports fixtures that are malformed or name no node, and
// removes the malformed ones from the scratch copy so that they do not stop
// TestNodes from running the others. It says whether there are node
// fixtures and a pipeline fixture to run.
func (c *checker) loadFixtures(wf *tentacle.Workflow) (nodes, pipeline bool) {
	fixtures, err := tentacle.LoadFixtures(c.dir)
	for _, e := range unjoin(err) {
		c.problem("%v", e)
	}
	good := map[string]bool{}
	for _, f := range fixtures {
		good[f.File] = true
	}
	found := false
	for _, p := range slices.Sorted(maps.Keys(c.files)) {
		name, ok := strings.CutPrefix(p, tentacle.FixtureDir+"/")
		if !ok || path.Ext(name) != ".json" || strings.Contains(name, "/") {
			continue
		}
		found = true
		full := filepath.Join(c.dir, filepath.FromSlash(p))
		if name != tentacle.PipelineFixtureFile && !good[full] {
			_ = os.Remove(full)
		}
	}
	if !found {
		c.problem("no fixtures: add %s/<node>.json, {\"input\": ..., \"expected\": ...}, for each node; the check runs them without network", tentacle.FixtureDir)
	}
	for _, p := range tentacle.CheckFixtures(wf, fixtures) {
		p.File = c.clean.Replace(p.File)
		c.problem("%s", p)
	}
	if _, ok := c.files[tentacle.FixtureDir+"/"+tentacle.PipelineFixtureFile]; ok {
		if _, err := tentacle.LoadPipelineFixture(c.dir); err != nil {
			c.problem("%v", err)
		} else {
			pipeline = true
		}
	}
	return len(fixtures) > 0, pipeline
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// open starts the worker the way OpenLocal does, but without secrets (a
// check never sees them; ctx.secrets is empty) and without network, with
// short node timeouts and no retries. A nil Local
// and nil error mean the tentacle's worker would not start, which is
// reported.
func (c *checker) open(ctx context.Context, wf *tentacle.Workflow) (*Local, error) {
	// The sandbox is production's, minus the contract's hosts. The
	// contract itself stays, so ctx.dependency() answers as in production
	// and a call fails only when it would go out.
	w, err := NewDeno(DenoConfig{Binary: c.bin, Workflow: wf, WorkDir: filepath.Join(c.root, "worker"), Logger: c.opts.Logger, NoNetwork: true})
	if err != nil {
		return nil, err
	}
	ex, err := NewExecutor(wf, w)
	if err != nil {
		w.Close()
		c.problem("%v", err)
		return nil, nil
	}
	ex.Timeout = min(ex.Timeout, checkNodeTimeout)
	// A retry hides nothing a fixture should show and doubles the time.
	ex.Retries = 0
	if err := w.Start(ctx); err != nil {
		w.Close()
		switch {
		case ctx.Err() != nil:
			return nil, nil // Check reports the cancellation or the time limit
		case startFailed(err):
			return nil, err // Deno itself does not run: not the tentacle's fault
		}
		c.problem("the nodes did not start: %v", err)
		return nil, nil
	}
	return &Local{Workflow: wf, Worker: w, Exec: ex}, nil
}

// startFailed reports whether the Deno binary could not be executed.
func startFailed(err error) bool {
	var pe *fs.PathError
	var ee *exec.Error
	return errors.As(err, &pe) || errors.As(err, &ee)
}

// record turns outcomes into the report. Fixtures for unknown nodes were
// reported by CheckFixtures and did not run, so they are left out. A node
// that does not load was reported already, so the failures it causes (its
// fixture's, the pipeline's) only count.
func (c *checker) record(wf *tentacle.Workflow, loadErrors map[string]string, outcomes []TestOutcome) {
	for _, o := range outcomes {
		_, node := wf.Nodes[o.Name]
		if !node && o.Name != "pipeline" {
			continue
		}
		c.report.Fixtures++
		_, unloaded := loadErrors[o.Name]
		switch {
		case o.Passed:
			c.report.Passed++
		case unloaded, !node && len(loadErrors) > 0:
		default:
			c.problem("%s", offline(wf, describeOutcome(o)))
		}
	}
}

// describeOutcome says what a failed fixture means in one line.
func describeOutcome(o TestOutcome) string {
	if o.Name == "pipeline" {
		return "pipeline fixture (" + tentacle.FixtureDir + "/" + tentacle.PipelineFixtureFile + "): " + o.Problem
	}
	if msg, failed := strings.CutPrefix(o.Problem, "the node failed: "); failed {
		return fmt.Sprintf("node %s failed: %s", o.Name, msg)
	}
	return fmt.Sprintf("node %s: fixture %s", o.Name, o.Problem)
}

// refusedNet matches the harness's words for a connection Deno refused.
var refusedNet = regexp.MustCompile(`tried to reach (\S+?), which the tentacle's contract does not declare; add it to contract\.dependencies`)

// offline rewrites the harness's advice about a refused connection: in
// production it is right, but the check refuses every connection, and
// telling the author to declare a host the contract already has would
// send them in circles.
func offline(wf *tentacle.Workflow, msg string) string {
	allowed, _ := NetAllowList(wf, nil)
	return refusedNet.ReplaceAllStringFunc(msg, func(m string) string {
		host := refusedNet.FindStringSubmatch(m)[1]
		advice := "fixtures run with no network at all, so give a fixture only to what works offline"
		if !slices.Contains(allowed, host) {
			advice = "the contract does not declare it (add it to contract.dependencies), and " + advice
		}
		return "tried to reach " + host + ": " + advice
	})
}
