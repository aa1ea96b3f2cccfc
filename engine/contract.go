package engine

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

// maxEnumerated bounds how many addresses of a dynamic-target CIDR are
// listed for Deno, which takes hosts, not ranges.
const maxEnumerated = 256

// NetAllowList is what the worker's --allow-net names: every contract
// dependency's host:port (an exoskeleton dependency's from the room its
// service granted), the addresses of small dynamic-target ranges, and
// each sidecar on localhost. Anything else a node tries is refused.
// A range too large to list is left to the NetworkPolicy, with a warning,
// rather than opening the network wholesale.
func NetAllowList(wf *tentacle.Workflow, services map[string]enclave.Space) (hosts, warnings []string) {
	add := func(host string, port int) {
		hosts = append(hosts, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	addRange := func(cidr string, ports []string, what string) {
		addrs, ok := enumerate(cidr)
		if !ok {
			warnings = append(warnings, fmt.Sprintf("%s: the range %s is too large for the node runtime's allow-list (at most %d addresses); nodes cannot reach it", what, cidr, maxEnumerated))
			return
		}
		for _, p := range ports {
			port, err := strconv.Atoi(strings.SplitN(p, "/", 2)[0])
			if err != nil {
				continue
			}
			for _, a := range addrs {
				add(a, port)
			}
		}
	}
	if c := wf.Contract; c != nil {
		for _, name := range c.DependencyNames {
			d := c.Dependencies[name]
			if sp, ok := services[name]; ok && d.Exoskeleton() {
				d.Host, d.Port = sp.Host, sp.Port
			}
			switch err := tentacle.CheckHost(d.Host); {
			case d.Host == "" || d.Port <= 0:
			case err != nil:
				// The parser refuses such hosts; a workflow built some other
				// way must not widen the allow-list either.
				warnings = append(warnings, fmt.Sprintf("dependency %s: host left out of the allow-list: %v", name, err))
			default:
				add(d.Host, d.Port)
			}
			if d.CIDR != "" {
				addRange(d.CIDR, d.DynPorts, "dependency "+name)
			}
			for _, e := range d.AdditionalEgress {
				addRange(e.ToCIDR, e.Ports, "dependency "+name)
			}
		}
	}
	for _, s := range wf.Sidecars {
		add("localhost", s.Port)
		add("127.0.0.1", s.Port)
	}
	slices.Sort(hosts)
	return slices.Compact(hosts), warnings
}

func enumerate(cidr string) ([]string, bool) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, false
	}
	prefix = prefix.Masked()
	if bits := prefix.Addr().BitLen() - prefix.Bits(); bits > 8 {
		return nil, false
	}
	var out []string
	for a := prefix.Addr(); prefix.Contains(a) && len(out) < maxEnumerated; a = a.Next() {
		out = append(out, a.String())
	}
	return out, true
}

// dependencyInfo is what ctx.dependency(name) returns: where the service
// is and the credential its auth.secret names, or for an exoskeleton
// dependency the room its service granted, credentials included. Keys
// the parser kept but does not interpret come along.
func dependencyInfo(wf *tentacle.Workflow, secrets map[string]any, services map[string]enclave.Space) map[string]map[string]any {
	out := map[string]map[string]any{}
	if wf.Contract == nil {
		return out
	}
	for _, name := range wf.Contract.DependencyNames {
		d := wf.Contract.Dependencies[name]
		info := map[string]any{}
		for k, v := range d.Extra {
			info[k] = v
		}
		info["protocol"] = d.Protocol
		info["host"] = d.Host
		info["port"] = d.Port
		for k, v := range map[string]string{"database": d.Database, "user": d.User, "subject": d.Subject, "container": d.Container} {
			if v != "" {
				info[k] = v
			}
		}
		if d.Auth != nil {
			info["authType"] = d.Auth.Type
			if v, ok := tentacle.LookupSecret(secrets, d.Auth.Secret); ok {
				info["secret"] = v
			}
		}
		if sp, ok := services[name]; ok && d.Exoskeleton() {
			maps.Copy(info, spaceInfo(sp))
		}
		out[name] = info
	}
	return out
}

// spaceInfo is a granted room as a node reads it, under the Space's JSON
// names ("host", "database", "secret", ...).
func spaceInfo(sp enclave.Space) map[string]any {
	b, err := json.Marshal(sp)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	// JSON numbers decode as float64; the port is an integer to nodes.
	m["port"] = sp.Port
	return m
}

// serviceSecrets are the credentials of granted rooms, for the log
// redactor.
func serviceSecrets(services map[string]enclave.Space) map[string]any {
	out := map[string]any{}
	for name, sp := range services {
		out[name] = map[string]any{"secret": sp.Secret, "token": sp.Token}
	}
	return out
}
