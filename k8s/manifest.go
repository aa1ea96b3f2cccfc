package k8s

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
)

// Labels and annotations of tentacle objects, beside the common ones.
const (
	LabelName     = "app.kubernetes.io/name"
	LabelRevision = "kraken.dev/revision"

	AnnotationRevision    = "kraken.dev/revision"
	AnnotationDigest      = "kraken.dev/digest"
	AnnotationVersion     = "kraken.dev/version"
	AnnotationFiles       = "kraken.dev/files"       // on a revision: JSON {path: ConfigMap key}
	AnnotationRollbackOf  = "kraken.dev/rollback-of" // on a revision made by Rollback: the revision it copies
	AnnotationEgress      = "kraken.dev/egress"      // on the egress policy: the allow-list it enforces
	AnnotationRestartedAt = "kraken.dev/restartedAt" // on the pod template, set by Restart
	AnnotationRestartedBy = "kraken.dev/restarted-by"
)

// Where things are inside a tentacle pod.
const (
	EngineContainer = "engine"
	EnginePort      = 8080
	WorkflowPath    = "/app/workflow"
	SecretsPath     = tentacle.DefaultMountedSecrets
	ServicesPath    = engine.DefaultServicesPath
	SharedPath      = "/shared"
	// TentacleServiceAccount runs tentacle pods; the enclave creates it
	// with no API rights and no token.
	TentacleServiceAccount = "tentacle"
	// DefaultRuntimeClass is the gVisor RuntimeClass used when the
	// cluster has it.
	DefaultRuntimeClass = "gvisor"
	// NoRuntimeClass as Config.RuntimeClass turns gVisor off: tentacle
	// pods get no runtimeClassName, the RuntimeClass is not looked up and
	// deploys do not warn about it. The Helm chart passes it when
	// gvisor.enabled is false (an empty Config.RuntimeClass means
	// DefaultRuntimeClass, so it cannot be the off switch).
	NoRuntimeClass = "none"
	// MaxRevisions is how many revisions of a tentacle are kept.
	MaxRevisions = 10
	// nobody is the uid and gid tentacle containers run as.
	nobody = 65534
	// maxObjectSize bounds a revision's ConfigMap (its keys, files and
	// annotations together) and a tentacle's Secret (keys and values).
	// The API server counts only the values against its own 1 MiB, but
	// the whole object has to fit in one etcd request too: counting
	// everything keeps a clear margin.
	maxObjectSize = 1 << 20
	// maxAnnotations is the API server's bound on an object's
	// annotations (keys and values).
	maxAnnotations = 256 << 10
)

// Object names of a tentacle.
func secretName(name string) string            { return name + "-secrets" }
func servicesName(name string) string          { return name + "-services" }
func policyName(name string) string            { return name + "-egress" }
func revisionName(name string, rev int) string { return name + "-r" + strconv.Itoa(rev) }
func tentacleSelector(name string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelTentacle: name}
}

// tentacleLabels are on every object of a tentacle and on its pods.
func tentacleLabels(enc, name string) map[string]string {
	l := enclaveLabels(enc)
	l[LabelTentacle] = name
	l[LabelName] = name
	return l
}

// resource bounds of a tentacle's containers.
type resources struct {
	reqCPU, reqMemory, limCPU, limMemory resource.Quantity
}

var (
	engineDefaults  = mustResources("100m", "128Mi", "500m", "256Mi")
	sidecarDefaults = mustResources("50m", "64Mi", "250m", "128Mi")
	minCPU          = resource.MustParse("10m")
	minMemory       = resource.MustParse("32Mi")
	maxCPU          = resource.MustParse("2")
	maxMemory       = resource.MustParse("2Gi")
)

func mustResources(reqCPU, reqMem, limCPU, limMem string) resources {
	return resources{resource.MustParse(reqCPU), resource.MustParse(reqMem), resource.MustParse(limCPU), resource.MustParse(limMem)}
}

