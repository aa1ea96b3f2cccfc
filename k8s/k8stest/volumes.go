package k8stest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// materialise writes the pod's volumes under dir/<volume name>, as the
// kubelet would mount them: configMap and secret volumes as one file per
// key (or per item, whose path may hold '/', which is how nested files are
// shipped since keys cannot), emptyDir and anything else as an empty
// directory. A missing ConfigMap or Secret is an error unless optional;
// the caller retries, as the kubelet does.
func materialise(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, dir string) error {
	for _, v := range pod.Spec.Volumes {
		vdir := filepath.Join(dir, v.Name)
		if err := os.RemoveAll(vdir); err != nil {
			return err
		}
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return err
		}
		var err error
		switch {
		case v.ConfigMap != nil:
			err = writeConfigMap(ctx, cs, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, vdir)
		case v.Secret != nil:
			err = writeSecret(ctx, cs, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, vdir)
		case v.Projected != nil:
			err = writeProjected(ctx, cs, pod, v.Projected, vdir)
		}
		if err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func writeConfigMap(ctx context.Context, cs kubernetes.Interface, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("configmap %s: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return writeKeys(data, items, optional, dir, "configmap "+name)
}

func writeSecret(ctx context.Context, cs kubernetes.Interface, ns, name string, items []corev1.KeyToPath, optional *bool, dir string) error {
	s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional != nil && *optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("secret %s: %w", name, err)
	}
	return writeKeys(s.Data, items, optional, dir, "secret "+name)
}

// writeKeys writes every key as a file, or, when items are given, only
// those keys, each at its path.
func writeKeys(data map[string][]byte, items []corev1.KeyToPath, optional *bool, dir, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := writeFile(dir, k, v); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, it.Key)
		}
		if err := writeFile(dir, it.Path, v); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(dir, rel string, data []byte) error {
	// The apiserver validates item paths too; this keeps a bad one from
	// writing outside the pod's directory in any case.
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(filepath.Clean(rel), "../") {
		return fmt.Errorf("path %q leaves the volume", rel)
	}
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// writeProjected handles the ServiceAccount token volume every pod gets
// (kube-api-access-*) and other projections; a token is not requested,
// since nothing here talks to the API from inside a pod.
func writeProjected(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, p *corev1.ProjectedVolumeSource, dir string) error {
	for _, src := range p.Sources {
		var err error
		switch {
		case src.ConfigMap != nil:
			err = writeConfigMap(ctx, cs, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, dir)
		case src.Secret != nil:
			err = writeSecret(ctx, cs, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, dir)
		case src.DownwardAPI != nil:
			for _, it := range src.DownwardAPI.Items {
				if it.FieldRef == nil {
					continue
				}
				if v, ok := fieldValue(pod, it.FieldRef.FieldPath, ""); ok {
					err = writeFile(dir, it.Path, []byte(v))
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// fieldValue resolves the downward API fields a tentacle might read.
func fieldValue(pod *corev1.Pod, path, podIP string) (string, bool) {
	switch path {
	case "metadata.name":
		return pod.Name, true
	case "metadata.namespace":
		return pod.Namespace, true
	case "metadata.uid":
		return string(pod.UID), true
	case "spec.nodeName":
		return pod.Spec.NodeName, true
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, true
	case "status.podIP":
		return podIP, podIP != ""
	case "status.hostIP":
		return "127.0.0.1", true
	}
	return "", false
}

// containerMounts maps a container's volume mounts to the materialised
// directories.
func containerMounts(c corev1.Container, dir string) []mount {
	var ms []mount
	for _, vm := range c.VolumeMounts {
		ms = append(ms, mount{
			path:  filepath.Clean(vm.MountPath),
			local: filepath.Join(dir, vm.Name, vm.SubPath),
		})
	}
	return ms
}
