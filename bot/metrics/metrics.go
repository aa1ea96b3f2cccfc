// Package metrics keeps counters, gauges and histograms and serves them in
// the Prometheus text exposition format, version 0.0.4.
//
// It exists instead of the Prometheus client library to keep the bot small
// (its idle RSS budget is 60 MB): it has no summaries, no protobuf, no
// collectors, only what the bot records. Updating a metric is lock-free
// (atomics), because Slack acks record one on every request. Looking up a
// labelled series is a lock-free map read once the series exists (with two
// or more labels it also builds a small key string); hot paths can keep the
// series returned by With to skip even that.
//
//	r := metrics.NewRegistry()
//	commands := r.Counter("kraken_commands_total", "Commands handled, by verb and outcome.", "verb", "outcome")
//	commands.With("deploy", "ok").Inc()
//	ack := r.Histogram("kraken_ack_seconds", "Time to acknowledge a Slack request.", metrics.DefaultBuckets, "transport")
//	ack.With("http").Observe(0.012)
//	http.Handle("GET /metrics", r.Handler())
//
// Mistakes in how a metric is declared (bad names, duplicate or conflicting
// registrations, unsorted buckets, a wrong number of label values) are
// programming errors found the first time the code runs, and panic. Bad
// values are not: a metric must never take the bot down, so a negative
// counter increment or a NaN observation is ignored.
//
// Label values must come from a small fixed set (verbs, outcomes,
// transports), never from user input: every distinct combination is a series
// kept for the life of the process.
package metrics

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DefaultBuckets are upper bounds in seconds suited to request latencies
// from a millisecond to five seconds (Slack gives up on an ack at three).
// Registration copies the slice; do not modify it.
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

type kind string

const (
	kindCounter   kind = "counter"
	kindGauge     kind = "gauge"
	kindHistogram kind = "histogram"
)

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Registry holds metric families and renders them. The zero value is an
// empty registry. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]*family{}}
}

// family is one metric name: its metadata and its series, one per distinct
// combination of label values.
type family struct {
	name    string
	help    string
	kind    kind
	labels  []string
	buckets []float64      // histograms only, without +Inf
	fn      func() float64 // GaugeFunc only

	// series maps seriesKey(label values) to a series. A sync.Map suits
	// it: keys are written once and then only read, from many goroutines.
	series sync.Map
}

// Counter registers a counter family with the given label names and returns
// it. Registering the same name again with the same help, type and labels
// returns the same family; anything else panics.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.register(&family{name: name, help: help, kind: kindCounter, labels: labels})}
}

// Gauge registers a gauge family; see Counter.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.register(&family{name: name, help: help, kind: kindGauge, labels: labels})}
}

// GaugeFunc registers an unlabelled gauge whose value is fn's result at the
// time of each scrape, for values the bot already knows how to compute
// (goroutines, open connections). fn must be safe for concurrent use and
// fast; it is called while rendering.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	if fn == nil {
		panic(fmt.Sprintf("metrics: GaugeFunc %q: nil func", name))
	}
	r.register(&family{name: name, help: help, kind: kindGauge, fn: fn})
}

// Histogram registers a histogram family with the given bucket upper bounds
// (strictly increasing; +Inf is implied and may be omitted) and label names;
// see Counter. "le" is reserved for the bucket label.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	b := slices.Clone(buckets)
	if n := len(b); n > 0 && math.IsInf(b[n-1], +1) {
		b = b[:n-1]
	}
	if len(b) == 0 {
		panic(fmt.Sprintf("metrics: histogram %q: no buckets", name))
	}
	for i, ub := range b {
		if math.IsNaN(ub) || (i > 0 && ub <= b[i-1]) {
			panic(fmt.Sprintf("metrics: histogram %q: buckets must be strictly increasing numbers, got %v", name, buckets))
		}
	}
	if slices.Contains(labels, "le") {
		panic(fmt.Sprintf("metrics: histogram %q: label name \"le\" is reserved", name))
	}
	return &HistogramVec{r.register(&family{name: name, help: help, kind: kindHistogram, labels: labels, buckets: b})}
}

func (r *Registry) register(f *family) *family {
	if !metricNameRE.MatchString(f.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name))
	}
	for i, l := range f.labels {
		if !labelNameRE.MatchString(l) || strings.HasPrefix(l, "__") {
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", f.name, l))
		}
		if slices.Contains(f.labels[:i], l) {
			panic(fmt.Sprintf("metrics: %s: duplicate label name %q", f.name, l))
		}
	}
	f.labels = slices.Clone(f.labels)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.families == nil {
		r.families = map[string]*family{}
	}
	if old, ok := r.families[f.name]; ok {
		// A GaugeFunc is never "the same" registration: its func cannot be
		// compared, and two sources for one value would be a bug.
		if old.kind == f.kind && old.help == f.help && slices.Equal(old.labels, f.labels) &&
			slices.Equal(old.buckets, f.buckets) && old.fn == nil && f.fn == nil {
			return old
		}
		panic(fmt.Sprintf("metrics: %s registered twice with different definitions", f.name))
	}
	// A histogram's series are name_bucket, name_sum and name_count; no
	// other family may render a sample under one of those names.
	for _, s := range f.sampleNames() {
		for _, other := range r.families {
			if slices.Contains(other.sampleNames(), s) {
				panic(fmt.Sprintf("metrics: %s: sample name %q is already used by %s", f.name, s, other.name))
			}
		}
	}
	r.families[f.name] = f
	if len(f.labels) == 0 && f.fn == nil {
		// An unlabelled metric has exactly one series: create it now so it
		// is exposed (as zero) before its first update.
		f.get(nil)
	}
	return f
}

