package metrics_test

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/metrics"
)

func render(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	var b strings.Builder
	n, err := r.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Errorf("WriteTo reported %d bytes, wrote %d", n, b.Len())
	}
	return b.String()
}

func TestExpositionGolden(t *testing.T) {
	r := metrics.NewRegistry()
	cmds := r.Counter("kraken_commands_total", "Commands handled, by verb and outcome.", "verb", "outcome")
	// Created out of order: the output is sorted by label values.
	cmds.With("status", "ok").Inc()
	cmds.With("deploy", "ok").Add(3)
	cmds.With("deploy", "denied").Inc()
	cmds.With("deploy", "error") // exposed at zero before its first event

	r.Counter("kraken_unused_total", "Never used; not exposed.", "verb")

	up := r.Gauge("kraken_leader", "1 while this replica holds the lease.")
	up.With().Set(1)
	conns := r.Gauge("kraken_socket_connections", `Open Socket Mode connections (see "slack\apps").`, "app")
	conns.With("main").Inc()
	conns.With("main").Inc()
	conns.With("main").Dec()

	ack := r.Histogram("kraken_ack_seconds", "Time to acknowledge a Slack request.", []float64{0.01, 0.1, 1}, "transport")
	for _, v := range []float64{0.004, 0.01, 0.05, 0.5, 7} {
		ack.With("http").Observe(v)
	}
	ack.With("socket").ObserveDuration(20 * time.Millisecond)

	r.GaugeFunc("kraken_build_info_seconds", "Help with a newline\nand a backslash \\.", func() float64 { return 1.5e9 })

	want := `# HELP kraken_ack_seconds Time to acknowledge a Slack request.
# TYPE kraken_ack_seconds histogram
kraken_ack_seconds_bucket{transport="http",le="0.01"} 2
kraken_ack_seconds_bucket{transport="http",le="0.1"} 3
kraken_ack_seconds_bucket{transport="http",le="1"} 4
kraken_ack_seconds_bucket{transport="http",le="+Inf"} 5
kraken_ack_seconds_sum{transport="http"} 7.564
kraken_ack_seconds_count{transport="http"} 5
kraken_ack_seconds_bucket{transport="socket",le="0.01"} 0
kraken_ack_seconds_bucket{transport="socket",le="0.1"} 1
kraken_ack_seconds_bucket{transport="socket",le="1"} 1
kraken_ack_seconds_bucket{transport="socket",le="+Inf"} 1
kraken_ack_seconds_sum{transport="socket"} 0.02
kraken_ack_seconds_count{transport="socket"} 1
# HELP kraken_build_info_seconds Help with a newline\nand a backslash \\.
# TYPE kraken_build_info_seconds gauge
kraken_build_info_seconds 1.5e+09
# HELP kraken_commands_total Commands handled, by verb and outcome.
# TYPE kraken_commands_total counter
kraken_commands_total{verb="deploy",outcome="denied"} 1
kraken_commands_total{verb="deploy",outcome="error"} 0
kraken_commands_total{verb="deploy",outcome="ok"} 3
kraken_commands_total{verb="status",outcome="ok"} 1
# HELP kraken_leader 1 while this replica holds the lease.
# TYPE kraken_leader gauge
kraken_leader 1
# HELP kraken_socket_connections Open Socket Mode connections (see "slack\\apps").
# TYPE kraken_socket_connections gauge
kraken_socket_connections{app="main"} 1
`
	if got := render(t, r); got != want {
		t.Errorf("exposition mismatch\n--- got\n%s--- want\n%s", got, want)
	}
}

func TestLabelEscaping(t *testing.T) {
	tests := []struct {
		name, value, want string
	}{
		{"plain", "deploy", `deploy`},
		{"double quote", `say "hi"`, `say \"hi\"`},
		{"newline", "two\nlines", `two\nlines`},
		{"backslash", `C:\kraken`, `C:\\kraken`},
		{"all three", "\\\"\n", `\\\"\n`},
		{"escaped-looking text", `\n`, `\\n`},
		{"unicode", "pieuvre 🐙", "pieuvre 🐙"},
		{"invalid UTF-8", "bad\xffbyte", "bad\uFFFDbyte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := metrics.NewRegistry()
			r.Counter("c_total", "h", "v").With(tt.value).Inc()
			want := `c_total{v="` + tt.want + `"} 1`
			if got := render(t, r); !strings.Contains(got, want+"\n") {
				t.Errorf("got\n%s\nwant a line %s", got, want)
			}
		})
	}
}