// parseResources reads a Kubernetes-shaped resources block
//
//	resources: {requests: {cpu: 200m, memory: 256Mi}, limits: {cpu: "1", memory: 512Mi}}
//
// over defaults, keeping every value within [minCPU, maxCPU] and
// [minMemory, maxMemory] and requests at most limits. A request above
// the default limit raises the limit, and a limit below the default
// request lowers the request, so that setting one value is enough.
func parseResources(raw any, def resources, field string) (resources, error) {
	r := def
	if raw == nil {
		return r, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return r, fmt.Errorf("%s must be a map with requests and limits", field)
	}
	set := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "requests" && k != "limits" {
			return r, fmt.Errorf("%s.%s: unknown key; use requests and limits", field, k)
		}
		sub, ok := m[k].(map[string]any)
		if !ok {
			return r, fmt.Errorf("%s.%s must be a map with cpu and memory", field, k)
		}
		for _, res := range slices.Sorted(maps.Keys(sub)) {
			f := field + "." + k + "." + res
			q, err := resource.ParseQuantity(fmt.Sprint(sub[res]))
			if err != nil {
				return r, fmt.Errorf("%s: %q is not a quantity (like 250m or 256Mi)", f, fmt.Sprint(sub[res]))
			}
			var lo, hi resource.Quantity
			var dst *resource.Quantity
			switch {
			case res == "cpu" && k == "requests":
				dst, lo, hi = &r.reqCPU, minCPU, maxCPU
			case res == "cpu":
				dst, lo, hi = &r.limCPU, minCPU, maxCPU
			case res == "memory" && k == "requests":
				dst, lo, hi = &r.reqMemory, minMemory, maxMemory
			case res == "memory":
				dst, lo, hi = &r.limMemory, minMemory, maxMemory
			default:
				return r, fmt.Errorf("%s: only cpu and memory can be set", f)
			}
			if q.Cmp(lo) < 0 || q.Cmp(hi) > 0 {
				return r, fmt.Errorf("%s: %s is outside the range a tentacle may use (%s to %s)", f, q.String(), lo.String(), hi.String())
			}
			*dst = q
			set[k+"."+res] = true
		}
	}
	fix := func(req, lim *resource.Quantity, what string) error {
		if req.Cmp(*lim) <= 0 {
			return nil
		}
		switch {
		case set["requests."+what] && set["limits."+what]:
			return fmt.Errorf("%s: the %s request %s is more than its limit %s", field, what, req.String(), lim.String())
		case set["requests."+what]:
			*lim = req.DeepCopy()
		default:
			*req = lim.DeepCopy()
		}
		return nil
	}
	if err := fix(&r.reqCPU, &r.limCPU, "cpu"); err != nil {
		return r, err
	}
	return r, fix(&r.reqMemory, &r.limMemory, "memory")
}

func (r resources) apply() *corev1ac.ResourceRequirementsApplyConfiguration {
	return corev1ac.ResourceRequirements().
		WithRequests(corev1.ResourceList{corev1.ResourceCPU: r.reqCPU, corev1.ResourceMemory: r.reqMemory}).
		WithLimits(corev1.ResourceList{corev1.ResourceCPU: r.limCPU, corev1.ResourceMemory: r.limMemory})
}

// denoHeapMB keeps the node runtime's heap well inside the container's
// memory limit, so a greedy node fails alone in the runtime (which the
// engine restarts) instead of getting the whole container OOM-killed.
func (r resources) denoHeapMB() int {
	return max(64, int(r.limMemory.Value()>>20)/2)
}

// deployment is everything the objects of one revision are built from,
// checked before anything is written.
type deployment struct {
	enclave, name string
	revision      int
	digest        string
	version       string
	rollbackOf    int // 0 unless made by Rollback
	files         map[string][]byte
	keys          map[string]string // file path -> ConfigMap key
	workflow      *tentacle.Workflow
	// secrets is nil when the Secret is to be left as it is (rollback).
	secrets map[string][]byte
	// services are the rooms granted on the enclave's services, by
	// dependency name; nil leaves their Secret as it is (rollback).
	services     map[string]enclave.Space
	engine       resources
	sidecars     []sidecar
	egress       []string // the node runtime's allow-list: host:port
	image        string
	nodeSelector map[string]string
	runtimeClass string // empty: the cluster's default runtime
	by, channel  string
	at           time.Time
}

type sidecar struct {
	tentacle.Sidecar
	container string // the container name, valid as a DNS label
	res       resources
}

