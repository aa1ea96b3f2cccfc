// Command kraken is The Kraken: the chatops bot, the tentacle engine and
// the developer tools, in one binary. main only parses flags and wires
// packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `kraken: a Slack-first chatops bot with embedded orchestration

Usage:
  kraken serve                                  run the bot (settings from the environment; see deploy/README.md)
  kraken dev [--data DIR] [--examples DIR]      try the bot on this machine: this terminal is its Slack channel
  kraken engine --workflow DIR [--port 8080]    serve one tentacle (POST /run, GET /health)
  kraken tentacle validate DIR                  check a tentacle's workflow.yaml and files
  kraken tentacle test DIR [node] [--pipeline]  run a tentacle's fixtures
  kraken tentacle run DIR [--input JSON]        run a tentacle once and print the result
  kraken tentacle visualize DIR [--png FILE]    print the DAG as Mermaid, or draw it as a PNG
  kraken cluster check [--kubeconfig FILE]      check the cluster is ready for The Kraken
  kraken version                                print the version
`

// errUsage marks a command line we could not make sense of; main prints
// the usage for it.
var errUsage = errors.New("usage")

// exitError carries a non-zero exit status for a command that already
// said what went wrong.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	var code exitError
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "kraken:", err)
		os.Exit(1)
	}
}

// env is what commands read from the environment.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

func (e env) logger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	e := env{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, e, args[1:])
	case "dev":
		return runDev(ctx, e, os.Stdin, args[1:])
	case "engine":
		return runEngine(ctx, e, args[1:])
	case "tentacle":
		if len(args) < 2 {
			return errUsage
		}
		return runTentacle(ctx, e, args[1], args[2:])
	case "cluster":
		return runCluster(ctx, e, args[1:])
	case "version":
		fmt.Fprintln(stdout, "kraken", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// parseFlags parses flags that may come before or after positional
// arguments, as people type them.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %w", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
