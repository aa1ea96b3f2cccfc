package tentacle

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Changes is what deploying one revision over another changes, in the
// terms of the person who confirms the deploy. Every list is sorted.
//
// It names things (steps, config keys, files, hosts) and never shows
// values or file contents: config may hold what people consider
// sensitive, and the summary is posted in a channel.
type Changes struct {
	// First is set when nothing runs yet: everything is new.
	First bool
	// FilesOnly is set when the running revision's workflow.yaml no
	// longer parses (it was deployed under older rules); only files are
	// compared then.
	FilesOnly bool

	// VersionFrom is empty on a first deploy, or when FilesOnly and the
	// running version cannot be read.
	VersionFrom, VersionTo string

	// NodesChanged are steps whose code changed: their module's content
	// or the module they name.
	NodesAdded, NodesRemoved, NodesChanged []string
	// Edges read "from → to".
	EdgesAdded, EdgesRemoved []string
	// Triggers as described by DescribeTrigger; a changed trigger is
	// removed and added.
	TriggersAdded, TriggersRemoved []string
	// Dependencies are the contract's dependencies added, removed or
	// changed, by name.
	Dependencies []DependencyChange
	// Sidecars by name.
	SidecarsAdded, SidecarsRemoved, SidecarsChanged []string
	// ConfigChanged are the config keys added, removed or given another
	// value: names only.
	ConfigChanged []string
	// Files other than workflow.yaml and the steps' modules (all files
	// when FilesOnly). Secrets files are never compared.
	FilesAdded, FilesRemoved, FilesChanged []string
	// Other names what else changed in workflow.yaml: "description",
	// "details of step fetch", ... so that Empty means nothing changes.
	Other []string
}

// DependencyChange is one contract dependency that is new, gone or
// different.
type DependencyChange struct {
	Name string
	// Before and After say what the dependency lets the tentacle reach,
	// e.g. "api.example.com:443"; Before is empty for a new dependency
	// and After for a removed one.
	Before, After string
	// Fields names its other settings that changed (auth, database,
	// ...), never their values.
	Fields []string
}

// Diff says what deploying next over prev changes. Both are a revision's
// files as in Bundle.Files: workflow.yaml and the modules. A nil prev
// means a first deploy. next must parse; when prev no longer does (it
// was deployed under older rules), files are compared instead.
func Diff(prev, next map[string][]byte) (Changes, error) {
	spec, ok := next[FileName]
	if !ok {
		return Changes{}, fmt.Errorf("diff: the new revision has no %s", FileName)
	}
	nw, err := Parse(FileName, spec)
	if err != nil {
		return Changes{}, fmt.Errorf("diff: %w", err)
	}
	if prev == nil {
		c := Changes{First: true}
		c.compare(&Workflow{}, nw, nil, next)
		return c, nil
	}
	pw, err := Parse(FileName, prev[FileName])
	if err != nil {
		c := Changes{FilesOnly: true, VersionFrom: looseVersion(prev[FileName]), VersionTo: nw.Version}
		c.FilesAdded, c.FilesRemoved, c.FilesChanged = diffFiles(prev, next, nil)
		return c, nil
	}
	var c Changes
	c.compare(pw, nw, prev, next)
	c.Other = otherChanges(pw, nw)
	moved := slices.ContainsFunc(nw.NodeIDs, func(id string) bool {
		p, ok := pw.Nodes[id]
		return ok && path.Clean(p.Path) != path.Clean(nw.Nodes[id].Path)
	})
	if len(c.Other) == 0 && c.specEmpty() && !moved && !bytes.Equal(prev[FileName], next[FileName]) {
		c.Other = []string{"comments or layout of " + FileName}
	}
	return c, nil
}

// Empty reports whether the deploy would change nothing.
func (c Changes) Empty() bool {
	return !c.First && c.specEmpty() && len(c.NodesChanged)+len(c.FilesAdded)+len(c.FilesRemoved)+len(c.FilesChanged)+len(c.Other) == 0
}