var dnsLabel = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// newDeployment checks a bundle and prepares its objects; nothing it
// refuses reaches the cluster.
func newDeployment(enc string, b *tentacle.Bundle, rev int, p enclave.Provenance, image string) (*deployment, error) {
	if b == nil || b.Workflow == nil {
		return nil, fmt.Errorf("the bundle has no workflow")
	}
	wf := b.Workflow
	if !dnsLabel.MatchString(wf.Name) || len(wf.Name) > 63 {
		// The Service is named after the tentacle, and Service names
		// are DNS labels that start with a letter.
		return nil, fmt.Errorf("tentacle name %q cannot be used in a cluster: it must start with a letter and have at most 63 characters", wf.Name)
	}
	// Paths end up in the pod's volume, where ".." would point outside
	// the tentacle's directory (and the API server refuses it, but only
	// at the Deployment, the last object written).
	if err := b.CheckPaths(); err != nil {
		return nil, err
	}
	if err := b.CheckSize(); err != nil {
		return nil, err
	}
	if _, ok := b.Files[tentacle.FileName]; !ok {
		return nil, fmt.Errorf("the bundle has no %s", tentacle.FileName)
	}
	if image == "" {
		return nil, fmt.Errorf("no engine image is configured (k8s.Config.Image)")
	}
	d := &deployment{
		enclave: enc, name: wf.Name, revision: rev, digest: b.Digest(), version: wf.Version,
		files: b.Files, keys: fileKeys(b.Files), workflow: wf, image: image,
		by: p.Actor, channel: p.Channel, at: p.At,
	}
	if d.at.IsZero() {
		d.at = time.Now()
	}
	if d.by == "" {
		d.by = "system"
	}
	var err error
	if d.engine, err = parseResources(wf.Deployment["resources"], engineDefaults, "deployment.resources"); err != nil {
		return nil, err
	}
	used := map[string]string{EngineContainer: "the engine"}
	for _, s := range wf.Sidecars {
		name := strings.ReplaceAll(s.Name, "_", "-")
		if !dnsLabel.MatchString(name) || len(name) > 63-len("tmp-") {
			return nil, fmt.Errorf("sidecar %q: its name cannot name a container (letters, digits and dashes, at most %d characters)", s.Name, 63-len("tmp-"))
		}
		if other, ok := used[name]; ok {
			return nil, fmt.Errorf("sidecar %q: its container would be named %q, like %s; rename the sidecar", s.Name, name, other)
		}
		used[name] = "sidecar " + s.Name
		if s.Image == "" || strings.TrimSpace(s.Image) != s.Image {
			// The API server refuses such an image only in pods, not in
			// the Deployment: its pods would never be created.
			return nil, fmt.Errorf("sidecar %q: its image %q must be a name with no spaces around it", s.Name, s.Image)
		}
		res, err := parseResources(s.Resources, sidecarDefaults, "sidecars."+s.Name+".resources")
		if err != nil {
			return nil, err
		}
		d.sidecars = append(d.sidecars, sidecar{Sidecar: s, container: name, res: res})
	}
	if b.Secrets != nil {
		if d.secrets, err = secretData(b.Secrets); err != nil {
			return nil, err
		}
		if err := checkSecretSize(d.secrets); err != nil {
			return nil, err
		}
	}
	d.services = b.Services
	if err := d.checkRevisionSize(); err != nil {
		return nil, err
	}
	return d, nil
}

// checkRevisionSize refuses a revision whose ConfigMap the API server
// would refuse, or that would not fit in maxObjectSize, with
// tentacle.ErrTooLarge. The files alone are within
// tentacle.MaxBundleSize already; their keys and the index of files (an
// annotation) come on top.
func (d *deployment) checkRevisionSize() error {
	// The size depends on the revision's number only by a few digits:
	// measure with the widest.
	probe := *d
	probe.revision, probe.rollbackOf = math.MaxInt32, math.MaxInt32
	cm, err := probe.revisionConfigMap()
	if err != nil {
		return err
	}
	files, keys, ann := 0, 0, 0
	for k, v := range cm.Data {
		keys, files = keys+len(k), files+len(v)
	}
	for k, v := range cm.BinaryData {
		keys, files = keys+len(k), files+len(v)
	}
	for k, v := range cm.Annotations {
		ann += len(k) + len(v)
	}
	if ann > maxAnnotations {
		return fmt.Errorf("%w: with the index of its %d files, the revision's annotations take %s (%d bytes), more than the %s Kubernetes allows; use fewer files or shorter paths",
			tentacle.ErrTooLarge, len(d.files), sizeText(ann), ann, sizeText(maxAnnotations))
	}
	if total := files + keys + ann; total > maxObjectSize {
		return fmt.Errorf("%w: its revision would take %s (%d bytes: files %s, their names and index %s), more than the %s a revision may hold; ship fewer or smaller files, or use shorter paths",
			tentacle.ErrTooLarge, sizeText(total), total, sizeText(files), sizeText(keys+ann), sizeText(maxObjectSize))
	}
	return nil
}

