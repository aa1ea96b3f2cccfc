package command

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/kraken-ops/kraken/bot/runs"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

// ended is how a run ended: its record and the engine's result.
type ended struct {
	rec  runs.Record
	body json.RawMessage
}

// streamRun tells a run's progress on later as its steps start and end,
// then its result, and closes later. later holds one reply (see
// putNewest), so streamRun never waits for the transport: one that reads
// slowly, or not at all, skips progress and never holds up the run.
func (r *Registry) streamRun(ctx context.Context, rec runs.Record, updates <-chan runs.Record, done <-chan ended, buttons []Button, later chan Reply) {
	defer close(later)
	var g *runGraph
	loaded := false
	for u := range updates { // nil when the run ended before it was followed
		if u.State != runs.Running || len(u.Nodes) == 0 {
			continue // the start is the first reply already; the end comes with its result
		}
		if !loaded {
			g, loaded = r.graphOf(ctx, rec), true
		}
		putNewest(later, Reply{Text: progressText(u, g), Buttons: buttons, Progress: true})
	}
	e := <-done
	putNewest(later, r.runResult(ctx, e.rec, e.body))
}

// putNewest puts rep in c, replacing a reply no one took. The caller
// must be c's only sender, so that the second send never blocks.
func putNewest(c chan Reply, rep Reply) {
	select {
	case c <- rep:
		return
	default:
	}
	select {
	case <-c:
	default:
	}
	c <- rep
}

// runGraph is a tentacle's workflow and its stages, read once a run.
type runGraph struct {
	wf     *tentacle.Workflow
	stages [][]string
}

// graphOf reads the deployed workflow of rec's tentacle, or nil when it
// can't be read: progress and the end are told without it.
func (r *Registry) graphOf(ctx context.Context, rec runs.Record) *runGraph {
	files, err := r.tentacles.Files(ctx, rec.Enclave, rec.Tentacle, 0)
	if err != nil {
		return nil
	}
	wf, err := tentacle.Parse(tentacle.FileName, files[tentacle.FileName])
	if err != nil {
		return nil
	}
	plan, err := engine.Compile(wf)
	if err != nil {
		return nil
	}
	return &runGraph{wf: wf, stages: plan.Stages}
}

// progressText says where a run is, in plain words: "Running *etl*… 2
// of 5 steps done: fetch ✓, parse ✓, notify …". Steps are in the order
// they run; those not started yet are left out.
func progressText(u runs.Record, g *runGraph) string {
	var order []string
	if g != nil {
		order = slices.Concat(g.stages...)
	}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range u.Nodes {
			if !slices.Contains(order, id) && !yield(id) {
				return
			}
		}
	}) {
		order = append(order, id) // steps the workflow read does not have
	}
	var succeeded, failedSteps int
	parts := make([]string, 0, len(u.Nodes))
	for _, id := range order {
		n, ok := u.Nodes[id]
		if !ok {
			continue
		}
		switch n.State {
		case runs.Succeeded:
			succeeded++
			parts = append(parts, escape(id)+" ✓")
		case runs.Failed:
			failedSteps++
			parts = append(parts, escape(id)+" ✗")
		default:
			p := escape(id) + " …"
			if n.Attempt > 1 {
				p += fmt.Sprintf(" (try %d)", n.Attempt)
			}
			parts = append(parts, p)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Running *%s*… %d", u.Tentacle, succeeded)
	if g != nil {
		fmt.Fprintf(&b, " of %d", len(g.wf.NodeIDs))
	}
	if g != nil && len(g.wf.NodeIDs) == 1 || g == nil && succeeded == 1 {
		b.WriteString(" step done")
	} else {
		b.WriteString(" steps done")
	}
	if failedSteps > 0 {
		fmt.Fprintf(&b, ", %d failed", failedSteps)
	}
	b.WriteString(": " + strings.Join(parts, ", "))
	return b.String()
}
