package tentacle

import (
	"time"

	"gopkg.in/yaml.v3"
)

const (
	maxTimeout = time.Hour
	maxRetries = 10
)

// config reads the open config block: timeout and retries are typed, the
// other keys are handed to nodes untouched.
func (r *report) config(o *object) Config {
	var c Config
	co, ok := o.child("config")
	if !ok {
		return c
	}
	if s, n := co.str("timeout"); n != nil {
		c.Timeout = r.timeout(s, n, co.path("timeout"))
	}
	if v, n, ok := co.int("retries"); ok {
		if v < 0 || v > maxRetries {
			r.errorf(n, co.path("retries"), "must be between 0 and %d, got %d", maxRetries, v)
		} else {
			c.Retries = v
		}
	}
	for _, i := range co.unknown([]string{"retries", "timeout"}) {
		if c.Extras == nil {
			c.Extras = map[string]any{}
		}
		c.Extras[co.keys[i].Value] = plainValue(co.vals[i])
	}
	return c
}

// timeout accepts Go durations, a superset of Tentacular's "30s" and
// "5m"; unlike Tentacular, a bad value is an error rather than 30s.
func (r *report) timeout(s string, n *yaml.Node, field string) time.Duration {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		r.errorf(n, field, "%q must be a duration such as 30s or 5m", s)
	case d <= 0:
		r.errorf(n, field, "must be positive, got %s", s)
	case d > maxTimeout:
		r.errorf(n, field, "must be at most 1h, got %s", s)
	default:
		return d
	}
	return 0
}
