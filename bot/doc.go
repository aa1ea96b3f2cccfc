// Package bot is the people-facing side of The Kraken: the Slack and
// console transports, the command registry every caller goes through,
// message rendering, the LLM conversation loop and the admin API.
//
// It is built on the engine and the cluster layer; see
// ../shared/ARCHITECTURE.md for the design.
package bot
