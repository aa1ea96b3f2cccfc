package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
	"github.com/kraken-ops/kraken/tentacle/diagram"
)

func runTentacle(ctx context.Context, e env, verb string, args []string) error {
	switch verb {
	case "validate":
		return tentacleValidate(e, args)
	case "test":
		return tentacleTest(ctx, e, args)
	case "run":
		return tentacleRun(ctx, e, args)
	case "visualize":
		return tentacleVisualize(e, args)
	}
	return fmt.Errorf("%w: unknown tentacle command %q", errUsage, verb)
}

// oneDir parses flags and expects the tentacle directory (and at most
// extra more positional arguments).
func oneDir(fs *flag.FlagSet, args []string, extra int) (string, []string, error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return "", nil, err
	}
	if len(pos) == 0 || len(pos) > 1+extra {
		return "", nil, fmt.Errorf("%w: tentacle %s needs a tentacle directory", errUsage, fs.Name())
	}
	return pos[0], pos[1:], nil
}

// load loads a tentacle, printing every problem on its own line.
func load(e env, dir string) (*tentacle.Workflow, error) {
	wf, err := tentacle.Load(dir)
	var spec *tentacle.SpecError
	if errors.As(err, &spec) {
		for _, p := range spec.Problems {
			fmt.Fprintln(e.stderr, p)
		}
		fmt.Fprintf(e.stderr, "%d problem(s) found\n", len(spec.Problems))
		return nil, exitError(1)
	}
	return wf, err
}

// compile loads a tentacle and compiles its DAG.
func compile(e env, dir string) (*tentacle.Workflow, *engine.Plan, error) {
	wf, err := load(e, dir)
	if err != nil {
		return nil, nil, err
	}
	plan, err := engine.Compile(wf)
	return wf, plan, err
}

func tentacleValidate(e env, args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	dir, _, err := oneDir(fs, args, 0)
	if err != nil {
		return err
	}
	wf, _, err := compile(e, dir)
	if err != nil {
		return err
	}
	for _, w := range wf.Warnings {
		fmt.Fprintln(e.stderr, "warning:", w)
	}
	fmt.Fprintf(e.stdout, "%s %s is valid: %d nodes, %d edges, %d triggers\n",
		wf.Name, wf.Version, len(wf.NodeIDs), len(wf.Edges), len(wf.Triggers))
	return nil
}

func openLocal(ctx context.Context, e env, dir, denoFlag, secrets string, verbose bool) (*engine.Local, error) {
	wf, err := load(e, dir)
	if err != nil {
		return nil, err
	}
	bin, err := engine.FindDeno(denoFlag, e.getenv)
	if err != nil {
		return nil, err
	}
	return engine.OpenLocal(ctx, wf, engine.LocalOptions{Deno: bin, SecretsPath: secrets, Logger: e.logger(verbose)})
}

func tentacleRun(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	input := fs.String("input", "{}", "the run input as JSON")
	denoPath := fs.String("deno", "", "the Deno binary")
	secrets := fs.String("secrets", "", "the only secrets source to use")
	verbose := fs.Bool("v", false, "log debug messages")
	dir, _, err := oneDir(fs, args, 0)
	if err != nil {
		return err
	}
	if !json.Valid([]byte(*input)) {
		return fmt.Errorf("--input is not valid JSON: %s", *input)
	}
	local, err := openLocal(ctx, e, dir, *denoPath, *secrets, *verbose)
	if err != nil {
		return err
	}
	defer local.Close()
	res := local.Exec.Run(ctx, engine.NewRunID(), json.RawMessage(*input))
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Fprintln(e.stdout, string(out))
	if !res.Success {
		return exitError(1)
	}
	return nil
}

func tentacleTest(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	pipeline := fs.Bool("pipeline", false, "run the whole DAG against tests/fixtures/pipeline.json")
	denoPath := fs.String("deno", "", "the Deno binary")
	secrets := fs.String("secrets", "", "the only secrets source to use")
	verbose := fs.Bool("v", false, "log debug messages")
	dir, rest, err := oneDir(fs, args, 1)
	if err != nil {
		return err
	}
	local, err := openLocal(ctx, e, dir, *denoPath, *secrets, *verbose)
	if err != nil {
		return err
	}
	defer local.Close()
	var outcomes []engine.TestOutcome
	if *pipeline {
		outcomes, err = local.TestPipeline(ctx)
	} else {
		node := ""
		if len(rest) > 0 {
			node = rest[0]
		}
		outcomes, err = local.TestNodes(ctx, node)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, o := range outcomes {
		if o.Passed {
			fmt.Fprintf(e.stdout, "ok    %s (%s)\n", o.Name, o.Duration.Round(100_000))
			continue
		}
		failed++
		fmt.Fprintf(e.stdout, "FAIL  %s: %s\n", o.Name, o.Problem)
	}
	fmt.Fprintf(e.stdout, "%d passed, %d failed\n", len(outcomes)-failed, failed)
	if failed > 0 || len(outcomes) == 0 {
		if len(outcomes) == 0 {
			fmt.Fprintln(e.stderr, "no fixtures found: add tests/fixtures/<node>.json with {\"input\": ..., \"expected\": ...}")
		}
		return exitError(1)
	}
	return nil
}

func tentacleVisualize(e env, args []string) error {
	fs := flag.NewFlagSet("visualize", flag.ContinueOnError)
	png := fs.String("png", "", "write a PNG picture of the DAG to this file instead")
	dir, _, err := oneDir(fs, args, 0)
	if err != nil {
		return err
	}
	wf, plan, err := compile(e, dir)
	if err != nil {
		return err
	}
	if *png == "" {
		fmt.Fprint(e.stdout, diagram.Mermaid(wf, plan.Stages))
		return nil
	}
	f, err := os.Create(*png)
	if err != nil {
		return err
	}
	if err := diagram.PNG(f, wf, plan.Stages, nil); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s\n", *png)
	return nil
}