// checkSecretSize refuses secrets that would not fit in one Secret,
// naming the biggest (never their values).
func checkSecretSize(data map[string][]byte) error {
	total := 0
	for k, v := range data {
		total += len(k) + len(v)
	}
	if total <= maxObjectSize {
		return nil
	}
	names := slices.SortedFunc(maps.Keys(data), func(a, b string) int {
		return cmp.Or(cmp.Compare(len(data[b]), len(data[a])), strings.Compare(a, b))
	})
	var biggest []string
	for _, k := range names[:min(3, len(names))] {
		biggest = append(biggest, k+" ("+sizeText(len(data[k]))+")")
	}
	return fmt.Errorf("%w: its secrets add up to %s (%d bytes), more than the %s a Secret may hold; the biggest are %s",
		tentacle.ErrTooLarge, sizeText(total), total, sizeText(maxObjectSize), strings.Join(biggest, ", "))
}

// sizeText words a number of bytes; a round limit reads "1 MiB".
func sizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 2, 64) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// secretData encodes a tentacle's secrets as the engine reads them back
// from its mount: one file per top-level name holding its JSON, so a
// string stays a string (a bare text file would read back as
// {"value": text}). Errors name the secret, never its value.
func secretData(secrets map[string]any) (map[string][]byte, error) {
	out := make(map[string][]byte, len(secrets))
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		if err := tentacle.CheckSecretKey(k); err != nil {
			return nil, err
		}
		b, err := json.Marshal(secrets[k])
		if err != nil {
			return nil, fmt.Errorf("secret %q cannot be encoded as JSON", k)
		}
		out[k] = b
	}
	return out, nil
}

var configMapKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// fileKeys names each file's ConfigMap key. Keys cannot hold '/', so
// "nodes/a.ts" becomes "nodes__a.ts"; a path that would make an invalid
// or taken key gets one derived from its hash. The pod's volume maps
// keys back to paths, so keys need not be decodable.
func fileKeys(files map[string][]byte) map[string]string {
	keys := make(map[string]string, len(files))
	used := map[string]bool{}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		k := strings.ReplaceAll(p, "/", "__")
		if !configMapKey.MatchString(k) || len(k) > 253 || strings.HasPrefix(k, "..") || k == "." || used[k] {
			sum := sha256.Sum256([]byte(p))
			k = "f-" + hex.EncodeToString(sum[:12])
		}
		used[k] = true
		keys[p] = k
	}
	return keys
}

// annotations are the provenance every object of a revision carries.
func (d *deployment) annotations() map[string]string {
	a := map[string]string{
		AnnotationRevision: strconv.Itoa(d.revision),
		AnnotationDigest:   d.digest,
		AnnotationVersion:  d.version,
		AnnotationActor:    d.by,
		AnnotationAt:       d.at.UTC().Format(time.RFC3339),
	}
	if d.channel != "" {
		a[AnnotationChannel] = d.channel
	}
	return a
}

// revisionConfigMap holds the revision's files. It is created, never
// applied: an existing one means another deploy took this number.
func (d *deployment) revisionConfigMap() (*corev1.ConfigMap, error) {
	index, err := json.Marshal(d.keys)
	if err != nil {
		return nil, err
	}
	labels := tentacleLabels(d.enclave, d.name)
	labels[LabelRevision] = strconv.Itoa(d.revision)
	ann := d.annotations()
	ann[AnnotationFiles] = string(index)
	if d.rollbackOf > 0 {
		ann[AnnotationRollbackOf] = strconv.Itoa(d.rollbackOf)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: revisionName(d.name, d.revision), Namespace: d.enclave,
			Labels: labels, Annotations: ann,
		},
		Immutable: new(true),
	}
	for p, data := range d.files {
		k := d.keys[p]
		if utf8.Valid(data) {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[k] = string(data)
		} else {
			if cm.BinaryData == nil {
				cm.BinaryData = map[string][]byte{}
			}
			cm.BinaryData[k] = data
		}
	}
	return cm, nil
}

