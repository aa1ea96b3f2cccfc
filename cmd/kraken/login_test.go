package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/bot/login/logintest"
	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/store"
)

func TestLoginSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		scopes  []string
		wantErr string
	}{
		{"off", nil, false, nil, ""},
		{"on", map[string]string{"KRAKEN_LOGIN_ISSUER": "https://id.example", "KRAKEN_LOGIN_CLIENT_ID": "kraken"}, true, nil, ""},
		{"scopes", map[string]string{"KRAKEN_LOGIN_ISSUER": "https://id.example", "KRAKEN_LOGIN_CLIENT_ID": "kraken", "KRAKEN_LOGIN_SCOPES": "openid, email offline_access"}, true, []string{"openid", "email", "offline_access"}, ""},
		{"no client", map[string]string{"KRAKEN_LOGIN_ISSUER": "https://id.example"}, false, nil, "KRAKEN_LOGIN_CLIENT_ID is not"},
		{"no issuer", map[string]string{"KRAKEN_LOGIN_CLIENT_ID": "kraken"}, false, nil, "KRAKEN_LOGIN_ISSUER is not"},
		{"secret alone", map[string]string{"KRAKEN_LOGIN_CLIENT_SECRET": "s3cr3t"}, false, nil, "needs KRAKEN_LOGIN_ISSUER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, on, err := loginSettingsFrom(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Error("the error shows the client secret")
				}
				return
			}
			if err != nil || on != tc.on || !slices.Equal(cfg.Scopes, tc.scopes) {
				t.Errorf("got %+v %v %v", cfg, on, err)
			}
		})
	}
}

func TestStartLogin(t *testing.T) {
	op := logintest.New(t, logintest.Options{})
	db, err := store.Open(filepath.Join(t.TempDir(), "kraken.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ids, stop, err := startLogin(context.Background(), func(string) string { return "" }, db, nil, log)
	if err != nil || ids != nil {
		t.Fatalf("sign-in off: %v %v", ids, err)
	}
	stop()
	env := map[string]string{"KRAKEN_LOGIN_ISSUER": op.Issuer, "KRAKEN_LOGIN_CLIENT_ID": op.ClientID, "KRAKEN_LOGIN_CLIENT_SECRET": op.ClientSecret}
	ids, stop, err = startLogin(context.Background(), func(k string) string { return env[k] }, db, nil, log)
	if err != nil || ids == nil {
		t.Fatalf("sign-in on: %v %v", ids, err)
	}
	defer stop()
	p, err := ids.Start(context.Background(), enclave.Principal{TeamID: "T1", UserID: "UALEX"})
	if err != nil || p.UserCode == "" {
		t.Fatalf("a sign-in through the wiring: %+v %v", p, err)
	}
}

func TestIdentitiesSecret(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"named", map[string]string{"KRAKEN_IDENTITIES_SECRET": "ids", "KRAKEN_ENCLAVE_ROLE": "prod-kraken-enclave"}, "ids"},
		{"from the chart's enclave role", map[string]string{"KRAKEN_ENCLAVE_ROLE": "prod-kraken-enclave"}, "prod-kraken-identities"},
		{"an enclave role not the chart's", map[string]string{"KRAKEN_ENCLAVE_ROLE": "bot-role"}, "kraken-identities"},
		{"nothing set", nil, "kraken-identities"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := identitiesSecret(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("identitiesSecret = %q, want %q", got, tt.want)
			}
		})
	}
}
