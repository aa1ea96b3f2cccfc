// Package enclave is the enclave domain: a Slack channel's namespace,
// quota, network isolation, shared services and members governed as one,
// with its lifecycle (provisioning, active, frozen, deprovisioned) and the
// owner/member/other rights checked before every operation.
package enclave