func TestValues(t *testing.T) {
	r := metrics.NewRegistry()

	c := r.Counter("c_total", "h").With()
	c.Inc()
	c.Add(2)
	c.Add(0.5)
	c.Add(-10)        // counters do not go down
	c.Add(math.NaN()) // nor become NaN
	if got := c.Value(); got != 3.5 {
		t.Errorf("counter = %v, want 3.5", got)
	}

	g := r.Gauge("g", "h").With()
	g.Set(10)
	g.Add(-12.5)
	g.Inc()
	if got := g.Value(); got != -1.5 {
		t.Errorf("gauge = %v, want -1.5", got)
	}
	g.Set(math.Inf(+1))

	h := r.Histogram("h_seconds", "h", []float64{1, 2, math.Inf(+1)}).With()
	h.Observe(1) // bounds are inclusive
	h.Observe(math.NaN())
	h.Observe(-3)

	got := render(t, r)
	for _, line := range []string{
		"c_total 3.5",
		"g +Inf",
		`h_seconds_bucket{le="1"} 2`,
		`h_seconds_bucket{le="2"} 2`,
		`h_seconds_bucket{le="+Inf"} 2`,
		"h_seconds_sum -2",
		"h_seconds_count 2",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("missing line %q in\n%s", line, got)
		}
	}
	// +Inf given explicitly is not doubled.
	if n := strings.Count(got, `le="+Inf"`); n != 1 {
		t.Errorf("%d +Inf buckets, want 1", n)
	}
}

func TestRegistration(t *testing.T) {
	r := metrics.NewRegistry()
	a := r.Counter("same_total", "h", "x")
	b := r.Counter("same_total", "h", "x")
	a.With("1").Inc()
	if b.With("1").Value() != 1 {
		t.Error("registering the same counter twice did not share it")
	}
	r.Histogram("lat_seconds", "h", metrics.DefaultBuckets)

	mustPanic := []struct {
		name string
		f    func()
	}{
		{"bad metric name", func() { r.Counter("kraken-commands", "h") }},
		{"empty metric name", func() { r.Counter("", "h") }},
		{"bad label name", func() { r.Counter("a_total", "h", "verb-name") }},
		{"reserved label name", func() { r.Counter("b_total", "h", "__name") }},
		{"duplicate label", func() { r.Counter("c_total", "h", "x", "x") }},
		{"le on a histogram", func() { r.Histogram("d_seconds", "h", []float64{1}, "le") }},
		{"no buckets", func() { r.Histogram("e_seconds", "h", nil) }},
		{"unsorted buckets", func() { r.Histogram("f_seconds", "h", []float64{1, 0.5}) }},
		{"repeated bucket", func() { r.Histogram("g_seconds", "h", []float64{1, 1}) }},
		{"NaN bucket", func() { r.Histogram("h_seconds", "h", []float64{math.NaN()}) }},
		{"same name, other type", func() { r.Gauge("same_total", "h", "x") }},
		{"same name, other help", func() { r.Counter("same_total", "other", "x") }},
		{"same name, other labels", func() { r.Counter("same_total", "h", "y") }},
		{"collides with histogram series", func() { r.Counter("lat_seconds_count", "h") }},
		{"histogram collides with counter", func() {
			r.Counter("queue_sum", "h")
			r.Histogram("queue", "h", []float64{1})
		}},
		{"GaugeFunc twice", func() {
			r.GaugeFunc("fn", "h", func() float64 { return 0 })
			r.GaugeFunc("fn", "h", func() float64 { return 0 })
		}},
		{"nil GaugeFunc", func() { r.GaugeFunc("fn2", "h", nil) }},
		{"too few label values", func() { a.With() }},
		{"too many label values", func() { a.With("1", "2") }},
	}
	for _, tt := range mustPanic {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			tt.f()
		})
	}
}

