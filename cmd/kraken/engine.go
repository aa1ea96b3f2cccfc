package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/kraken-ops/kraken/engine"
)

func runEngine(ctx context.Context, e env, args []string) error {
	fs := flag.NewFlagSet("engine", flag.ContinueOnError)
	dir := fs.String("workflow", "", "the tentacle directory (holds workflow.yaml)")
	port := fs.Int("port", 8080, "the port to serve on")
	addr := fs.String("addr", "", "the address to listen on (default all interfaces)")
	denoPath := fs.String("deno", "", "the Deno binary (default $KRAKEN_DENO, the pinned install, PATH)")
	secrets := fs.String("secrets", "", "the only secrets source to use, a YAML file or a directory")
	mounted := fs.String("mounted-secrets", "/app/secrets", "where the cluster mounts the tentacle's secrets")
	services := fs.String("services", engine.DefaultServicesPath, "where the cluster mounts the rooms granted on the enclave's services")
	grace := fs.Duration("grace", 30*time.Second, "how long runs in flight may take to finish on SIGTERM")
	memory := fs.Int("memory", 512, "the node runtime's heap limit in MB")
	verbose := fs.Bool("v", false, "log debug messages")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: engine needs --workflow DIR", errUsage)
	}
	log := e.logger(*verbose)
	wf, err := load(e, *dir)
	if err != nil {
		return err
	}
	bin, err := engine.FindDeno(*denoPath, e.getenv)
	if err != nil {
		return err
	}
	local, err := engine.OpenLocal(ctx, wf, engine.LocalOptions{
		Deno: bin, SecretsPath: *secrets, MountedSecrets: *mounted, ServicesPath: *services, MemoryMB: *memory, Logger: log,
	})
	if err != nil {
		return err
	}
	defer local.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort(*addr, fmt.Sprint(*port)))
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	log.Info("serving tentacle", "tentacle", local.Workflow.Name, "version", local.Workflow.Version, "addr", ln.Addr().String())
	srv := engine.NewServer(local.Exec, log, local.Worker.LoadErrors)
	return srv.Serve(ctx, ln, *grace)
}
