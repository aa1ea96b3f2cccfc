package k8stest

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxLogLines bounds what one container instance keeps, oldest first out.
const maxLogLines = 50000

// logBuffer is one container instance's output, as lines with the time
// they were written, like the kubelet's log files.
type logBuffer struct {
	mu      sync.Mutex
	lines   []logLine
	dropped int // lines removed from the front, so offsets stay valid
	partial []byte
	closed  bool
	wake    chan struct{} // closed and replaced on every change
}

type logLine struct {
	at   time.Time
	text []byte
}

func newLogBuffer() *logBuffer { return &logBuffer{wake: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.partial = append(b.partial, p...)
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, logLine{at: now, text: bytes.Clone(b.partial[:i])})
		b.partial = b.partial[i+1:]
	}
	if n := len(b.lines) - maxLogLines; n > 0 {
		b.lines = append(b.lines[:0:0], b.lines[n:]...)
		b.dropped += n
	}
	b.notify()
	return len(p), nil
}

// close ends the instance: what is left of a last line without a newline
// becomes a line, and followers stop.
func (b *logBuffer) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.partial) > 0 {
		b.lines = append(b.lines, logLine{at: time.Now(), text: b.partial})
		b.partial = nil
	}
	b.closed = true
	b.notify()
}

func (b *logBuffer) notify() {
	close(b.wake)
	b.wake = make(chan struct{})
}

// from returns the lines from offset on, the next offset, whether the
// instance has ended, and a channel closed at the next change.
func (b *logBuffer) from(offset int) ([]logLine, int, bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := max(offset-b.dropped, 0)
	return b.lines[i:len(b.lines):len(b.lines)], b.dropped + len(b.lines), b.closed, b.wake
}

// String is the whole log, for test failure messages.
func (b *logBuffer) String() string {
	lines, _, _, _ := b.from(0)
	var s bytes.Buffer
	for _, l := range lines {
		s.Write(l.text)
		s.WriteByte('\n')
	}
	return s.String()
}

// logQuery is the kubelet's /containerLogs query (what kubectl logs and
// client-go's GetLogs send through the apiserver).
type logQuery struct {
	follow, previous, timestamps bool
	tail                         int // -1: all
	limit                        int // bytes; 0: no limit
	since                        time.Time
}

func parseLogQuery(r *http.Request) (logQuery, error) {
	q := r.URL.Query()
	lq := logQuery{tail: -1}
	var err error
	boolean := func(name string) bool {
		v := q.Get(name)
		if v == "" {
			return false
		}
		b, e := strconv.ParseBool(v)
		if e != nil && err == nil {
			err = fmt.Errorf("%s=%q: %w", name, v, e)
		}
		return b
	}
	integer := func(name string) int {
		v := q.Get(name)
		if v == "" {
			return -1
		}
		n, e := strconv.Atoi(v)
		if e != nil && err == nil {
			err = fmt.Errorf("%s=%q: %w", name, v, e)
		}
		return n
	}
	lq.follow = boolean("follow")
	lq.previous = boolean("previous")
	lq.timestamps = boolean("timestamps")
	lq.tail = integer("tailLines")
	if n := integer("limitBytes"); n > 0 {
		lq.limit = n
	}
	if n := integer("sinceSeconds"); n > 0 {
		lq.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, e := time.Parse(time.RFC3339, v)
		if e != nil && err == nil {
			err = fmt.Errorf("sinceTime=%q: %w", v, e)
		}
		lq.since = t
	}
	return lq, err
}

// serveLog writes buf as the query asks; with follow it keeps writing
// until the instance ends, the client goes, or done is closed.
func serveLog(w http.ResponseWriter, r *http.Request, buf *logBuffer, q logQuery, done <-chan struct{}) {
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	written := 0
	write := func(lines []logLine) bool {
		for _, l := range lines {
			var out []byte
			if q.timestamps {
				out = append(out, l.at.UTC().Format(time.RFC3339Nano)...)
				out = append(out, ' ')
			}
			out = append(append(out, l.text...), '\n')
			if q.limit > 0 && written+len(out) > q.limit {
				out = out[:q.limit-written]
			}
			n, err := w.Write(out)
			written += n
			if err != nil || (q.limit > 0 && written >= q.limit) {
				return false
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	lines, next, closed, wake := buf.from(0)
	if !q.since.IsZero() { // since first, then tail, as the kubelet does
		i := 0
		for i < len(lines) && lines[i].at.Before(q.since) {
			i++
		}
		lines = lines[i:]
	}
	if q.tail >= 0 && q.tail < len(lines) {
		lines = lines[len(lines)-q.tail:]
	}
	if !write(lines) || !q.follow {
		return
	}
	for !closed {
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		case <-done:
			return
		}
		lines, next, closed, wake = buf.from(next)
		if !write(lines) {
			return
		}
	}
}