// Registration copies its inputs; changing them later has no effect.
func TestRegistrationCopiesInputs(t *testing.T) {
	r := metrics.NewRegistry()
	buckets := []float64{1, 2}
	labels := []string{"a"}
	h := r.Histogram("h", "h", buckets, labels...)
	buckets[0], labels[0] = 100, "zzz"
	vals := []string{"x"}
	h.With(vals...).Observe(0.5)
	vals[0] = "y"
	got := render(t, r)
	if !strings.Contains(got, `h_bucket{a="x",le="1"} 1`) {
		t.Errorf("inputs were not copied:\n%s", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := metrics.NewRegistry()
	cmds := r.Counter("cmds_total", "h", "verb", "outcome")
	ack := r.Histogram("ack_seconds", "h", metrics.DefaultBuckets, "transport")
	inflight := r.Gauge("inflight", "h")

	const workers, perWorker = 16, 2000
	stop := make(chan struct{})
	scraped := make(chan int)
	go func() { // scrape while everything is being updated
		n := 0
		for {
			select {
			case <-stop:
				scraped <- n
				return
			default:
				var b strings.Builder
				r.WriteTo(&b)
				if _, err := parseExposition(strings.NewReader(b.String())); err != nil {
					t.Errorf("mid-update scrape does not parse: %v", err)
				}
				n++
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			mine := cmds.With("worker", strconv.Itoa(w)) // a series per worker, created concurrently
			for i := range perWorker {
				inflight.With().Inc()
				cmds.With("deploy", "ok").Inc()
				mine.Add(0.5)
				ack.With("http").Observe(float64(i%10) / 1000)
				inflight.With().Dec()
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := <-scraped; n == 0 {
		t.Log("no scrape overlapped the updates")
	}

	if got := cmds.With("deploy", "ok").Value(); got != workers*perWorker {
		t.Errorf("shared counter = %v, want %d", got, workers*perWorker)
	}
	if got := cmds.With("worker", "3").Value(); got != perWorker/2 {
		t.Errorf("worker counter = %v, want %d", got, perWorker/2)
	}
	if got := inflight.With().Value(); got != 0 {
		t.Errorf("gauge = %v, want 0", got)
	}
	fams, err := parseExposition(strings.NewReader(render(t, r)))
	if err != nil {
		t.Fatal(err)
	}
	if got := fams["ack_seconds"].samples[`ack_seconds_count{transport="http"}`]; got != workers*perWorker {
		t.Errorf("histogram count = %v, want %d", got, workers*perWorker)
	}
	// Each worker observes 0..9 ms 200 times each: sum 45 ms × 200 × 16.
	if got, want := fams["ack_seconds"].samples[`ack_seconds_sum{transport="http"}`], 0.045*200*workers; math.Abs(got-want) > 1e-6 {
		t.Errorf("histogram sum = %v, want %v", got, want)
	}
}

// The hot path (an existing series, one label) must not allocate.
func TestNoAllocationsOnHotPath(t *testing.T) {
	r := metrics.NewRegistry()
	c := r.Counter("c_total", "h", "verb")
	h := r.Histogram("h_seconds", "h", metrics.DefaultBuckets, "transport")
	c.With("deploy").Inc()
	h.With("http").Observe(0.01)
	if n := testing.AllocsPerRun(1000, func() {
		c.With("deploy").Inc()
		h.With("http").Observe(0.012)
	}); n != 0 {
		t.Errorf("%v allocations per update, want 0", n)
	}
}

func TestParseBack(t *testing.T) {
	r := metrics.NewRegistry()
	odd := "quote \" newline \n backslash \\ end"
	c := r.Counter("kraken_commands_total", "Commands \"handled\".\nBy verb.", "verb", "outcome")
	c.With(odd, "ok").Add(41)
	c.With(odd, "ok").Inc()
	c.With("deploy", "").Inc() // empty label value
	g := r.Gauge("kraken_queue_depth", "Queued events.", "queue")
	g.With("a").Set(-0.25)
	g.With("b").Set(1e-9)
	g.With("c").Set(123456789)
	h := r.Histogram("kraken_ack_seconds", "Ack latency.", metrics.DefaultBuckets, "transport")
	for i := range 100 {
		h.With("http").Observe(float64(i) / 50) // 0 .. 1.98 s
	}

	fams, err := parseExposition(strings.NewReader(render(t, r)))
	if err != nil {
		t.Fatal(err)
	}

	cf := fams["kraken_commands_total"]
	if cf.typ != "counter" || cf.help != "Commands \"handled\".\nBy verb." {
		t.Errorf("counter family = %q %q", cf.typ, cf.help)
	}
	if got := cf.values(map[string]string{"verb": odd, "outcome": "ok"}); len(got) != 1 || got[0] != 42 {
		t.Errorf("counter with odd label = %v, want [42]", got)
	}
	if got := cf.values(map[string]string{"verb": "deploy", "outcome": ""}); len(got) != 1 || got[0] != 1 {
		t.Errorf("counter with empty label = %v, want [1]", got)
	}
	for q, want := range map[string]float64{"a": -0.25, "b": 1e-9, "c": 123456789} {
		if got := fams["kraken_queue_depth"].values(map[string]string{"queue": q}); len(got) != 1 || got[0] != want {
			t.Errorf("gauge %s = %v, want %v", q, got, want)
		}
	}

	hf := fams["kraken_ack_seconds"]
	if hf.typ != "histogram" {
		t.Fatalf("histogram type = %q", hf.typ)
	}
	// le="1" holds the observations 0, 0.02 … 1.0: 51 of them.
	if got := hf.values(map[string]string{"transport": "http", "le": "1"}); len(got) != 1 || got[0] != 51 {
		t.Errorf(`bucket le="1" = %v, want [51]`, got)
	}
}

func TestHandler(t *testing.T) {
	r := metrics.NewRegistry()
	r.Counter("kraken_up_total", "h").With().Inc()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()

	tests := []struct {
		method     string
		wantStatus int
		wantBody   string
	}{
		{http.MethodGet, http.StatusOK, "# HELP kraken_up_total h\n# TYPE kraken_up_total counter\nkraken_up_total 1\n"},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "method not allowed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || string(body) != tt.wantBody {
				t.Errorf("%d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if resp.ContentLength != int64(len(tt.wantBody)) && tt.method == http.MethodGet {
				t.Errorf("Content-Length = %d, want %d", resp.ContentLength, len(tt.wantBody))
			}
		})
	}
}

// ---- a small parser for the text format, strict enough to catch mistakes ----

type parsedFamily struct {
	help, typ string
	// samples maps the sample as written (name and escaped labels) to its
	// value; series keeps the decoded labels.
	samples map[string]float64
	series  []parsedSample
}

type parsedSample struct {
	name   string
	labels map[string]string
	value  float64
}

func (f *parsedFamily) values(labels map[string]string) []float64 {
	var out []float64
next:
	for _, s := range f.series {
		for k, v := range labels {
			if got, ok := s.labels[k]; !ok || got != v {
				continue next
			}
		}
		out = append(out, s.value)
	}
	return out
}

// parseExposition parses text format 0.0.4 and checks what Prometheus
// relies on: HELP and TYPE come once, before the samples of their family;
// samples belong to the family last declared; label syntax and escapes are
// valid; histogram buckets are cumulative and end at +Inf equal to _count.
func parseExposition(r io.Reader) (map[string]*parsedFamily, error) {
	fams := map[string]*parsedFamily{}
	var cur *parsedFamily
	var curName string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", n, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			return nil, fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			name, help, _ := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			if _, dup := fams[name]; dup {
				return nil, fail("family declared twice")
			}
			h, err := unescape(help, false)
			if err != nil {
				return nil, fail("%v", err)
			}
			cur, curName = &parsedFamily{help: h, samples: map[string]float64{}}, name
			fams[name] = cur
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " ")
			if name != curName || cur.typ != "" || len(cur.series) > 0 {
				return nil, fail("TYPE not right after its HELP")
			}
			switch typ {
			case "counter", "gauge", "histogram":
			default:
				return nil, fail("unknown type")
			}
			cur.typ = typ
		case strings.HasPrefix(line, "#"):
			return nil, fail("unexpected comment")
		default:
			if cur == nil || cur.typ == "" {
				return nil, fail("sample before HELP and TYPE")
			}
			s, err := parseSample(line)
			if err != nil {
				return nil, fail("%v", err)
			}
			base := s.name
			if cur.typ == "histogram" {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if strings.HasSuffix(s.name, suf) {
						base = strings.TrimSuffix(s.name, suf)
					}
				}
				if _, hasLE := s.labels["le"]; hasLE != strings.HasSuffix(s.name, "_bucket") {
					return nil, fail("le label on a non-bucket sample, or a bucket without it")
				}
			}
			if base != curName {
				return nil, fail("sample outside its family %s", curName)
			}
			key := line[:strings.LastIndexByte(line, ' ')]
			if _, dup := cur.samples[key]; dup {
				return nil, fail("duplicate sample")
			}
			cur.samples[key] = s.value
			cur.series = append(cur.series, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for name, f := range fams {
		if f.typ == "histogram" {
			if err := checkHistogram(name, f); err != nil {
				return nil, err
			}
		}
	}
	return fams, nil
}

func checkHistogram(name string, f *parsedFamily) error {
	last := map[string]float64{}  // series (labels without le) → previous bucket count
	lastLE := map[string]string{} // series → previous le
	for _, s := range f.series {
		others := make([]string, 0, len(s.labels))
		for k, v := range s.labels {
			if k != "le" {
				others = append(others, k+"="+v)
			}
		}
		slices.Sort(others)
		id := strings.Join(others, ",")
		switch {
		case strings.HasSuffix(s.name, "_bucket"):
			if s.value < last[id] {
				return fmt.Errorf("%s{%s}: buckets are not cumulative", name, id)
			}
			last[id], lastLE[id] = s.value, s.labels["le"]
		case strings.HasSuffix(s.name, "_count"):
			if lastLE[id] != "+Inf" || last[id] != s.value {
				return fmt.Errorf("%s{%s}: last bucket %q=%v, count %v", name, id, lastLE[id], last[id], s.value)
			}
		}
	}
	return nil
}

func parseSample(line string) (parsedSample, error) {
	s := parsedSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("no metric name")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			eq := strings.IndexByte(line, '=')
			if eq <= 0 || len(line) < eq+2 || line[eq+1] != '"' {
				return s, fmt.Errorf("bad label at %q", line)
			}
			name := line[:eq]
			line = line[eq+2:]
			// Find the closing quote, skipping escaped characters.
			end := -1
			for j := 0; j < len(line); j++ {
				if line[j] == '\\' {
					j++
					continue
				}
				if line[j] == '"' {
					end = j
					break
				}
			}
			if end < 0 {
				return s, fmt.Errorf("unterminated label value")
			}
			v, err := unescape(line[:end], true)
			if err != nil {
				return s, err
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("duplicate label %s", name)
			}
			s.labels[name] = v
			line = line[end+1:]
			if strings.HasPrefix(line, ",") {
				line = line[1:]
				continue
			}
			if !strings.HasPrefix(line, "}") {
				return s, fmt.Errorf("expected , or } at %q", line)
			}
			line = line[1:]
			break
		}
	}
	if !strings.HasPrefix(line, " ") || strings.Contains(line[1:], " ") {
		return s, fmt.Errorf("expected one space then the value, got %q", line)
	}
	v, err := strconv.ParseFloat(line[1:], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

func unescape(s string, quoted bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\n' {
			return "", fmt.Errorf("raw newline")
		}
		if quoted && c == '"' {
			return "", fmt.Errorf("unescaped quote")
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			return "", fmt.Errorf("trailing backslash")
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case '"':
			if !quoted {
				return "", fmt.Errorf(`\" in HELP`)
			}
			b.WriteByte('"')
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}
