package k8s

//go:generate go run ../hack/genrbac -o ../deploy/helm/kraken/templates/rbac.yaml

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// rbacPodSecurityLevel is the Pod Security level every enclave namespace
// must enforce (LabelPodSecurity). The bot can create Deployments there,
// which is the power to run any pod; the restricted level is what keeps
// that from being root on a node, so the admission policy refuses
// enclave namespaces without it and forbids the bot to lower it.
const rbacPodSecurityLevel = "restricted"

// RBACOptions says whom BotRBAC grants to and what the objects are called.
type RBACOptions struct {
	// Name names the cluster-scoped objects: the ClusterRole and its
	// binding are Name, the enclave ClusterRole is Name+"-enclave", the
	// admission policy and its binding Name+"-enclaves". The chart uses
	// its full name, so "kraken" by default.
	Name string
	// Namespace and ServiceAccount identify the bot.
	Namespace      string
	ServiceAccount string
	// Labels go on every object.
	Labels map[string]string
}

// EnclaveRole is the ClusterRole the bot binds to itself in each enclave
// namespace: Config.EnclaveRole must name it.
func (o RBACOptions) EnclaveRole() string { return o.Name + "-enclave" }

// IdentitiesSecret is the Secret of people's sign-ins the bot may read
// and update in its namespace: Config.IdentitiesSecret must name it.
func (o RBACOptions) IdentitiesSecret() string { return o.Name + "-identities" }

// PolicyName names the ValidatingAdmissionPolicy and its binding.
func (o RBACOptions) PolicyName() string { return o.Name + "-enclaves" }

// Username is the bot's identity as the API server sees it.
func (o RBACOptions) Username() string {
	return "system:serviceaccount:" + o.Namespace + ":" + o.ServiceAccount
}

// rulesFor turns RequiredAccess into RBAC rules for one scope, one rule
// per entry, so the chart grants exactly what Check verifies.
func rulesFor(scope AccessScope, o RBACOptions) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	for _, a := range RequiredAccess {
		if a.Scope != scope {
			continue
		}
		r := rbacv1.PolicyRule{APIGroups: []string{a.Group}, Resources: []string{a.Resource}, Verbs: slices.Clone(a.Verbs)}
		if a.OnlyEnclaveRole {
			r.ResourceNames = []string{o.EnclaveRole()}
		}
		if a.Name != "" {
			r.ResourceNames = []string{a.Name}
		}
		if a.OnlyIdentitiesSecret {
			r.ResourceNames = []string{o.IdentitiesSecret()}
		}
		rules = append(rules, r)
	}
	return rules
}

