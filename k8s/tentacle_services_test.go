package k8s

import (
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/enclave"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// servicesFiles is a tentacle whose contract asks for the enclave's
// database, and whose node reports what it was given and whether it got
// through to it.
func servicesFiles() map[string]string {
	return map[string]string{
		"workflow.yaml": `name: ledger
version: "1.0"
nodes:
  check:
    path: ./nodes/check.ts
contract:
  version: "1"
  dependencies:
    tentacular-postgres:
      protocol: postgresql
`,
		"nodes/check.ts": `export default async function run(ctx) {
  const db = ctx.dependency("tentacular-postgres");
  const conn = await Deno.connect({ hostname: db.host, port: db.port });
  conn.close();
  return { database: db.database, schema: db.schema, user: db.user, secret: db.secret.length > 0 };
}
`,
	}
}

// TestDeployServices: the rooms granted on the enclave's services reach
// the pod in their own Secret, the engine hands them to the node (which
// reaches the service), the egress policy opens their network, a
// rollback keeps them, and undeploy removes them. A deploy without them
// is refused before anything is written.
func TestDeployServices(t *testing.T) {
	h := newHarness(t, harnessOptions{kubelet: true})
	ctx, ns, tc := h.ctx, h.ns, h.tc

	// Something to connect to, standing in for the database server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	b := loadBundle(t, servicesFiles())
	if _, err := tc.Deploy(ctx, ns, b, prov); err == nil || !strings.Contains(err.Error(), "dependency tentacular-postgres is one of the enclave's services, and no room on it was granted") {
		t.Fatalf("deploy without rooms: %v", err)
	}
	if objs := h.objects(); len(objs) != 0 {
		t.Fatalf("a refused deploy wrote %v", objs)
	}

	const password = "derived-pa55word-0123456789"
	b.Services = map[string]enclave.Space{"tentacular-postgres": {
		Kind: enclave.Postgres, Protocol: "postgresql", Host: "127.0.0.1", Port: port,
		Database: "kraken_" + ns, Schema: "ledger", User: "kraken_" + ns + "_ledger", Secret: password,
		Network: []enclave.Network{
			{CIDR: "10.96.5.0/24"},
			{Namespace: "databases", Pods: map[string]string{"app": "postgres"}, Port: 6432},
		},
	}}
	rev, err := tc.Deploy(ctx, ns, b, prov)
	must(t, err)

	sec, err := h.cs.CoreV1().Secrets(ns).Get(ctx, "ledger-services", metav1.GetOptions{})
	must(t, err)
	var got enclave.Space
	must(t, json.Unmarshal(sec.Data["tentacular-postgres.json"], &got))
	if got.Secret != password || got.Database != "kraken_"+ns || got.Port != port || len(sec.Data) != 1 {
		t.Errorf("services Secret holds %+v", got)
	}
	if sec.Labels[LabelTentacle] != "ledger" {
		t.Errorf("services Secret labels = %v", sec.Labels)
	}

	dep, err := h.cs.AppsV1().Deployments(ns).Get(ctx, "ledger", metav1.GetOptions{})
	must(t, err)
	pod := dep.Spec.Template.Spec
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "services" })
	if i < 0 || pod.Volumes[i].Secret == nil || pod.Volumes[i].Secret.SecretName != "ledger-services" || pod.Volumes[i].Secret.Optional == nil || !*pod.Volumes[i].Secret.Optional {
		t.Fatalf("volumes = %+v", pod.Volumes)
	}
	if args := strings.Join(pod.Containers[0].Args, " "); !strings.Contains(args, "--services "+ServicesPath) {
		t.Errorf("engine args = %s", args)
	}

	np, err := h.cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "ledger-egress", metav1.GetOptions{})
	must(t, err)
	if !hasEgress(np, "10.96.5.0/24", "", port) || !hasEgress(np, "", "databases", 6432) {
		t.Errorf("egress rules = %+v", np.Spec.Egress)
	}
	// The granted host is not opened as a public host name: the rule
	// above is what reaches it.
	if strings.Contains(np.Annotations[AnnotationEgress], "127.0.0.1:") {
		t.Errorf("the service's address went into the host allow-list: %s", np.Annotations[AnnotationEgress])
	}

	if _, err := tc.WaitReady(ctx, ns, "ledger"); err != nil {
		t.Fatal(err)
	}
	out, err := tc.Run(ctx, ns, "ledger", nil)
	must(t, err)
	if want := `"check":{"database":"kraken_` + ns + `","schema":"ledger","user":"kraken_` + ns + `_ledger","secret":true}`; !strings.Contains(string(out), want) {
		t.Fatalf("run = %s, want %s", out, want)
	}
	if strings.Contains(h.logs.String(), password) {
		t.Error("the service's password reached the bot's log")
	}

	// A rollback brings no rooms and keeps the Secret; its pods mount it.
	b2 := loadBundle(t, servicesFiles())
	b2.Services = b.Services
	if _, err := tc.Deploy(ctx, ns, b2, prov); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Rollback(ctx, ns, "ledger", rev.Number, prov); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cs.CoreV1().Secrets(ns).Get(ctx, "ledger-services", metav1.GetOptions{}); err != nil {
		t.Errorf("rollback lost the services Secret: %v", err)
	}
	dep, err = h.cs.AppsV1().Deployments(ns).Get(ctx, "ledger", metav1.GetOptions{})
	must(t, err)
	if !slices.ContainsFunc(dep.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "services" }) {
		t.Error("the rolled-back revision does not mount its services")
	}

	must(t, tc.Undeploy(ctx, ns, "ledger", prov))
	if _, err := h.cs.CoreV1().Secrets(ns).Get(ctx, "ledger-services", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("undeploy left the services Secret: %v", err)
	}
}

func hasEgress(np *networkingv1.NetworkPolicy, cidr, namespace string, port int) bool {
	for _, r := range np.Spec.Egress {
		if len(r.Ports) != 1 || r.Ports[0].Port == nil || r.Ports[0].Port.IntValue() != port || len(r.To) != 1 {
			continue
		}
		to := r.To[0]
		switch {
		case cidr != "" && to.IPBlock != nil && to.IPBlock.CIDR == cidr && len(to.IPBlock.Except) == 0:
			return true
		case namespace != "" && to.NamespaceSelector != nil && to.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == namespace &&
			to.PodSelector != nil && to.PodSelector.MatchLabels["app"] == "postgres":
			return true
		}
	}
	return false
}