func (f *family) sampleNames() []string {
	if f.kind == kindHistogram {
		return []string{f.name + "_bucket", f.name + "_sum", f.name + "_count"}
	}
	return []string{f.name}
}

// seriesKey joins label values into a map key. 0xff never occurs in valid
// UTF-8, and values are made valid before they get here, so distinct value
// lists always give distinct keys.
func seriesKey(values []string) string {
	switch len(values) {
	case 0:
		return ""
	case 1:
		return values[0]
	}
	return strings.Join(values, "\xff")
}

// get returns the series for values, creating it on first use.
func (f *family) get(values []string) any {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s: got %d label values for labels %v", f.name, len(values), f.labels))
	}
	for i, v := range values {
		if !utf8.ValidString(v) {
			// The exposition format is UTF-8; a broken value would make
			// the whole scrape unparseable.
			values = slices.Clone(values)
			values[i] = strings.ToValidUTF8(v, "\uFFFD")
		}
	}
	key := seriesKey(values)
	if s, ok := f.series.Load(key); ok {
		return s
	}
	s, _ := f.series.LoadOrStore(key, f.newSeries(slices.Clone(values)))
	return s
}

func (f *family) newSeries(values []string) any {
	var b strings.Builder
	for i, l := range f.labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l)
		b.WriteString(`="`)
		writeEscaped(&b, values[i], true)
		b.WriteByte('"')
	}
	m := meta{values: values, labels: b.String()}
	switch f.kind {
	case kindCounter:
		return &Counter{meta: m}
	case kindGauge:
		return &Gauge{meta: m}
	default:
		return &Histogram{meta: m, upper: f.buckets, counts: make([]atomic.Uint64, len(f.buckets)+1)}
	}
}

// meta is what rendering needs to know about a series besides its value.
type meta struct {
	values []string // label values, for sorting
	labels string   // rendered `name="value",...`, without braces
}

func (m *meta) base() *meta { return m }

// series is implemented by *Counter, *Gauge and *Histogram through meta.
type series interface{ base() *meta }

// CounterVec is a counter family; With selects one series.
type CounterVec struct{ f *family }

// With returns the counter for the given label values, in the order the
// label names were registered, creating it (at zero) on first use.
func (v *CounterVec) With(values ...string) *Counter { return v.f.get(values).(*Counter) }

// Counter is a value that only goes up.
type Counter struct {
	meta
	// Whole increments go to an integer, which one atomic add updates;
	// fractional ones to a float updated by compare-and-swap. Inc, the
	// common case, never retries.
	n    atomic.Uint64
	frac atomic.Uint64 // float64 bits
}

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds delta. A negative or NaN delta is ignored: a counter cannot go
// down.
func (c *Counter) Add(delta float64) {
	if !(delta >= 0) {
		return
	}
	if delta == math.Trunc(delta) && delta < 1<<53 {
		c.n.Add(uint64(delta))
		return
	}
	addFloat(&c.frac, delta)
}

// Value returns the current count.
func (c *Counter) Value() float64 {
	return float64(c.n.Load()) + math.Float64frombits(c.frac.Load())
}

// GaugeVec is a gauge family; With selects one series.
type GaugeVec struct{ f *family }

// With returns the gauge for the given label values; see CounterVec.With.
func (v *GaugeVec) With(values ...string) *Gauge { return v.f.get(values).(*Gauge) }

// Gauge is a value that goes up and down.
type Gauge struct {
	meta
	bits atomic.Uint64 // float64 bits
}

// Set sets the gauge to x.
func (g *Gauge) Set(x float64) { g.bits.Store(math.Float64bits(x)) }

// Add adds delta, which may be negative.
func (g *Gauge) Add(delta float64) { addFloat(&g.bits, delta) }

// Inc adds one.
func (g *Gauge) Inc() { g.Add(1) }

// Dec subtracts one.
func (g *Gauge) Dec() { g.Add(-1) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// HistogramVec is a histogram family; With selects one series.
type HistogramVec struct{ f *family }

// With returns the histogram for the given label values; see
// CounterVec.With.
func (v *HistogramVec) With(values ...string) *Histogram { return v.f.get(values).(*Histogram) }

// Histogram counts observations into buckets.
type Histogram struct {
	meta
	upper []float64
	// counts[i] counts observations in (upper[i-1], upper[i]]; the last
	// slot is (upper[n-1], +Inf). They are not cumulative, so an
	// observation touches a single counter; rendering adds them up.
	counts []atomic.Uint64
	sum    atomic.Uint64 // float64 bits
}

// Observe records x. NaN is ignored: it would turn the sum into NaN for
// the rest of the process's life.
func (h *Histogram) Observe(x float64) {
	if math.IsNaN(x) {
		return
	}
	// The first bound >= x: bucket bounds are inclusive ("le").
	h.counts[sort.SearchFloat64s(h.upper, x)].Add(1)
	addFloat(&h.sum, x)
}

// ObserveDuration records d in seconds.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// snapshot returns cumulative bucket counts (the last is the total) and the
// sum. Buckets are read one by one while others may be observing, so a
// scrape can be a few observations behind in some buckets; the count is
// derived from the buckets, so it always equals the +Inf bucket.
func (h *Histogram) snapshot() (cumulative []uint64, sum float64) {
	cumulative = make([]uint64, len(h.counts))
	var acc uint64
	for i := range h.counts {
		acc += h.counts[i].Load()
		cumulative[i] = acc
	}
	return cumulative, math.Float64frombits(h.sum.Load())
}

func addFloat(bits *atomic.Uint64, delta float64) {
	for {
		old := bits.Load()
		next := math.Float64bits(math.Float64frombits(old) + delta)
		if bits.CompareAndSwap(old, next) {
			return
		}
	}
}
