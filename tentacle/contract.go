package tentacle

import (
	"fmt"
	"maps"
	"slices"

	"gopkg.in/yaml.v3"
)

var (
	contractKeys   = []string{"dependencies", "version"}
	dependencyKeys = []string{
		"auth", "cidr", "container", "database", "dynPorts", "host", "networkPolicy",
		"port", "protocol", "subject", "type", "user", "version",
	}
	authKeys  = []string{"secret", "type"}
	authTypes = []string{"token", "api_key", "basic", "password", "none"}
)

// dynamicTarget is the dependency type whose host is chosen at run time.
const dynamicTarget = "dynamic-target"

// contractVersion is the only contract format there is.
const contractVersion = "1"

// protocolNeeds lists the fields each known protocol cannot work without.
var protocolNeeds = map[string][]string{
	ProtocolHTTPS:      {"host"},
	ProtocolHTTP:       {"host"},
	ProtocolPostgreSQL: {"host", "database", "user"},
	ProtocolNATS:       {"host", "subject"},
	ProtocolBlob:       {"host", "container"},
	ProtocolS3:         {"host"},
}

var defaultPorts = map[string]int{
	ProtocolHTTPS:      443,
	ProtocolHTTP:       80,
	ProtocolPostgreSQL: 5432,
	ProtocolNATS:       4222,
	ProtocolS3:         443,
}

// contract reads the contract block; nil when there is none.
func (r *report) contract(o *object) *Contract {
	if o.get("contract") == nil {
		return nil
	}
	c := &Contract{Dependencies: map[string]Dependency{}}
	co, ok := o.child("contract")
	if !ok {
		return c
	}
	// Unknown keys only warn: real contracts carry keys we do not use.
	co.onlyWarn(contractKeys...)
	// Unquoted 1 reads as written, so "1" and 1 both pass.
	v, vn := co.required("version")
	if vn != nil && v != contractVersion {
		r.errorf(vn, co.path("version"), "unsupported contract version %q; must be %q", v, contractVersion)
	}
	c.Version = v
	if co.get("dependencies") == nil {
		return c
	}
	do, ok := co.child("dependencies")
	if !ok {
		return c
	}
	for i, k := range do.keys {
		name := k.Value
		if err := checkIdent("dependency name", name); err != nil {
			r.errorf(k, do.path(name), "%v", err)
		}
		c.Dependencies[name] = r.dependency(do.vals[i], k, do.path(name), name)
	}
	c.DependencyNames = slices.Sorted(maps.Keys(c.Dependencies))
	return c
}

func (r *report) dependency(n, key *yaml.Node, field, name string) Dependency {
	d := Dependency{Name: name}
	o, ok := r.object(n, key, field)
	if !ok {
		return d
	}
	d.Protocol, _ = o.str("protocol")
	d.Host = r.checked(o, "host", CheckHost)
	d.Database, _ = o.str("database")
	d.User, _ = o.str("user")
	d.Subject = r.checked(o, "subject", checkNATSSubject)
	d.Container, _ = o.str("container")
	d.Version, _ = o.str("version")
	d.Type, _ = o.str("type")
	d.CIDR = r.checked(o, "cidr", checkCIDR)
	d.DynPorts = o.strs("dynPorts", checkPortSpec)
	d.Port = r.port(o, d.Protocol)
	d.Auth = r.auth(o)
	d.AdditionalEgress = r.networkPolicy(o)
	// Keys this version does not know are kept, never rejected: real
	// contracts carry some (e.g. channels).
	for _, i := range o.unknown(dependencyKeys) {
		if d.Extra == nil {
			d.Extra = map[string]any{}
		}
		d.Extra[o.keys[i].Value] = plainValue(o.vals[i])
	}
	r.dependencyNeeds(o, d)
	return d
}

// dependencyNeeds reports the fields d's kind of dependency cannot do
// without.
func (r *report) dependencyNeeds(o *object, d Dependency) {
	if d.Type == dynamicTarget {
		o.need("cidr")
		switch n := o.get("dynPorts"); {
		case n == nil:
			o.need("dynPorts")
		case n.Kind == yaml.SequenceNode && len(n.Content) == 0:
			r.errorf(n, o.path("dynPorts"), "a dynamic-target needs at least one port, e.g. [\"443/TCP\"]")
		}
		return
	}
	if d.Type != "" {
		r.warnf(o.value("type"), o.path("type"), "unknown dependency type %q is ignored (only %q has a meaning)", d.Type, dynamicTarget)
	}
	if d.Protocol == "" {
		o.need("protocol")
		return
	}
	// Exoskeleton services are filled in at deploy time, by the service
	// that speaks the protocol.
	if d.Exoskeleton() {
		if _, ok := exoskeletonKinds[d.Protocol]; !ok {
			r.errorf(o.value("protocol"), o.path("protocol"), "%s is one of the enclave's services, which speak %s, %s or %s, not %q",
				d.Name, ProtocolPostgreSQL, ProtocolS3, ProtocolNATS, d.Protocol)
		}
		return
	}
	needs, known := protocolNeeds[d.Protocol]
	if !known {
		r.warnf(o.value("protocol"), o.path("protocol"), "unknown protocol %q; the dependency is kept but not checked%s",
			d.Protocol, didYouMean(d.Protocol, slices.Sorted(maps.Keys(protocolNeeds))))
		return
	}
	for _, key := range needs {
		o.need(key)
	}
}

// port reads the port, defaulting it from the protocol.
func (r *report) port(o *object, protocol string) int {
	p, n, ok := o.int("port")
	switch {
	case n == nil:
		return defaultPorts[protocol]
	case !ok:
		return 0
	case p < 1 || p > 65535:
		r.errorf(n, o.path("port"), "must be between 1 and 65535, got %d", p)
		return 0
	}
	return p
}

func (r *report) auth(o *object) *Auth {
	if o.get("auth") == nil {
		return nil
	}
	ao, ok := o.child("auth")
	if !ok {
		return nil
	}
	ao.only(authKeys...)
	a := &Auth{}
	var tn *yaml.Node
	a.Type, tn = ao.required("type")
	if tn != nil && !slices.Contains(authTypes, a.Type) {
		r.errorf(tn, ao.path("type"), "unknown auth type %q%s (one of %s)", a.Type, didYouMean(a.Type, authTypes), oneOf(authTypes))
	}
	a.Secret = r.checked(ao, "secret", checkSecretRef)
	if tn != nil && a.Type != "none" {
		ao.need("secret")
	}
	return a
}

// networkPolicy reads networkPolicy.additionalEgress. Unknown keys only
// warn, as inside the rest of a dependency.
func (r *report) networkPolicy(o *object) []Egress {
	if o.get("networkPolicy") == nil {
		return nil
	}
	po, ok := o.child("networkPolicy")
	if !ok {
		return nil
	}
	po.onlyWarn("additionalEgress")
	n := po.get("additionalEgress")
	field := po.path("additionalEgress")
	if n == nil || !r.mustBeList(n, field, "egress rules") {
		return nil
	}
	out := make([]Egress, 0, len(n.Content))
	for i, item := range n.Content {
		eo, ok := r.object(item, item, fmt.Sprintf("%s[%d]", field, i))
		if !ok {
			continue
		}
		eo.onlyWarn("ports", "reason", "toCIDR")
		e := Egress{}
		e.ToCIDR = r.checked(eo, "toCIDR", checkCIDR)
		eo.need("toCIDR")
		e.Ports = eo.strs("ports", checkPortSpec)
		e.Reason, _ = eo.str("reason")
		out = append(out, e)
	}
	return out
}