func (d *deployment) secret() *corev1ac.SecretApplyConfiguration {
	return corev1ac.Secret(secretName(d.name), d.enclave).
		WithLabels(tentacleLabels(d.enclave, d.name)).
		WithAnnotations(d.annotations()).
		WithType(corev1.SecretTypeOpaque).
		WithData(d.secrets)
}

// checkServices takes the rooms granted for the contract's exoskeleton
// dependencies. A deploy must bring one for each (the pods could not
// reach a service nobody granted); a rollback brings none and keeps the
// Secret there is.
func (d *deployment) checkServices() error {
	if d.services == nil && d.rollbackOf > 0 {
		return nil
	}
	for name := range d.workflow.Services() {
		if _, ok := d.services[name]; !ok {
			return fmt.Errorf("dependency %s is one of the enclave's services, and no room on it was granted for this deploy", name)
		}
	}
	return nil
}

// usesServices reports whether the pods mount the services Secret.
func (d *deployment) usesServices() bool { return len(d.workflow.Services()) > 0 }

// servicesSecret holds the granted rooms, one <dependency>.json each, as
// engine.LoadServices reads them.
func (d *deployment) servicesSecret() (*corev1ac.SecretApplyConfiguration, error) {
	data := make(map[string][]byte, len(d.services))
	for name, sp := range d.services {
		b, err := json.Marshal(sp)
		if err != nil {
			return nil, fmt.Errorf("service of dependency %s cannot be encoded", name)
		}
		data[name+".json"] = b
	}
	return corev1ac.Secret(servicesName(d.name), d.enclave).
		WithLabels(tentacleLabels(d.enclave, d.name)).
		WithAnnotations(d.annotations()).
		WithType(corev1.SecretTypeOpaque).
		WithData(data), nil
}

// serviceEgress opens each granted room's network: the services live
// inside the cluster or on private addresses, which the host-name rules
// of egressPolicy never open.
func (d *deployment) serviceEgress() []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration {
	var rules []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(d.services)) {
		for _, n := range d.services[name].Network {
			n.Port = cmp.Or(n.Port, d.services[name].Port)
			key := fmt.Sprintf("%s|%s|%v|%d", n.CIDR, n.Namespace, n.Pods, n.Port)
			if seen[key] || n.Port <= 0 {
				continue
			}
			seen[key] = true
			peer := networkingv1ac.NetworkPolicyPeer()
			switch {
			case n.CIDR != "":
				peer.WithIPBlock(networkingv1ac.IPBlock().WithCIDR(n.CIDR))
			case n.Namespace != "":
				peer.WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{corev1.LabelMetadataName: n.Namespace})).
					WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(n.Pods))
			default:
				continue
			}
			rules = append(rules, networkingv1ac.NetworkPolicyEgressRule().
				WithTo(peer).
				WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromInt32(int32(n.Port)))))
		}
	}
	return rules
}

func (d *deployment) service() *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(d.name, d.enclave).
		WithLabels(tentacleLabels(d.enclave, d.name)).
		WithAnnotations(d.annotations()).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(tentacleSelector(d.name)).
			WithPorts(corev1ac.ServicePort().
				WithName("http").
				WithProtocol(corev1.ProtocolTCP).
				WithPort(EnginePort).
				WithTargetPort(intstr.FromInt32(EnginePort))))
}