// BotRBAC returns everything that gives the bot its rights and holds it
// to them, in an order they can be applied in: a ClusterRole for what it
// needs cluster-wide, the enclave ClusterRole it binds to itself in each
// enclave namespace, a Role in its own namespace when RequiredAccess has
// anything InBotNamespace, and the admission policy. The rules are
// RequiredAccess, scope by scope.
//
// RBAC cannot say "only in namespaces you made". Creating an enclave's
// first RoleBinding is therefore a cluster-wide right, and with bind on
// the enclave role it would let the bot give itself that role in
// kube-system and read its Secrets. The ValidatingAdmissionPolicy closes
// that. For requests from the bot's ServiceAccount it refuses, with 403:
// RoleBindings outside namespaces labeled managed-by=kraken, and any that
// binds anything but the enclave role to anyone but the bot; namespaces
// created without the managed-by and Pod Security labels; changes that
// remove them, and changes to or deletion of any namespace that lacks
// them. People and other controllers are not affected.
func BotRBAC(o RBACOptions) []runtime.Object {
	meta := func(name, ns string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: maps.Clone(o.Labels)}
	}
	bot := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: o.ServiceAccount, Namespace: o.Namespace}}
	rbacType := func(kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: kind}
	}
	admissionType := func(kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: kind}
	}
	fail := admissionv1.Fail
	forbidden := metav1.StatusReasonForbidden
	objs := []runtime.Object{
		&rbacv1.ClusterRole{TypeMeta: rbacType("ClusterRole"), ObjectMeta: meta(o.Name, ""), Rules: rulesFor(ClusterWide, o)},
		&rbacv1.ClusterRole{TypeMeta: rbacType("ClusterRole"), ObjectMeta: meta(o.EnclaveRole(), ""), Rules: rulesFor(InEnclave, o)},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   rbacType("ClusterRoleBinding"),
			ObjectMeta: meta(o.Name, ""),
			Subjects:   bot,
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: o.Name},
		},
	}
	// The bot's own namespace gets a Role only when it needs something
	// there: the leader election's Lease, the schedules' shared state,
	// the sign-ins.
	if rules := rulesFor(InBotNamespace, o); len(rules) > 0 {
		objs = append(objs,
			&rbacv1.Role{TypeMeta: rbacType("Role"), ObjectMeta: meta(o.Name, o.Namespace), Rules: rules},
			&rbacv1.RoleBinding{
				TypeMeta:   rbacType("RoleBinding"),
				ObjectMeta: meta(o.Name, o.Namespace),
				Subjects:   bot,
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: o.Name},
			})
	}
	return append(objs,
		&admissionv1.ValidatingAdmissionPolicy{
			TypeMeta:   admissionType("ValidatingAdmissionPolicy"),
			ObjectMeta: meta(o.PolicyName(), ""),
			Spec: admissionv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: &fail,
				MatchConstraints: &admissionv1.MatchResources{
					ResourceRules: []admissionv1.NamedRuleWithOperations{
						{RuleWithOperations: admissionv1.RuleWithOperations{
							Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update, admissionv1.Delete},
							Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"*"}, Resources: []string{"namespaces"}},
						}},
						{RuleWithOperations: admissionv1.RuleWithOperations{
							Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update, admissionv1.Delete},
							Rule:       admissionv1.Rule{APIGroups: []string{rbacv1.GroupName}, APIVersions: []string{"*"}, Resources: []string{"rolebindings"}},
						}},
					},
				},
				// Only the bot is held to this; people and other
				// controllers are governed by their own RBAC.
				MatchConditions: []admissionv1.MatchCondition{
					{Name: "is-the-bot", Expression: "request.userInfo.username == " + celQuote(o.Username())},
				},
				Variables: []admissionv1.Variable{
					{Name: "isNamespace", Expression: "request.resource.group == '' && request.resource.resource == 'namespaces'"},
					// A Namespace in the request is an enclave when it
					// carries both labels; null (no object on DELETE,
					// no old object on CREATE) passes.
					{Name: "newIsEnclave", Expression: celIsEnclave("object")},
					{Name: "oldIsEnclave", Expression: celIsEnclave("oldObject")},
					{Name: "nsIsEnclave", Expression: "namespaceObject != null && namespaceObject.metadata.?labels[?" + celQuote(LabelManagedBy) + "].orValue('') == " + celQuote(ManagedBy)},
				},
				Validations: []admissionv1.Validation{
					{
						Expression: "!variables.isNamespace || request.operation != 'CREATE' || variables.newIsEnclave",
						Message:    fmt.Sprintf("the kraken bot may only create namespaces labeled %s=%s and %s=%s", LabelManagedBy, ManagedBy, LabelPodSecurity, rbacPodSecurityLevel),
						Reason:     &forbidden,
					},
					{
						Expression: "!variables.isNamespace || request.operation == 'CREATE' || (variables.oldIsEnclave && variables.newIsEnclave)",
						Message:    fmt.Sprintf("the kraken bot may only change or delete its own enclave namespaces, and may not remove their %s or %s labels", LabelManagedBy, LabelPodSecurity),
						Reason:     &forbidden,
					},
					{
						Expression: "variables.isNamespace || variables.nsIsEnclave",
						Message:    fmt.Sprintf("the kraken bot may only manage RoleBindings in namespaces labeled %s=%s", LabelManagedBy, ManagedBy),
						Reason:     &forbidden,
					},
					{
						Expression: "variables.isNamespace || object == null || (" +
							"object.roleRef.kind == 'ClusterRole' && object.roleRef.name == " + celQuote(o.EnclaveRole()) +
							" && size(object.?subjects.orValue([])) == 1" +
							" && object.subjects[0].kind == 'ServiceAccount'" +
							" && object.subjects[0].name == " + celQuote(o.ServiceAccount) +
							" && object.subjects[0].?namespace.orValue('') == " + celQuote(o.Namespace) + ")",
						Message: fmt.Sprintf("the kraken bot may only bind the ClusterRole %s, and only to itself", o.EnclaveRole()),
						Reason:  &forbidden,
					},
				},
			},
		},
		&admissionv1.ValidatingAdmissionPolicyBinding{
			TypeMeta:   admissionType("ValidatingAdmissionPolicyBinding"),
			ObjectMeta: meta(o.PolicyName(), ""),
			Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        o.PolicyName(),
				ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			},
		},
	)
}

