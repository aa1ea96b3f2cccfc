package k8s

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// applyOptions are the options of every server-side apply the bot makes.
// One field manager means the bot owns exactly the fields it last
// applied, so a field it stops sending is removed; Force takes fields
// back from anyone who edited them by hand, and makes concurrent applies
// of the same object by two replicas converge instead of conflicting.
func applyOptions() metav1.ApplyOptions {
	return metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
}

// enclaveLabels are the labels every object of an enclave carries.
func enclaveLabels(enclaveName string) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelEnclave: enclaveName}
}
