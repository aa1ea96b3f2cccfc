package k8stest

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestServeLog(t *testing.T) {
	buf := newLogBuffer()
	fmt.Fprint(buf, "one\ntwo\nthr")
	fmt.Fprint(buf, "ee\nfour") // a partial line waits for its newline
	tests := []struct {
		query, want string
	}{
		{"", "one\ntwo\nthree\n"},
		{"?tailLines=2", "two\nthree\n"},
		{"?tailLines=0", ""},
		{"?limitBytes=6", "one\ntw"},
		{"?sinceSeconds=3600&tailLines=1", "three\n"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/containerLogs/ns/pod/engine"+tt.query, nil)
		q, err := parseLogQuery(r)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		serveLog(w, r, buf, q, nil)
		if got := w.Body.String(); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.query, got, tt.want)
		}
	}

	r := httptest.NewRequest("GET", "/containerLogs/ns/pod/engine?timestamps=true&tailLines=1", nil)
	q, _ := parseLogQuery(r)
	w := httptest.NewRecorder()
	serveLog(w, r, buf, q, nil)
	stamp, line, _ := strings.Cut(w.Body.String(), " ")
	if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil || line != "three\n" {
		t.Errorf("timestamps: got %q", w.Body.String())
	}

	// Follow gets what is written while it waits, and ends when the
	// instance does, with its last partial line.
	r = httptest.NewRequest("GET", "/containerLogs/ns/pod/engine?follow=true", nil)
	q, _ = parseLogQuery(r)
	w = httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveLog(w, r, buf, q, nil)
	}()
	fmt.Fprint(buf, "\nfive\nsix")
	buf.close()
	<-done
	if got := w.Body.String(); got != "one\ntwo\nthree\nfour\nfive\nsix\n" {
		t.Errorf("follow: got %q", got)
	}
}

func TestLogBufferDropsOldest(t *testing.T) {
	buf := newLogBuffer()
	for i := range maxLogLines + 10 {
		fmt.Fprintf(buf, "%d\n", i)
	}
	lines, next, _, _ := buf.from(0)
	if len(lines) != maxLogLines || string(lines[0].text) != "10" || next != maxLogLines+10 {
		t.Errorf("kept %d lines from %q, next %d", len(lines), lines[0].text, next)
	}
	if rest, _, _, _ := buf.from(next - 1); len(rest) != 1 {
		t.Errorf("from(next-1) gave %d lines", len(rest))
	}
}
