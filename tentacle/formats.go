package tentacle

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
)

// Name and value formats shared with Tentacular, so that its tentacles
// validate here unchanged.
var (
	// tentacleName is a DNS label: the name ends up in Kubernetes objects.
	tentacleName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	// identName is for nodes, triggers, dependencies and sidecars.
	identName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	// specVersion is N.N (theirs) or N.N.N (ours too).
	specVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`)
	webhookPath = regexp.MustCompile(`^/[A-Za-z0-9/_.-]*$`)
	secretRef   = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$`)
	portSpec    = regexp.MustCompile(`^([0-9]+)/(TCP|UDP)$`)
	// hostLabel is one label of a DNS name (RFC 1123, any case).
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

const maxTentacleName = 63

const identRule = "must start with a lowercase letter and contain only lowercase letters, digits, '_' and '-'"

// nodeExtensions are the files the Deno engine runs as nodes.
var nodeExtensions = []string{".ts", ".tsx", ".mts", ".js", ".mjs"}

func checkTentacleName(s string) error {
	switch {
	case len(s) > maxTentacleName:
		return fmt.Errorf("must be at most %d characters, got %d", maxTentacleName, len(s))
	case !tentacleName.MatchString(s):
		return fmt.Errorf("%q must be kebab-case (lowercase letters and digits separated by single '-'), e.g. \"my-tentacle\"", s)
	}
	return nil
}

func checkIdent(what, s string) error {
	if !identName.MatchString(s) {
		return fmt.Errorf("%s %q %s", what, s, identRule)
	}
	return nil
}

// CheckHost accepts a DNS name or an IP address and nothing else: the
// host ends up in the node runtime's network allow-list and in a
// NetworkPolicy, where a comma, a range or a port would open more than
// the contract says.
func CheckHost(s string) error {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return nil
	}
	bad := fmt.Errorf("%q must be a host name (e.g. api.example.com) or an IP address, without a scheme, port, path or range", s)
	if len(s) > 253 {
		return bad
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !hostLabel.MatchString(label) {
			return bad
		}
	}
	return nil
}

func checkSpecVersion(s string) error {
	if !specVersion.MatchString(s) {
		return fmt.Errorf("%q must be N.N or N.N.N, e.g. \"1.0\"", s)
	}
	return nil
}

// checkCron accepts what the scheduler will run: five fields or a
// descriptor (@hourly, @every 5m).
func checkCron(s string) error {
	// The zone has its own field; robfig/cron v3.0.1 also panics on a
	// "TZ=" prefix without a following space.
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return errors.New("put the time zone in the trigger's timezone field, not in the schedule")
	}
	if _, err := cron.ParseStandard(s); err != nil {
		return fmt.Errorf("invalid cron schedule %q: %w", s, err)
	}
	return nil
}

func checkTimezone(s string) error {
	// "Local" would mean whatever zone the pod happens to run in.
	if s == "Local" {
		return errors.New(`"Local" depends on the host; use an IANA zone name such as "Europe/Paris"`)
	}
	if _, err := time.LoadLocation(s); err != nil {
		return fmt.Errorf("unknown time zone %q; use an IANA zone name such as \"Europe/Paris\"", s)
	}
	return nil
}

// checkNATSSubject follows NATS: dot-separated tokens, wildcards only as
// whole tokens, ">" only last.
func checkNATSSubject(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("subject %q must not contain spaces or control characters", s)
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("subject %q has an empty token (leading, trailing or doubled '.')", s)
		case t == ">" && i != len(tokens)-1:
			return fmt.Errorf("subject %q: the '>' wildcard may only be the last token", s)
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("subject %q: wildcards '*' and '>' must be whole tokens", s)
		}
	}
	return nil
}

func checkWebhookPath(s string) error {
	switch {
	case !strings.HasPrefix(s, "/"):
		return fmt.Errorf("webhook path %q must start with '/'", s)
	case strings.Contains(s, ".."):
		return fmt.Errorf("webhook path %q must not contain '..'", s)
	case !webhookPath.MatchString(s):
		return fmt.Errorf("webhook path %q may only contain letters, digits and / _ . -", s)
	}
	return nil
}

// checkNodePath keeps node files inside the tentacle directory as far as
// the text of the path can tell; Load checks symlinks on disk.
func checkNodePath(p string) error {
	const inside = "node files must stay inside the tentacle directory"
	switch {
	case strings.Contains(p, `\`):
		return fmt.Errorf("path %q must use '/' as separator", p)
	case path.IsAbs(p):
		return fmt.Errorf("path %q must be relative: %s", p, inside)
	}
	clean := path.Clean(p)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("path %q leads outside the tentacle directory: %s", p, inside)
	}
	for _, ext := range nodeExtensions {
		if path.Ext(clean) == ext {
			return nil
		}
	}
	return fmt.Errorf("path %q must be a TypeScript or JavaScript file (%s)", p, oneOf(nodeExtensions))
}

// checkPortSpec accepts Kubernetes-style "443/TCP".
func checkPortSpec(s string) error {
	m := portSpec.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("%q must be PORT/PROTOCOL, e.g. \"443/TCP\" (TCP or UDP)", s)
	}
	if p, err := strconv.Atoi(m[1]); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port must be between 1 and 65535", s)
	}
	return nil
}

func checkCIDR(s string) error {
	if _, err := netip.ParsePrefix(s); err != nil {
		return fmt.Errorf("invalid CIDR %q, e.g. \"10.0.0.0/8\": %w", s, err)
	}
	return nil
}

func checkSecretRef(s string) error {
	if !secretRef.MatchString(s) {
		return fmt.Errorf("secret %q must be \"name.key\", e.g. \"github.token\"", s)
	}
	return nil
}
