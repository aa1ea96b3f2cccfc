package tentacle

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// report collects every problem found in one spec, so that the author can
// fix them all in one pass instead of one per run.
type report struct {
	file  string
	errs  []Problem
	warns []Problem
	// dupKeys are the repeated keys checkTree found, for readers to skip.
	dupKeys map[*yaml.Node]bool
	// nodeHints counts the searches for a node id close to an unknown one.
	nodeHints int
}

func (r *report) errorf(at *yaml.Node, field, format string, args ...any) {
	r.errs = append(r.errs, r.problem(at, field, fmt.Sprintf(format, args...)))
}

func (r *report) warnf(at *yaml.Node, field, format string, args ...any) {
	r.warns = append(r.warns, r.problem(at, field, fmt.Sprintf(format, args...)))
}

func (r *report) problem(at *yaml.Node, field, msg string) Problem {
	p := Problem{File: r.file, Field: field, Msg: msg}
	if at != nil {
		p.Line, p.Column = at.Line, at.Column
	}
	return p
}

// err returns the errors so far as a *SpecError in file order, or nil.
func (r *report) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	sortProblems(r.errs)
	return &SpecError{Problems: r.errs}
}

// sortProblems puts problems in file order; stable so that several problems
// on one node keep the order the checks found them in.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// join builds dotted field paths such as "nodes.fetch.path".
func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// index builds field paths such as "edges[2]".
func index(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// oneOf renders allowed values for messages: "manual, cron, queue, webhook".
func oneOf(values []string) string {
	return strings.Join(values, ", ")
}