// specEmpty reports whether nothing workflow.yaml says changed, as far
// as the typed fields tell.
func (c Changes) specEmpty() bool {
	return c.VersionFrom == c.VersionTo &&
		len(c.NodesAdded)+len(c.NodesRemoved)+len(c.EdgesAdded)+len(c.EdgesRemoved)+
			len(c.TriggersAdded)+len(c.TriggersRemoved)+len(c.Dependencies)+
			len(c.SidecarsAdded)+len(c.SidecarsRemoved)+len(c.SidecarsChanged)+len(c.ConfigChanged) == 0
}

// Lines says the changes as sentences, most important first: "Version
// 1.0.0 → 1.1.0", "New step: enrich", "Now reaches api.example.com:443
// (new dependency weather)". A first deploy is summed up by its counts,
// its triggers and what it reaches.
func (c Changes) Lines() []string {
	var out []string
	each := func(prefix string, items []string) {
		for _, s := range items {
			out = append(out, prefix+s)
		}
	}
	switch {
	case c.First:
		out = append(out, fmt.Sprintf("First deploy: %s, %s", count(len(c.NodesAdded), "step"), count(len(c.TriggersAdded), "trigger")))
	case c.FilesOnly:
		out = append(out, fmt.Sprintf("The running revision's %s no longer passes today's checks, so only files are compared", FileName))
	}
	switch {
	case c.VersionFrom == c.VersionTo:
	case c.VersionFrom == "":
		out = append(out, "Version "+c.VersionTo)
	default:
		out = append(out, "Version "+c.VersionFrom+" → "+c.VersionTo)
	}
	if c.First {
		each("Trigger: ", c.TriggersAdded)
		for _, d := range c.Dependencies {
			out = append(out, "Reaches "+d.After+" (dependency "+d.Name+")")
		}
		each("Sidecar: ", c.SidecarsAdded)
		return out
	}
	each("New step: ", c.NodesAdded)
	each("Removed step: ", c.NodesRemoved)
	each("Changed code: ", c.NodesChanged)
	each("New link: ", c.EdgesAdded)
	each("Removed link: ", c.EdgesRemoved)
	each("New trigger: ", c.TriggersAdded)
	each("Removed trigger: ", c.TriggersRemoved)
	for _, d := range c.Dependencies {
		switch {
		case d.Before == "":
			out = append(out, "Now reaches "+d.After+" (new dependency "+d.Name+")")
		case d.After == "":
			out = append(out, "No longer reaches "+d.Before+" (removed dependency "+d.Name+")")
		case d.Before != d.After:
			out = append(out, "Dependency "+d.Name+" now reaches "+d.After+" instead of "+d.Before)
		}
		if len(d.Fields) > 0 {
			out = append(out, "Changed dependency "+d.Name+": "+strings.Join(d.Fields, ", "))
		}
	}
	each("New sidecar: ", c.SidecarsAdded)
	each("Removed sidecar: ", c.SidecarsRemoved)
	each("Changed sidecar: ", c.SidecarsChanged)
	if len(c.ConfigChanged) > 0 {
		out = append(out, "Changed config: "+strings.Join(c.ConfigChanged, ", ")+" (values not shown)")
	}
	each("New file: ", c.FilesAdded)
	each("Removed file: ", c.FilesRemoved)
	each("Changed file: ", c.FilesChanged)
	if len(c.Other) > 0 {
		out = append(out, "Also changed: "+strings.Join(c.Other, ", "))
	}
	return out
}

// compare fills everything but Other from two parsed workflows and
// their files.
func (c *Changes) compare(pw, nw *Workflow, prev, next map[string][]byte) {
	c.VersionFrom, c.VersionTo = pw.Version, nw.Version

	c.NodesAdded, c.NodesRemoved = added(pw.NodeIDs, nw.NodeIDs), added(nw.NodeIDs, pw.NodeIDs)
	modules := map[string]bool{}
	for _, w := range []*Workflow{pw, nw} {
		for _, n := range w.Nodes {
			modules[path.Clean(n.Path)] = true
		}
	}
	for _, id := range nw.NodeIDs {
		p, ok := pw.Nodes[id]
		if !ok {
			continue
		}
		pp, np := path.Clean(p.Path), path.Clean(nw.Nodes[id].Path)
		if pp != np || !bytes.Equal(prev[pp], next[np]) {
			c.NodesChanged = append(c.NodesChanged, id)
		}
	}

	c.EdgesAdded, c.EdgesRemoved = added(edges(pw), edges(nw)), added(edges(nw), edges(pw))
	c.TriggersAdded, c.TriggersRemoved = added(triggers(pw), triggers(nw)), added(triggers(nw), triggers(pw))
	c.Dependencies = diffContracts(pw.Contract, nw.Contract)
	c.SidecarsAdded, c.SidecarsRemoved, c.SidecarsChanged = diffByName(sidecars(pw), sidecars(nw))
	a, r, ch := diffByName(pw.Config.ToMap(), nw.Config.ToMap())
	c.ConfigChanged = slices.Sorted(slices.Values(slices.Concat(a, r, ch)))
	c.FilesAdded, c.FilesRemoved, c.FilesChanged = diffFiles(prev, next, func(p string) bool { return p == FileName || modules[p] })
}

