package engine

import (
	"encoding/json"
	"time"
)

// Result is what a run returns, in the exact shape the seeds' engine uses
// so tentacles and their callers stay compatible: nodes that did not run
// are absent from Outputs, Errors and NodeTimings.
type Result struct {
	Success bool                       `json:"success"`
	Outputs map[string]json.RawMessage `json:"outputs"`
	Errors  map[string]string          `json:"errors"`
	Timing  Timing                     `json:"timing"`
}

// Timing is in epoch milliseconds, as the seeds' engine reports it.
type Timing struct {
	StartedAt   int64                 `json:"startedAt"`
	CompletedAt int64                 `json:"completedAt"`
	DurationMs  int64                 `json:"durationMs"`
	NodeTimings map[string]NodeTiming `json:"nodeTimings"`
}

// NodeTiming covers all attempts of one node, retries included.
type NodeTiming struct {
	StartedAt   int64 `json:"startedAt"`
	CompletedAt int64 `json:"completedAt"`
	DurationMs  int64 `json:"durationMs"`
}

func newTiming(start, end time.Time) NodeTiming {
	return NodeTiming{
		StartedAt:   start.UnixMilli(),
		CompletedAt: end.UnixMilli(),
		DurationMs:  end.Sub(start).Milliseconds(),
	}
}
