package diagram

import (
	"os"
	"testing"

	"github.com/kraken-ops/kraken/tentacle"
)

// TestRenderExample writes a sample picture for a human to look at:
//
//	DIAGRAM_OUT=/tmp/diagram-example.png go test -run RenderExample ./tentacle/diagram
func TestRenderExample(t *testing.T) {
	out := os.Getenv("DIAGRAM_OUT")
	if out == "" {
		t.Skip("DIAGRAM_OUT not set")
	}
	wf, stages := sampleWorkflow()
	status := map[string]Status{
		"greet": Succeeded, "shout": Succeeded, "count": Failed,
		"reverse": Running, "merge": Skipped, "archive-the-very-long-named-step-output": Pending,
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := PNG(f, wf, stages, status); err != nil {
		t.Fatal(err)
	}
}

func sampleWorkflow() (*tentacle.Workflow, [][]string) {
	wf := newWorkflow("hello-fanout", "1.0",
		[]string{"greet", "shout", "count", "reverse", "merge", "archive-the-very-long-named-step-output", "notify"},
		"greet>shout", "greet>count", "greet>reverse",
		"shout>merge", "count>merge", "reverse>merge",
		"merge>archive-the-very-long-named-step-output", "greet>notify")
	return wf, nil
}

func TestRenderBig(t *testing.T) {
	out := os.Getenv("DIAGRAM_OUT_BIG")
	if out == "" {
		t.Skip("DIAGRAM_OUT_BIG not set")
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := PNG(f, bigWorkflow(100), nil, nil); err != nil {
		t.Fatal(err)
	}
}