// egressPolicy opens exactly what the node runtime's allow-list names
// (d.egress, from engine.NetAllowList), plus DNS. Addresses become
// ipBlocks, merged into the fewest CIDRs that cover exactly them.
//
// A NetworkPolicy cannot name a host, so a dependency by host name opens
// its port to every public address: 0.0.0.0/0 and ::/0 except the
// private, carrier-grade NAT, link-local and loopback ranges (see
// anywhere). The two layers split the work: the node runtime's
// allow-list (Deno's --allow-net) restricts the nodes to the host name
// itself, and this policy restricts the rest of the pod, sidecars
// included, which run outside Deno: they can reach that port on public
// addresses only, never the cloud's metadata service (169.254.169.254)
// or in-cluster addresses. A dependency on a private address must
// therefore be given by address in the contract (it then gets exactly
// its /32), not by a host name that resolves to one. Clusters whose pod
// or Service ranges are public addresses are not covered by the
// exceptions. Loopback needs no rule: sidecars are reached on localhost.
func (d *deployment) egressPolicy() *networkingv1ac.NetworkPolicyApplyConfiguration {
	rules := []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration{dnsEgress()}
	for _, r := range egressRules(d.egress) {
		rule := networkingv1ac.NetworkPolicyEgressRule().
			WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromInt32(int32(r.port))))
		for _, b := range r.to {
			block := networkingv1ac.IPBlock().WithCIDR(b.cidr)
			if len(b.except) > 0 {
				block.WithExcept(b.except...)
			}
			rule.WithTo(networkingv1ac.NetworkPolicyPeer().WithIPBlock(block))
		}
		rules = append(rules, rule)
	}
	rules = append(rules, d.serviceEgress()...)
	ann := d.annotations()
	ann[AnnotationEgress] = strings.Join(slices.DeleteFunc(slices.Clone(d.egress), isLoopback), ",")
	return networkingv1ac.NetworkPolicy(policyName(d.name), d.enclave).
		WithLabels(tentacleLabels(d.enclave, d.name)).
		WithAnnotations(ann).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(tentacleSelector(d.name))).
			WithPolicyTypes(networkingv1.PolicyTypeEgress).
			WithEgress(rules...))
}

func dnsEgress() *networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration {
	port := intstr.FromInt32(53)
	return networkingv1ac.NetworkPolicyEgressRule().
		WithTo(networkingv1ac.NetworkPolicyPeer().
			WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{corev1.LabelMetadataName: metav1.NamespaceSystem})).
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"k8s-app": "kube-dns"}))).
		WithPorts(
			networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolUDP).WithPort(port),
			networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(port),
		)
}

// hardened is the security context of every container of a tentacle.
func hardened() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithRunAsNonRoot(true).
		WithReadOnlyRootFilesystem(true).
		WithAllowPrivilegeEscalation(false).
		WithPrivileged(false).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))
}

func (d *deployment) deployment() *appsv1ac.DeploymentApplyConfiguration {
	podAnn := map[string]string{
		AnnotationRevision: strconv.Itoa(d.revision),
		AnnotationDigest:   d.digest,
	}
	return appsv1ac.Deployment(d.name, d.enclave).
		WithLabels(tentacleLabels(d.enclave, d.name)).
		WithAnnotations(d.annotations()).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(1).
			// Old ReplicaSets point at revision ConfigMaps that are
			// pruned; rollback goes through revisions, not through them.
			WithRevisionHistoryLimit(3).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(tentacleSelector(d.name))).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxSurge(intstr.FromInt32(1)).
					WithMaxUnavailable(intstr.FromInt32(0)))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(tentacleLabels(d.enclave, d.name)).
				WithAnnotations(podAnn).
				WithSpec(d.podSpec())))
}

