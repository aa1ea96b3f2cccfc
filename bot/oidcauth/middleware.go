package oidcauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// realm names the protected space in WWW-Authenticate challenges.
const realm = "kraken-admin"

// Middleware lets a request through to next only with a valid admin token,
// and puts the caller's Identity in the request context (see IdentityFrom).
//
// Refusals, with a small JSON body {"error": "..."}:
//   - 401 when there is no bearer token (challenge without an error code,
//     as RFC 6750 §3.1 asks), or the token is malformed, forged, expired or
//     not meant for us (challenge with error="invalid_token");
//   - 403 when the token is valid but the caller is not in the admin group
//     (error="insufficient_scope");
//   - 503 while the identity provider has not been discovered, with
//     Retry-After.
//
// The token itself is never logged; refusals are logged with the reason and,
// once the token is verified, the issuer and subject.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := bearerToken(r)
		if err == nil {
			var id Identity
			id, err = v.Verify(r.Context(), raw)
			if err == nil {
				v.log.DebugContext(r.Context(), "oidcauth: admin request authenticated",
					"issuer", id.Issuer, "subject", id.Subject, "method", r.Method, "path", r.URL.Path)
				next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
				return
			}
			if errors.Is(err, ErrNotAdmin) {
				v.log.InfoContext(r.Context(), "oidcauth: admin request refused",
					"reason", "not in admin group", "issuer", id.Issuer, "subject", id.Subject,
					"method", r.Method, "path", r.URL.Path)
				challenge(w, `error="insufficient_scope"`)
				writeError(w, http.StatusForbidden, "this account is not in the admin group")
				return
			}
		}

		switch {
		case errors.Is(err, ErrNoToken):
			v.log.DebugContext(r.Context(), "oidcauth: admin request refused",
				"reason", "no bearer token", "method", r.Method, "path", r.URL.Path)
			challenge(w, "")
			writeError(w, http.StatusUnauthorized, "a bearer token is required")
		case errors.Is(err, ErrUnavailable):
			v.log.WarnContext(r.Context(), "oidcauth: admin request refused",
				"reason", "identity provider unreachable", "issuer", v.cfg.Issuer, "err", err)
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(v.cfg.DiscoveryRetry.Seconds()))))
			writeError(w, http.StatusServiceUnavailable, "identity provider unreachable")
		default:
			// go-oidc's messages name the failed check (expiry, audience,
			// issuer, signature) and quote claims, never the token.
			v.log.InfoContext(r.Context(), "oidcauth: admin request refused",
				"reason", "invalid token", "err", err, "method", r.Method, "path", r.URL.Path)
			challenge(w, `error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "the bearer token is invalid or expired")
		}
	})
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header. No header, or another scheme, is ErrNoToken; a Bearer header
// without a usable token is ErrInvalidToken.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, token, _ := strings.Cut(h, " ")
	// The scheme is case-insensitive (RFC 9110 §11.1).
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", fmt.Errorf("%w: Bearer without a token", ErrInvalidToken)
	}
	if strings.ContainsAny(token, " \t") {
		return "", fmt.Errorf("%w: more than one word after Bearer", ErrInvalidToken)
	}
	return token, nil
}

func challenge(w http.ResponseWriter, params string) {
	c := `Bearer realm="` + realm + `"`
	if params != "" {
		c += ", " + params
	}
	w.Header().Set("WWW-Authenticate", c)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	// Refusals depend on the caller's credentials; nothing may cache them.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// A failed write means the caller has gone; there is no one to tell.
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