// otherChanges names what changed in workflow.yaml that compare does not
// cover, so that such a redeploy does not look empty.
func otherChanges(pw, nw *Workflow) []string {
	var out []string
	if pw.Name != nw.Name {
		out = append(out, "name "+pw.Name+" → "+nw.Name)
	}
	if pw.Description != nw.Description {
		out = append(out, "description")
	}
	for _, id := range nw.NodeIDs {
		p, ok := pw.Nodes[id]
		n := nw.Nodes[id]
		if ok && (p.Description != n.Description || !reflect.DeepEqual(p.Capabilities, n.Capabilities)) {
			out = append(out, "details of step "+id)
		}
	}
	if pw.Contract != nil && nw.Contract != nil && pw.Contract.Version != nw.Contract.Version {
		out = append(out, "contract version")
	}
	if !reflect.DeepEqual(pw.Deployment, nw.Deployment) {
		out = append(out, "deployment settings")
	}
	if !reflect.DeepEqual(pw.Metadata, nw.Metadata) {
		out = append(out, "metadata")
	}
	return out
}

// diffFiles compares two sets of files by content, leaving out those
// skip covers and secrets files, which have no place in a revision and
// whose names alone need not be shown.
func diffFiles(prev, next map[string][]byte, skip func(string) bool) (add, remove, change []string) {
	keep := func(p string) bool {
		return (skip == nil || !skip(p)) && !slices.ContainsFunc(strings.Split(p, "/"), func(e string) bool { return strings.HasPrefix(e, ".secrets") })
	}
	for _, p := range slices.Sorted(maps.Keys(next)) {
		old, ok := prev[p]
		switch {
		case !keep(p):
		case !ok:
			add = append(add, p)
		case !bytes.Equal(old, next[p]):
			change = append(change, p)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(prev)) {
		if _, ok := next[p]; !ok && keep(p) {
			remove = append(remove, p)
		}
	}
	return add, remove, change
}

// diffByName compares two maps entry by entry.
func diffByName[V any](prev, next map[string]V) (add, remove, change []string) {
	for _, k := range slices.Sorted(maps.Keys(next)) {
		old, ok := prev[k]
		switch {
		case !ok:
			add = append(add, k)
		case !reflect.DeepEqual(old, next[k]):
			change = append(change, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(prev)) {
		if _, ok := next[k]; !ok {
			remove = append(remove, k)
		}
	}
	return add, remove, change
}

// added returns what next has more than prev, counting repeats (two
// identical manual triggers are two), sorted.
func added(prev, next []string) []string {
	left := map[string]int{}
	for _, s := range prev {
		left[s]++
	}
	var out []string
	for _, s := range next {
		if left[s] > 0 {
			left[s]--
			continue
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func edges(w *Workflow) []string {
	out := make([]string, len(w.Edges))
	for i, e := range w.Edges {
		out[i] = e.From + " → " + e.To
	}
	return out
}

func triggers(w *Workflow) []string {
	out := make([]string, len(w.Triggers))
	for i, t := range w.Triggers {
		out[i] = DescribeTrigger(t)
	}
	return out
}

func sidecars(w *Workflow) map[string]Sidecar {
	m := make(map[string]Sidecar, len(w.Sidecars))
	for _, s := range w.Sidecars {
		m[s.Name] = s
	}
	return m
}

// DescribeTrigger says what starts a run in a few words: "manual",
// "cron 0 9 * * 1-5 (weekday-morning)", "webhook /hook from github on
// push [opened, closed]". Everything that tells two triggers apart is
// in it.
func DescribeTrigger(t Trigger) string {
	var b strings.Builder
	b.WriteString(string(t.Type))
	switch t.Type {
	case TriggerCron:
		b.WriteString(" " + t.Schedule)
		if t.Timezone != "" {
			b.WriteString(" in " + t.Timezone)
		}
	case TriggerQueue:
		b.WriteString(" " + t.Subject)
	case TriggerWebhook:
		b.WriteString(" " + t.Path)
		if t.Provider != "" {
			b.WriteString(" from " + t.Provider)
		}
		if t.Event != "" {
			b.WriteString(" on " + t.Event)
		}
		if len(t.Actions) > 0 {
			b.WriteString(" [" + strings.Join(t.Actions, ", ") + "]")
		}
	}
	if t.Name != "" {
		b.WriteString(" (" + t.Name + ")")
	}
	return b.String()
}

// diffContracts compares the dependencies of two contracts, either of
// which may be nil.
func diffContracts(prev, next *Contract) []DependencyChange {
	deps := func(c *Contract) map[string]Dependency {
		if c == nil {
			return nil
		}
		return c.Dependencies
	}
	p, n := deps(prev), deps(next)
	var out []DependencyChange
	names := slices.Concat(slices.Collect(maps.Keys(p)), slices.Collect(maps.Keys(n)))
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		pd, inPrev := p[name]
		nd, inNext := n[name]
		switch {
		case !inPrev:
			out = append(out, DependencyChange{Name: name, After: reach(nd)})
		case !inNext:
			out = append(out, DependencyChange{Name: name, Before: reach(pd)})
		default:
			dc := DependencyChange{Name: name, Before: reach(pd), After: reach(nd), Fields: dependencyFields(pd, nd)}
			if dc.Before != dc.After || len(dc.Fields) > 0 {
				out = append(out, dc)
			}
		}
	}
	return out
}

// reach says where a dependency lets the tentacle connect, which is what
// its network policy opens.
func reach(d Dependency) string {
	var parts []string
	switch {
	case d.Type == dynamicTarget:
		parts = append(parts, "any host in "+d.CIDR+" on "+ports(d.DynPorts))
	case d.Host != "" && d.Port > 0:
		parts = append(parts, d.Host+":"+strconv.Itoa(d.Port))
	case d.Host != "":
		parts = append(parts, d.Host)
	case d.Exoskeleton():
		what := strings.TrimPrefix(d.Name, exoskeletonPrefix)
		if k, ok := exoskeletonKinds[d.Protocol]; ok {
			what = k.Title()
		}
		parts = append(parts, "the enclave's "+what)
	default:
		parts = append(parts, "no declared host")
	}
	for _, e := range d.AdditionalEgress {
		parts = append(parts, e.ToCIDR+" on "+ports(e.Ports))
	}
	return strings.Join(parts, ", plus ")
}

func ports(p []string) string {
	if len(p) == 0 {
		return "any port"
	}
	return strings.Join(p, ", ")
}

// dependencyFields names the settings other than reach that differ.
func dependencyFields(p, n Dependency) []string {
	var out []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"protocol", p.Protocol == n.Protocol},
		{"auth", reflect.DeepEqual(p.Auth, n.Auth)},
		{"database", p.Database == n.Database},
		{"user", p.User == n.User},
		{"subject", p.Subject == n.Subject},
		{"container", p.Container == n.Container},
		{"version", p.Version == n.Version},
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	a, r, ch := diffByName(p.Extra, n.Extra)
	return append(out, slices.Sorted(slices.Values(slices.Concat(a, r, ch)))...)
}

// looseVersion reads the version field of a workflow.yaml that does not
// pass Parse, as written; "" when even that fails.
func looseVersion(spec []byte) string {
	var doc struct {
		Version yaml.Node `yaml:"version"`
	}
	if yaml.Unmarshal(spec, &doc) != nil || doc.Version.Kind != yaml.ScalarNode {
		return ""
	}
	return doc.Version.Value
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
