package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/k8s"
	"github.com/kraken-ops/kraken/store"
)

// loginSettingsFrom reads how people sign in with /kraken login:
// KRAKEN_LOGIN_ISSUER and KRAKEN_LOGIN_CLIENT_ID, and optionally
// KRAKEN_LOGIN_CLIENT_SECRET (for a confidential client) and
// KRAKEN_LOGIN_SCOPES (space- or comma-separated; default openid email
// profile offline_access). Neither of the first two set: sign-in is off.
// One without the other is an error, not a silent "off".
func loginSettingsFrom(getenv func(string) string) (cfg login.Config, on bool, err error) {
	cfg = login.Config{
		Issuer:       strings.TrimSpace(getenv("KRAKEN_LOGIN_ISSUER")),
		ClientID:     strings.TrimSpace(getenv("KRAKEN_LOGIN_CLIENT_ID")),
		ClientSecret: getenv("KRAKEN_LOGIN_CLIENT_SECRET"),
		Scopes:       strings.FieldsFunc(getenv("KRAKEN_LOGIN_SCOPES"), func(r rune) bool { return r == ' ' || r == ',' }),
	}
	switch {
	case cfg.Issuer == "" && cfg.ClientID == "":
		if cfg.ClientSecret != "" || len(cfg.Scopes) > 0 {
			return cfg, false, errors.New("KRAKEN_LOGIN_CLIENT_SECRET or KRAKEN_LOGIN_SCOPES is set, but sign-in needs KRAKEN_LOGIN_ISSUER and KRAKEN_LOGIN_CLIENT_ID too")
		}
		return cfg, false, nil
	case cfg.Issuer == "":
		return cfg, false, errors.New("KRAKEN_LOGIN_CLIENT_ID is set but KRAKEN_LOGIN_ISSUER is not (the identity provider's issuer URL)")
	case cfg.ClientID == "":
		return cfg, false, errors.New("KRAKEN_LOGIN_ISSUER is set but KRAKEN_LOGIN_CLIENT_ID is not (the client registered for the bot, with the device authorization grant)")
	}
	return cfg, true, nil
}

// identitiesSecret names the Secret of people's sign-ins that the
// replicas share: KRAKEN_IDENTITIES_SECRET, else the chart's name for it,
// "<fullname>-identities", with the full name taken from the enclave
// role the chart names "<fullname>-enclave" (KRAKEN_ENCLAVE_ROLE), else
// k8s.DefaultIdentitiesSecret.
func identitiesSecret(getenv func(string) string) string {
	if name := strings.TrimSpace(getenv("KRAKEN_IDENTITIES_SECRET")); name != "" {
		return name
	}
	if full, ok := strings.CutSuffix(strings.TrimSpace(getenv("KRAKEN_ENCLAVE_ROLE")), "-enclave"); ok && full != "" {
		return full + "-identities"
	}
	return k8s.DefaultIdentitiesSecret
}

// startLogin makes the sign-in service, or returns nil Identities when
// sign-in is not configured (the registry then says so). Sign-ins live in
// links, which replicas share (serve: the cluster), or in db when links
// is nil (dev: one process). stop ends the sign-ins still waiting.
func startLogin(ctx context.Context, getenv func(string) string, db *store.DB, links login.Links, log *slog.Logger) (ids command.Identities, stop func(), err error) {
	cfg, on, err := loginSettingsFrom(getenv)
	if err != nil {
		return nil, func() {}, fmt.Errorf("sign-in: %w", err)
	}
	if !on {
		log.Info("sign-in is not set up: /kraken login says so, and enclaves requiring it refuse changes (KRAKEN_LOGIN_ISSUER, KRAKEN_LOGIN_CLIENT_ID)")
		return nil, func() {}, nil
	}
	cfg.Store, cfg.Links, cfg.Logger = db, links, log
	svc, err := login.New(ctx, cfg)
	if err != nil {
		return nil, func() {}, fmt.Errorf("sign-in: %w", err)
	}
	log.Info("sign-in is set up", "issuer", cfg.Issuer, "client_id", cfg.ClientID, "confidential", cfg.ClientSecret != "", "shared", links != nil)
	return svc, func() { svc.Close() }, nil
}
