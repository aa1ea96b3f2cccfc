package k8stest

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kraken-ops/kraken/tentacle"
)

// defaultEnginePort is `kraken engine`'s --port default.
const defaultEnginePort = 8080

// mount is a container path and the local directory standing in for it.
type mount struct {
	path  string // in the container, clean and absolute
	local string
}

// engineCommand finds `... engine ARGS` in a container's command and args
// and returns ARGS; ok is false for containers that are not the engine.
func engineCommand(command, args []string) (engineArgs []string, ok bool) {
	full := append(slices.Clip(command), args...)
	i := slices.Index(full, "engine")
	if i < 0 {
		return nil, false
	}
	return full[i+1:], true
}

// localPath maps a path inside the container to this machine: under the
// longest mount that holds it, or else under rootfs, which stands for the
// image's filesystem (nothing of which exists here).
func localPath(p string, mounts []mount, rootfs string) string {
	p = filepath.Clean(p)
	best := -1
	for i, m := range mounts {
		if (p == m.path || strings.HasPrefix(p, m.path+"/") || m.path == "/") &&
			(best < 0 || len(m.path) > len(mounts[best].path)) {
			best = i
		}
	}
	if best < 0 {
		return filepath.Join(rootfs, p)
	}
	rel, _ := filepath.Rel(mounts[best].path, p)
	return filepath.Join(mounts[best].local, rel)
}

// boolFlags are the engine's flags that take no value.
var boolFlags = map[string]bool{"v": true}

// rewriteEngineArgs turns a pod's `kraken engine` arguments into ones for
// a process on this machine: every absolute path goes through localPath,
// --port becomes port and --addr 127.0.0.1 (so parallel engines do not
// collide), --deno becomes deno, and --mounted-secrets is made explicit,
// since its default (/app/secrets) would otherwise be read from this
// machine. containerPort is the port the engine listens on in the pod,
// which a Service's targetPort names.
func rewriteEngineArgs(args []string, mounts []mount, rootfs string, port int, deno string) (out []string, containerPort int) {
	containerPort = defaultEnginePort
	secrets := false
	var after []string
	path := func(v string) string {
		if strings.HasPrefix(v, "/") {
			return localPath(v, mounts, rootfs)
		}
		return v
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" { // the rest is not flags: keep it last
			for _, rest := range args[i:] {
				after = append(after, path(rest))
			}
			break
		}
		if !strings.HasPrefix(a, "-") {
			out = append(out, path(a))
			continue
		}
		name, value, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if boolFlags[name] {
			out = append(out, a)
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				out = append(out, a) // the engine will say what is missing
				continue
			}
			i++
			value = args[i]
		}
		switch name {
		case "port":
			if n, err := strconv.Atoi(value); err == nil {
				containerPort = n
			}
			continue
		case "addr", "deno":
			continue
		case "mounted-secrets":
			secrets = true
		}
		out = append(out, "--"+name, path(value))
	}
	if !secrets {
		out = append(out, "--mounted-secrets", localPath(tentacle.DefaultMountedSecrets, mounts, rootfs))
	}
	out = append(out, "--port", strconv.Itoa(port), "--addr", "127.0.0.1", "--deno", deno)
	return append(out, after...), containerPort
}