func (d *deployment) podSpec() *corev1ac.PodSpecApplyConfiguration {
	items := make([]*corev1ac.KeyToPathApplyConfiguration, 0, len(d.keys))
	for _, p := range slices.Sorted(maps.Keys(d.keys)) {
		items = append(items, corev1ac.KeyToPath().WithKey(d.keys[p]).WithPath(p))
	}
	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("workflow").WithConfigMap(corev1ac.ConfigMapVolumeSource().
			WithName(revisionName(d.name, d.revision)).WithItems(items...).WithDefaultMode(0o444)),
		corev1ac.Volume().WithName("secrets").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(secretName(d.name)).WithDefaultMode(0o440)),
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("256Mi"))),
	}
	mounts := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("workflow").WithMountPath(WorkflowPath).WithReadOnly(true),
		corev1ac.VolumeMount().WithName("secrets").WithMountPath(SecretsPath).WithReadOnly(true),
		corev1ac.VolumeMount().WithName("tmp").WithMountPath("/tmp"),
	}
	args := []string{"engine",
		"--workflow", WorkflowPath,
		"--port", strconv.Itoa(EnginePort),
		"--mounted-secrets", SecretsPath,
		"--memory", strconv.Itoa(d.engine.denoHeapMB())}
	if d.usesServices() {
		// Optional: a rollback to a revision with services whose Secret
		// is gone starts, and its nodes say the service is missing.
		volumes = append(volumes, corev1ac.Volume().WithName("services").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(servicesName(d.name)).WithDefaultMode(0o440).WithOptional(true)))
		mounts = append(mounts, corev1ac.VolumeMount().WithName("services").WithMountPath(ServicesPath).WithReadOnly(true))
		args = append(args, "--services", ServicesPath)
	}
	shared := corev1ac.VolumeMount().WithName("shared").WithMountPath(SharedPath)
	if len(d.sidecars) > 0 {
		volumes = append(volumes, corev1ac.Volume().WithName("shared").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("256Mi"))))
		mounts = append(mounts, shared)
	}
	health := func(port intstr.IntOrString, path string, period, failures int32) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(port)).
			WithPeriodSeconds(period).WithTimeoutSeconds(3).WithFailureThreshold(failures)
	}
	httpPort := intstr.FromInt32(EnginePort)
	engine := corev1ac.Container().
		WithName(EngineContainer).
		WithImage(d.image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithCommand("kraken").
		WithArgs(args...).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(EnginePort).WithProtocol(corev1.ProtocolTCP)).
		WithResources(d.engine.apply()).
		WithSecurityContext(hardened()).
		WithVolumeMounts(mounts...).
		// The startup probe gives a slow first start (gVisor, a cold
		// node runtime) a minute before liveness may kill it.
		WithStartupProbe(health(httpPort, "/health", 2, 30)).
		WithReadinessProbe(health(httpPort, "/health", 5, 3)).
		WithLivenessProbe(health(httpPort, "/health", 10, 3)).
		// A crash with no termination message shows its last log lines.
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError)
	containers := []*corev1ac.ContainerApplyConfiguration{engine}
	for _, s := range d.sidecars {
		tmp := "tmp-" + s.container
		volumes = append(volumes, corev1ac.Volume().WithName(tmp).WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(resource.MustParse("256Mi"))))
		c := corev1ac.Container().
			WithName(s.container).
			WithImage(s.Image).
			WithImagePullPolicy(corev1.PullIfNotPresent).
			WithPorts(corev1ac.ContainerPort().WithContainerPort(int32(s.Port)).WithProtocol(corev1.ProtocolTCP)).
			WithResources(s.res.apply()).
			WithSecurityContext(hardened()).
			WithVolumeMounts(shared, corev1ac.VolumeMount().WithName(tmp).WithMountPath("/tmp")).
			WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError)
		if len(s.Command) > 0 {
			c.WithCommand(s.Command...)
		}
		if len(s.Args) > 0 {
			c.WithArgs(s.Args...)
		}
		for _, k := range slices.Sorted(maps.Keys(s.Env)) {
			c.WithEnv(corev1ac.EnvVar().WithName(k).WithValue(s.Env[k]))
		}
		port := intstr.FromInt32(int32(s.Port))
		if s.Protocol == "grpc" {
			// gRPC speaks HTTP/2 only and may not serve an HTTP health
			// path; that the port accepts connections is what can be
			// known without the gRPC health protocol.
			c.WithReadinessProbe(corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(port)).WithPeriodSeconds(5).WithFailureThreshold(3)).
				WithLivenessProbe(corev1ac.Probe().WithTCPSocket(corev1ac.TCPSocketAction().WithPort(port)).WithPeriodSeconds(10).WithFailureThreshold(3))
		} else {
			path := s.HealthPath
			if path == "" {
				path = "/health"
			}
			c.WithReadinessProbe(health(port, path, 5, 3)).WithLivenessProbe(health(port, path, 10, 3))
		}
		containers = append(containers, c)
	}
	spec := corev1ac.PodSpec().
		WithServiceAccountName(TentacleServiceAccount).
		WithAutomountServiceAccountToken(false).
		// Service environment variables would tell a tentacle about
		// every other Service of its enclave.
		WithEnableServiceLinks(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(nobody).
			WithRunAsGroup(nobody).
			WithFSGroup(nobody).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		// The engine lets runs in flight finish for 30 s on SIGTERM.
		WithTerminationGracePeriodSeconds(40).
		WithVolumes(volumes...).
		WithContainers(containers...)
	if len(d.nodeSelector) > 0 {
		spec.WithNodeSelector(d.nodeSelector)
	}
	if d.runtimeClass != "" {
		spec.WithRuntimeClassName(d.runtimeClass)
	}
	return spec
}
