package slack

import (
	"bytes"
	"encoding/json"
	"net/url"
)

// storedBody is a request's body as the store keeps it while it waits:
// every text in it passed through redact, so a token someone pasted in a
// message is handled from memory but never written to disk. A request
// replayed after a crash is answered from this copy, without the secret.
func storedBody(body []byte, redact func(string) string) []byte {
	if redact == nil {
		return body
	}
	var v any
	if json.Unmarshal(body, &v) == nil {
		if out, err := json.Marshal(redactValue(v, redact)); err == nil {
			return out
		}
	}
	if form, err := url.ParseQuery(string(body)); err == nil && bytes.ContainsRune(body, '=') {
		for _, vals := range form {
			for i, s := range vals {
				if json.Valid([]byte(s)) {
					vals[i] = string(storedBody([]byte(s), redact)) // an interaction's payload
				} else {
					vals[i] = redact(s)
				}
			}
		}
		return []byte(form.Encode())
	}
	return []byte(redact(string(body)))
}

func redactValue(v any, redact func(string) string) any {
	switch t := v.(type) {
	case string:
		return redact(t)
	case map[string]any:
		for k, x := range t {
			t[k] = redactValue(x, redact)
		}
	case []any:
		for i, x := range t {
			t[i] = redactValue(x, redact)
		}
	}
	return v
}
