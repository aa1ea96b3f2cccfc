// Package store keeps the bot's local records in one bbolt file: event
// de-duplication, enclave bindings, revisions, run records, the audit log,
// conversation memory and encrypted tokens.
package store
