package tentacle

import "gopkg.in/yaml.v3"

// MaxSpecSize is the largest workflow.yaml accepted; real ones are a few
// KiB, and the cap bounds the parser's memory.
const MaxSpecSize = 1 << 20

// topLevelKeys are the fields of workflow.yaml, sorted.
var topLevelKeys = []string{
	"config", "contract", "deployment", "description", "edges", "metadata",
	"name", "nodes", "sidecars", "triggers", "version",
}

// Parse reads and validates a workflow.yaml. file names it in problems.
// On failure the error is a *SpecError listing every problem found, in
// file order. It does not look at the node files; Load does.
func Parse(file string, data []byte) (*Workflow, error) {
	p := parse(file, data)
	if err := p.r.err(); err != nil {
		return nil, err
	}
	return p.wf, nil
}

// parsed is a workflow read as far as its problems allowed, with what
// Load needs to check the node files.
type parsed struct {
	r  *report
	wf *Workflow // nil when the document itself is unusable
	// nodePaths holds the path value of every node whose path is well
	// formed, to locate problems with the file it names.
	nodePaths map[string]*yaml.Node
}

func parse(file string, data []byte) *parsed {
	p := &parsed{r: &report{file: file}}
	root := p.document(data)
	if root == nil {
		return p
	}
	r := p.r
	o, _ := r.object(root, root, "")
	o.only(topLevelKeys...)

	w := &Workflow{}
	w.Name = r.name(o)
	w.Version = r.version(o)
	w.Description, _ = o.str("description")
	w.Triggers = r.triggers(o)
	w.Nodes, w.NodeIDs, p.nodePaths = r.nodes(o)
	w.Edges = r.edges(o, w.NodeIDs)
	w.Config = r.config(o)
	w.Contract = r.contract(o)
	w.Sidecars = r.sidecars(o)
	w.Deployment = o.plainMap("deployment")
	w.Metadata = o.plainMap("metadata")
	sortProblems(r.warns)
	w.Warnings = r.warns
	p.wf = w
	return p
}

// document returns the root mapping of data, or nil after reporting why
// there is none worth reading.
func (p *parsed) document(data []byte) *yaml.Node {
	r := p.r
	if len(data) > MaxSpecSize {
		r.errorf(nil, "", "the file is larger than %d KiB", MaxSpecSize>>10)
		return nil
	}
	root, ok := decodeYAML(r, data)
	if !ok {
		return nil
	}
	if root == nil {
		r.errorf(nil, "", "the file is empty; a workflow needs at least name, version and nodes")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		r.errorf(root, "", "a workflow must be a mapping of fields (name, version, nodes, ...), got %s", describe(root))
		return nil
	}
	dups, noAliases := checkTree(root, func(at *yaml.Node, field, msg string) {
		r.errorf(at, field, "%s", msg)
	})
	r.dupKeys = dups
	if !noAliases {
		return nil
	}
	return root
}

func (r *report) name(o *object) string {
	s, n := o.required("name")
	if n != nil {
		if err := checkTentacleName(s); err != nil {
			r.errorf(n, "name", "%v", err)
		}
	}
	return s
}

// version is read as written, so that 1.10 is not the float 1.1.
func (r *report) version(o *object) string {
	s, n := o.required("version")
	if n != nil {
		if err := checkSpecVersion(s); err != nil {
			r.errorf(n, "version", "%v", err)
		}
	}
	return s
}

// mustBeList reports n when it is not a sequence.
func (r *report) mustBeList(n *yaml.Node, field, what string) bool {
	if n.Kind != yaml.SequenceNode {
		r.errorf(n, field, "must be a list of %s, got %s", what, describe(n))
		return false
	}
	return true
}

// unique reports at n a second use of value, as shown, among seen.
func (r *report) unique(seen map[string]*yaml.Node, value string, n *yaml.Node, field, what string) {
	if first := seen[value]; first != nil {
		r.errorf(n, field, "duplicate %s %s; first used at line %d", what, value, first.Line)
		return
	}
	seen[value] = n
}
