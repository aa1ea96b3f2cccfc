package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

// StreamType is the media type a caller of POST /run accepts to follow
// the run as it goes: one JSON object a line, a "node" line per node
// event, then one "result" line holding the result exactly as the plain
// answer would have. Any other Accept gets the plain answer, the seeds'
// wire format.
const StreamType = "application/x-ndjson"

// Errors a reader of a streamed answer branches on.
var (
	// ErrNoResult: the stream ended before its result line, e.g. the
	// connection was cut or the engine died.
	ErrNoResult = errors.New("the run's answer ended before its result")
	// ErrAnswerTooLarge: the stream is longer than the reader allows.
	ErrAnswerTooLarge = errors.New("the run's answer is too large")
	// ErrNotAStream: a line of the stream is not one the engine writes.
	ErrNotAStream = errors.New("the run's answer is not a stream of run events")
)

// nodeLine is a node event on the wire. durationMs is the attempt's,
// zero when it started; error is set when an attempt failed.
type nodeLine struct {
	Event      string `json:"event"` // "node"
	Node       string `json:"node"`
	State      string `json:"state"`
	Attempt    int    `json:"attempt"`
	DurationMs int64  `json:"durationMs"`
	Error      string `json:"error,omitempty"`
}

// AcceptsStream reports whether a request to POST /run asks for the
// streamed answer.
func AcceptsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || mt != StreamType {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
				continue // q=0 refuses it
			}
			return true
		}
	}
	return false
}

// appendNodeLine writes ev as a line.
func appendNodeLine(buf []byte, ev Event) []byte {
	l := nodeLine{Event: "node", Node: ev.Node, State: string(ev.State), Attempt: ev.Attempt, DurationMs: ev.Duration.Milliseconds()}
	if ev.Err != nil {
		l.Error = ev.Err.Error()
	}
	b, _ := json.Marshal(l) // strings and numbers only
	return append(append(buf, b...), '\n')
}

// resultLine is the result as the plain answer writes it, with
// "event":"result" first.
func resultLine(res *Result) ([]byte, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	// A Result always marshals to a non-empty object: {"success":...}.
	return append(append([]byte(`{"event":"result",`), b[1:]...), '\n'), nil
}

// ReadStream reads a streamed answer of POST /run of at most limit
// bytes: it calls progress for each node line as it arrives and returns
// the result as the plain answer would have held it (without "event").
// Lines of other events are skipped, so that the engine may add some.
// ErrNoResult when the stream ends first, ErrAnswerTooLarge past limit,
// ErrNotAStream for a line the engine would not write; an error reading
// r is returned wrapped.
func ReadStream(r io.Reader, limit int64, progress func(tentacle.NodeProgress)) (json.RawMessage, error) {
	lr := &io.LimitedReader{R: r, N: limit + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 0, 4096), int(min(limit+1, 1<<30)))
	for sc.Scan() {
		if lr.N <= 0 || sc.Err() != nil {
			// The line may be one cut at the limit, or by a read that
			// failed: not to be read.
			break
		}
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var head struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return nil, fmt.Errorf("%w: a line is not JSON: %q", ErrNotAStream, excerpt(line))
		}
		switch head.Event {
		case "node":
			var l nodeLine
			if err := json.Unmarshal(line, &l); err != nil {
				return nil, fmt.Errorf("%w: a node line cannot be read: %q", ErrNotAStream, excerpt(line))
			}
			if progress != nil {
				progress(tentacle.NodeProgress{Node: l.Node, State: tentacle.NodeState(l.State), Attempt: l.Attempt,
					Duration: time.Duration(l.DurationMs) * time.Millisecond, Error: l.Error})
			}
		case "result":
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(line, &fields); err != nil {
				return nil, fmt.Errorf("%w: the result is not an object: %q", ErrNotAStream, excerpt(line))
			}
			delete(fields, "event")
			return json.Marshal(fields)
		}
	}
	switch err := sc.Err(); {
	case lr.N <= 0 || errors.Is(err, bufio.ErrTooLong):
		return nil, fmt.Errorf("%w: more than %d bytes", ErrAnswerTooLarge, limit)
	case err != nil:
		return nil, fmt.Errorf("read the run's answer: %w", err)
	}
	return nil, ErrNoResult
}

func excerpt(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
