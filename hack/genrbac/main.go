// Command genrbac writes the Helm chart's rbac.yaml from k8s.BotRBAC, so
// the chart grants exactly what the Go code (and its tests) say.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kraken-ops/kraken/k8s"
)

func main() {
	out := flag.String("o", "deploy/helm/kraken/templates/rbac.yaml", "the file to write")
	flag.Parse()
	b, err := k8s.ChartRBAC()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genrbac:", err)
		os.Exit(1)
	}
}
