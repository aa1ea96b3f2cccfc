package metrics

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ContentType is the media type of the text exposition format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteTo writes every family that has at least one series, sorted by name,
// each with its series sorted by label values, in the text exposition
// format. It implements io.WriterTo.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	fams := make([]*family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	// Render outside the lock: a GaugeFunc may be slow, and registration
	// should not wait for a scrape.
	slices.SortFunc(fams, func(a, b *family) int { return strings.Compare(a.name, b.name) })

	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range fams {
		f.write(bw)
	}
	err := bw.Flush()
	return cw.n, err
}

func (f *family) write(w *bufio.Writer) {
	if f.fn != nil {
		f.header(w)
		sample(w, f.name, "", "", f.fn())
		return
	}
	var all []series
	f.series.Range(func(_, s any) bool {
		all = append(all, s.(series))
		return true
	})
	if len(all) == 0 {
		// A labelled family nobody has used yet: Prometheus clients omit
		// it rather than print a header with no samples.
		return
	}
	slices.SortFunc(all, func(a, b series) int { return slices.Compare(a.base().values, b.base().values) })

	f.header(w)
	for _, s := range all {
		switch s := s.(type) {
		case *Counter:
			sample(w, f.name, s.labels, "", s.Value())
		case *Gauge:
			sample(w, f.name, s.labels, "", s.Value())
		case *Histogram:
			cumulative, sum := s.snapshot()
			for b, ub := range s.upper {
				sample(w, f.name+"_bucket", s.labels, formatFloat(ub), float64(cumulative[b]))
			}
			total := cumulative[len(cumulative)-1]
			sample(w, f.name+"_bucket", s.labels, "+Inf", float64(total))
			sample(w, f.name+"_sum", s.labels, "", sum)
			sample(w, f.name+"_count", s.labels, "", float64(total))
		}
	}
}

func (f *family) header(w *bufio.Writer) {
	w.WriteString("# HELP ")
	w.WriteString(f.name)
	w.WriteByte(' ')
	writeEscaped(w, f.help, false)
	w.WriteString("\n# TYPE ")
	w.WriteString(f.name)
	w.WriteByte(' ')
	w.WriteString(string(f.kind))
	w.WriteByte('\n')
}

// sample writes one line: name{labels,le="le"} value. labels is already
// escaped; le is empty except for histogram buckets.
func sample(w *bufio.Writer, name, labels, le string, v float64) {
	w.WriteString(name)
	if labels != "" || le != "" {
		w.WriteByte('{')
		w.WriteString(labels)
		if le != "" {
			if labels != "" {
				w.WriteByte(',')
			}
			w.WriteString(`le="`)
			w.WriteString(le)
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

// formatFloat writes the shortest representation that parses back to v, as
// the Prometheus client does, with the format's spellings of the specials.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// writeEscaped escapes backslash and newline, and in label values also the
// double quote, as the text format requires.
func writeEscaped(w io.StringWriter, s string, quote bool) {
	// Everything escaped is ASCII, so scanning bytes cannot split a rune.
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch {
		case s[i] == '\\':
			esc = `\\`
		case s[i] == '\n':
			esc = `\n`
		case s[i] == '"' && quote:
			esc = `\"`
		default:
			continue
		}
		w.WriteString(s[start:i])
		w.WriteString(esc)
		start = i + 1
	}
	w.WriteString(s[start:])
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Handler serves the registry for Prometheus to scrape (GET or HEAD).
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// Render fully before answering, so a scrape is never cut short
		// halfway and Content-Length is known.
		var buf bytes.Buffer
		_, _ = r.WriteTo(&buf) // a bytes.Buffer does not fail
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
		if req.Method == http.MethodHead {
			return
		}
		// A failed write means the scraper has gone; nothing to do.
		_, _ = w.Write(buf.Bytes())
	})
}
