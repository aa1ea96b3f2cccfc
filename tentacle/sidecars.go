package tentacle

import (
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	sidecarKeys      = []string{"args", "command", "env", "healthPath", "image", "name", "port", "protocol", "resources"}
	sidecarProtocols = []string{"http", "grpc"}
)

const (
	// enginePort is the tentacle's own HTTP port in the pod.
	enginePort     = 8080
	minSidecarPort = 1024
	maxPort        = 65535
)

func (r *report) sidecars(o *object) []Sidecar {
	n := o.get("sidecars")
	if n == nil || !r.mustBeList(n, "sidecars", "sidecars") {
		return nil
	}
	names := map[string]*yaml.Node{}
	ports := map[string]*yaml.Node{}
	out := make([]Sidecar, 0, len(n.Content))
	for i, item := range n.Content {
		if s, ok := r.sidecar(item, index("sidecars", i), names, ports); ok {
			out = append(out, s)
		}
	}
	return out
}

func (r *report) sidecar(item *yaml.Node, field string, names, ports map[string]*yaml.Node) (Sidecar, bool) {
	o, ok := r.object(item, item, field)
	if !ok {
		return Sidecar{}, false
	}
	o.only(sidecarKeys...)
	// Sidecar strings end up in a pod manifest, where a newline could
	// smuggle in fields of its own.
	walkScalars(item, field, func(n *yaml.Node, field string) {
		if strings.ContainsAny(n.Value, "\r\n") {
			r.errorf(n, field, "must not contain newlines")
		}
	})
	s := Sidecar{Protocol: "http", HealthPath: "/health"}
	if name, n := o.required("name"); n != nil {
		if err := checkIdent("sidecar name", name); err != nil {
			r.errorf(n, o.path("name"), "%v", err)
		}
		r.unique(names, strconv.Quote(name), n, o.path("name"), "sidecar name")
		s.Name = name
	}
	s.Image, _ = o.required("image")
	s.Command = o.strs("command", nil)
	s.Args = o.strs("args", nil)
	s.Port = r.sidecarPort(o, ports)
	if p, n := o.str("protocol"); n != nil {
		if !slices.Contains(sidecarProtocols, p) {
			r.errorf(n, o.path("protocol"), "unknown protocol %q (one of %s)", p, oneOf(sidecarProtocols))
		}
		s.Protocol = p
	}
	if hp, n := o.str("healthPath"); n != nil {
		if !strings.HasPrefix(hp, "/") {
			r.errorf(n, o.path("healthPath"), "%q must start with '/'", hp)
		}
		s.HealthPath = hp
	}
	s.Env = o.strMap("env")
	s.Resources = o.plainMap("resources")
	return s, true
}

func (r *report) sidecarPort(o *object, ports map[string]*yaml.Node) int {
	p, n, ok := o.int("port")
	switch {
	case n == nil:
		o.need("port")
		return 0
	case !ok:
		return 0
	case p < minSidecarPort || p > maxPort:
		r.errorf(n, o.path("port"), "must be between %d and %d, got %d", minSidecarPort, maxPort, p)
	case p == enginePort:
		r.errorf(n, o.path("port"), "%d is the tentacle engine's own port", enginePort)
	default:
		r.unique(ports, strconv.Itoa(p), n, o.path("port"), "sidecar port")
	}
	return p
}
