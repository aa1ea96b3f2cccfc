package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/kraken-ops/kraken/k8s"
)

func runCluster(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("%w: the cluster command is `kraken cluster check`", errUsage)
	}
	fs := flag.NewFlagSet("cluster check", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "the kubeconfig to use (default $KUBECONFIG, then the in-cluster account)")
	runtimeClass := fs.String("runtime-class", "", "the RuntimeClass tentacles run with (default gvisor; none turns the sandbox off)")
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	rc, err := k8s.RestConfig(*kubeconfig, e.getenv)
	if err != nil {
		return err
	}
	c, err := k8s.New(k8s.Config{Rest: rc, RuntimeClass: *runtimeClass})
	if err != nil {
		return err
	}
	report := c.Check(ctx)
	fmt.Fprint(e.stdout, report.String())
	if !report.OK() {
		return exitError(1)
	}
	return nil
}
