// Package k8s is the only package that talks to the Kubernetes API: it
// provisions enclaves and deploys tentacles with server-side apply, and
// reports their status, logs and events.
package k8s