// celIsEnclave is a CEL condition: the Namespace in variable obj is null
// or carries both enclave labels.
func celIsEnclave(obj string) string {
	return obj + " == null || (" +
		obj + ".metadata.?labels[?" + celQuote(LabelManagedBy) + "].orValue('') == " + celQuote(ManagedBy) + " && " +
		obj + ".metadata.?labels[?" + celQuote(LabelPodSecurity) + "].orValue('') == " + celQuote(rbacPodSecurityLevel) + ")"
}

// celQuote quotes s as a CEL string literal. The values are names and
// labels, so single quotes never occur in them; the check keeps a
// surprise from turning into an expression.
func celQuote(s string) string {
	if strings.ContainsAny(s, `'\`) {
		panic("k8s: cannot quote " + s + " for CEL")
	}
	return "'" + s + "'"
}

// RBACYAML renders objects as one multi-document YAML stream, for
// `kubectl apply -f` and for the chart. Long CEL expressions stay on one
// line, so the file reads like the Go it comes from.
func RBACYAML(objs []runtime.Object) ([]byte, error) {
	var b bytes.Buffer
	for i, obj := range objs {
		j, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(j, &m); err != nil {
			return nil, err
		}
		// The admission policy's empty status is the server's to fill.
		if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
			delete(m, "status")
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(m); err != nil {
			return nil, err
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// chartRBACOptions are Helm expressions, so the chart's rbac.yaml is
// BotRBAC itself with the release's names filled in at install time.
// They contain no quotes or spaces, so the YAML encoder neither escapes
// nor folds them.
var chartRBACOptions = RBACOptions{
	Name:           "{{$fullname}}",
	Namespace:      "{{.Release.Namespace}}",
	ServiceAccount: "{{$serviceAccount}}",
	Labels: map[string]string{
		"app.kubernetes.io/name":     "{{$name}}",
		"app.kubernetes.io/instance": "{{.Release.Name}}",
	},
}

// ChartRBAC returns deploy/helm/kraken/templates/rbac.yaml.
func ChartRBAC() ([]byte, error) {
	body, err := RBACYAML(BotRBAC(chartRBACOptions))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`# Code generated by "go generate ./k8s" from k8s/rbac.go; DO NOT EDIT.
# The rules are k8s.RequiredAccess (k8s/check.go) as k8s.BotRBAC grants them:
# change them there, then run go generate ./k8s.
{{- if .Values.rbac.create }}
{{- $name := include "kraken.name" . }}
{{- $fullname := include "kraken.fullname" . }}
{{- $serviceAccount := include "kraken.serviceAccountName" . }}
`)
	b.Write(body)
	b.WriteString("{{- end }}\n")
	return b.Bytes(), nil
}

// CheckGuard makes sure the admission policy that confines the bot is in
// force, by asking, in a dry run, for exactly what it forbids: binding
// the enclave role in kube-system. Without the policy the bot's RBAC
// would allow it, so a success here means the cluster is unsafe to run
// the bot in. Nothing is written either way.
func (c *Client) CheckGuard(ctx context.Context) error {
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "kraken-guard-check-", Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: c.cfg.EnclaveRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: c.cfg.BotServiceAccount, Namespace: c.cfg.BotNamespace}},
	}
	_, err := c.cs.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, rb, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return ErrUnguarded
	case apierrors.IsForbidden(err):
		return nil
	default:
		return fmt.Errorf("k8s: checking the admission policy: %w", err)
	}
}

// ErrUnguarded means the bot could bind its enclave role outside its
// enclaves: the chart's ValidatingAdmissionPolicy is missing or not
// enforced.
var ErrUnguarded = errors.New("k8s: the bot may create RoleBindings outside its enclaves: install the chart's ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.30 or later) before running it")
