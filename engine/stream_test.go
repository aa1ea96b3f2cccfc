package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/tentacle"
)

func streamRequest(t *testing.T, url, accept, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/run", strings.NewReader(body))
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestServerStreamsNodeEventsAsTheyHappen proves each line is flushed
// when its event happens: node b does not finish until the test has read
// a's success off the wire.
func TestServerStreamsNodeEventsAsTheyHappen(t *testing.T) {
	aSeen := make(chan struct{})
	var aTries atomic.Int32
	e := mustExec(t, graph("a->b"), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		switch c.Node {
		case "a":
			if aTries.Add(1) == 1 {
				return nil, &NodeError{Kind: KindThrow, Msg: "flaky"}
			}
			return json.RawMessage(`{"n":1}`), nil
		default:
			select {
			case <-aSeen:
				return json.RawMessage(`"done"`), nil
			case <-time.After(10 * time.Second):
				return nil, &NodeError{Kind: KindThrow, Msg: "a's success was not streamed before b ended"}
			}
		}
	})
	e.Retries = 1
	srv := httptest.NewServer(NewServer(e, nil, nil).Handler())
	t.Cleanup(srv.Close)

	resp := streamRequest(t, srv.URL, "application/json, "+StreamType, `{"x":1}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != StreamType {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got []string
	var result map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if l["event"] == "result" {
			result = l
			break
		}
		s := l["node"].(string) + " " + l["state"].(string) + " " + jsonString(l["attempt"])
		if e, ok := l["error"]; ok {
			s += " " + e.(string)
		}
		if _, ok := l["durationMs"]; !ok {
			t.Errorf("line %q has no durationMs", sc.Text())
		}
		got = append(got, s)
		if s == "a succeeded 2" {
			close(aSeen)
		}
	}
	want := []string{"a started 1", "a retrying 1 flaky", "a started 2", "a succeeded 2", "b started 1", "b succeeded 1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("node lines:\n got %q\nwant %q", got, want)
	}
	if result == nil || result["success"] != true || result["outputs"].(map[string]any)["b"] != "done" || result["timing"] == nil {
		t.Fatalf("result line: %v", result)
	}
	if sc.Scan() {
		t.Errorf("a line after the result: %q", sc.Text())
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestServerAnswersPlainUnlessAskedToStream keeps the seeds' wire format
// for every caller that does not ask for the stream.
func TestServerAnswersPlainUnlessAskedToStream(t *testing.T) {
	srv := newTestServer(t, func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		if strings.Contains(string(c.Input), "fail") {
			return nil, &NodeError{Kind: KindThrow, Msg: "asked to fail"}
		}
		return c.Input, nil
	})
	tests := []struct {
		accept, body string
		stream       bool
		status       int
	}{
		{"", `{}`, false, 200},
		{"application/json", `{}`, false, 200},
		{"*/*", `{}`, false, 200},
		{"application/json", `"fail"`, false, 500},
		{StreamType, `{}`, true, 200},
		{StreamType, `"fail"`, true, 200}, // the result line says it failed
		{"text/html, application/x-ndjson; q=0.5", `{}`, true, 200},
		{"application/x-ndjson;q=0", `{}`, false, 200},
		{"APPLICATION/X-NDJSON", `{}`, true, 200},
		{"application/x-ndjsonx", `{}`, false, 200},
	}
	for _, tt := range tests {
		t.Run(tt.accept+" "+tt.body, func(t *testing.T) {
			resp := streamRequest(t, srv.URL, tt.accept, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			ct := resp.Header.Get("Content-Type")
			if (ct == StreamType) != tt.stream {
				t.Fatalf("content type %q, stream %v", ct, tt.stream)
			}
			var res Result
			if tt.stream {
				raw, err := ReadStream(resp.Body, 1<<20, nil)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(raw), `"event"`) {
					t.Errorf("the result keeps the event field: %s", raw)
				}
				if err := json.Unmarshal(raw, &res); err != nil {
					t.Fatal(err)
				}
			} else if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
				t.Fatal(err)
			}
			if wantOK := !strings.Contains(tt.body, "fail"); res.Success != wantOK || res.Timing.StartedAt == 0 {
				t.Errorf("result %+v, want success %v", res, wantOK)
			}
			if !res.Success && res.Errors["a"] != "asked to fail" {
				t.Errorf("errors %v", res.Errors)
			}
		})
	}
	// A refused input is refused the same way either way, before any
	// streaming starts.
	resp := streamRequest(t, srv.URL, StreamType, `"`+strings.Repeat("x", maxInput)+`"`)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("too large input: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestServerStreamCallerHangingUpCancelsTheRun: the caller is the only
// one waiting, as with the plain answer.
func TestServerStreamCallerHangingUpCancelsTheRun(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	e := mustExec(t, graph("slow"), func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	})
	srv := httptest.NewServer(NewServer(e, nil, nil).Handler())
	t.Cleanup(srv.Close)
	ctx, hangUp := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/run", nil)
	req.Header.Set("Accept", StreamType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	hangUp()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the run went on after its caller hung up")
	}
}

func TestReadStream(t *testing.T) {
	result := `{"event":"result","success":true,"outputs":{"a":1},"errors":{},"timing":{"durationMs":3}}`
	tests := []struct {
		name, in string
		limit    int64
		progress []tentacle.NodeProgress
		result   string
		err      error
		errText  string
	}{
		{name: "nodes then result", limit: 1 << 10,
			in: `{"event":"node","node":"a","state":"started","attempt":1,"durationMs":0}` + "\n" +
				`{"event":"node","node":"a","state":"failed","attempt":2,"durationMs":12,"error":"boom"}` + "\n" + result + "\n",
			progress: []tentacle.NodeProgress{{Node: "a", State: tentacle.NodeStarted, Attempt: 1}, {Node: "a", State: tentacle.NodeFailed, Attempt: 2, Duration: 12 * time.Millisecond, Error: "boom"}},
			result:   `{"errors":{},"outputs":{"a":1},"success":true,"timing":{"durationMs":3}}`},
		{name: "unknown events and blank lines are skipped", limit: 1 << 10,
			in:     "\n" + `{"event":"log","line":"hi"}` + "\n\n" + result,
			result: `{"errors":{},"outputs":{"a":1},"success":true,"timing":{"durationMs":3}}`},
		{name: "cut before the result", limit: 1 << 10,
			in: `{"event":"node","node":"a","state":"started","attempt":1,"durationMs":0}` + "\n", err: ErrNoResult,
			progress: []tentacle.NodeProgress{{Node: "a", State: tentacle.NodeStarted, Attempt: 1}}},
		{name: "empty", limit: 1 << 10, in: "", err: ErrNoResult},
		{name: "too large", limit: 40, in: result + "\n", err: ErrAnswerTooLarge},
		{name: "too large across lines", limit: 100,
			in: strings.Repeat(`{"event":"node","node":"a","state":"started","attempt":1}`+"\n", 3) + result, err: ErrAnswerTooLarge},
		{name: "not JSON", limit: 1 << 10, in: "<html>oops</html>\n", err: ErrNotAStream, errText: `not JSON: "<html>oops</html>"`},
		{name: "a result that is not an object", limit: 1 << 10, in: `{"event":"result"` + "\n", err: ErrNotAStream},
		{name: "a node line that is not one", limit: 1 << 10, in: `{"event":"node","attempt":"one"}` + "\n", err: ErrNotAStream, errText: "node line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []tentacle.NodeProgress
			raw, err := ReadStream(strings.NewReader(tt.in), tt.limit, func(p tentacle.NodeProgress) { got = append(got, p) })
			switch {
			case tt.err != nil || tt.errText != "":
				if tt.err != nil && !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err = %v, want %q", err, tt.errText)
				}
			case err != nil:
				t.Fatal(err)
			case string(raw) != tt.result:
				t.Errorf("result %s, want %s", raw, tt.result)
			}
			if !reflect.DeepEqual(got, tt.progress) {
				t.Errorf("progress %+v, want %+v", got, tt.progress)
			}
		})
	}
	// A reader that fails is not a cut stream, even in the middle of a
	// line.
	_, err := ReadStream(io.MultiReader(strings.NewReader(`{"event":"node"}`+"\n"+`{"event":"res`), failingReader{}), 1<<10, nil)
	if err == nil || errors.Is(err, ErrNoResult) || errors.Is(err, ErrNotAStream) || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("a failing reader: %v", err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// BenchmarkRunAnswer: what streaming a run's node events costs over the
// plain answer, for a fan-out of 5 nodes run in process, over loopback
// HTTP, read back as k8s reads it.
func BenchmarkRunAnswer(b *testing.B) {
	e, err := NewExecutor(graph("a->b", "a->c", "a->d", "b->e", "c->e", "d->e"), RunnerFunc(func(ctx context.Context, c NodeCall) (json.RawMessage, error) {
		return json.RawMessage(`{"ok":true}`), nil
	}))
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(e, nil, nil).Handler())
	defer srv.Close()
	for _, accept := range []string{"application/json", StreamType} {
		b.Run(accept, func(b *testing.B) {
			events := 0
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/run", strings.NewReader(`{}`))
				req.Header.Set("Accept", accept)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				if accept == StreamType {
					_, err = ReadStream(resp.Body, 1<<20, func(tentacle.NodeProgress) { events++ })
				} else {
					_, err = io.ReadAll(resp.Body)
				}
				resp.Body.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
		})
	}
}
