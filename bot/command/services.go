package command

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
)

// The words for an enclave's services, as /kraken info and the
// deprovision card show them: what each holds, never where it is or how
// to log in.

// servicesWords says what the enclave keeps on each service, one line
// each; nil when the platform configured none.
func (r *Registry) servicesWords(ctx context.Context, name string) []string {
	kinds := r.cfg.Exoskeleton.Kinds()
	if len(kinds) == 0 {
		return nil
	}
	used, err := r.enclaves.Usage(ctx, name)
	if err != nil {
		r.log.Warn("enclave services not measured", "enclave", name, "err", err)
		out := make([]string, len(kinds))
		for i, k := range kinds {
			out[i] = fmt.Sprintf("%s (its size can't be read right now)", capitalize(k.Title()))
		}
		return out
	}
	out := make([]string, 0, len(used))
	for _, u := range used {
		out = append(out, usageWords(u))
	}
	return out
}

func usageWords(u enclave.Usage) string {
	what := capitalize(u.Kind.Title())
	switch {
	case !u.Exists:
		return what + ": not made yet (it is made with the first tentacle that uses it)"
	case u.Kind == enclave.Messaging:
		return what + ": subjects of its own (nothing is stored)"
	case u.Bytes == 0 && u.Objects == 0:
		return what + ": empty"
	}
	unit := "objects"
	if u.Kind == enclave.Postgres {
		unit = "tables"
	}
	return fmt.Sprintf("%s: %s in %s %s", what, sizeWords(u.Bytes), strconv.FormatInt(u.Objects, 10), unit)
}

func sizeWords(n int64) string {
	const k = 1000
	switch {
	case n >= k*k*k:
		return strconv.FormatFloat(float64(n)/(k*k*k), 'f', 1, 64) + " GB"
	case n >= k*k:
		return strconv.FormatFloat(float64(n)/(k*k), 'f', 1, 64) + " MB"
	case n >= k:
		return strconv.FormatFloat(float64(n)/k, 'f', 1, 64) + " kB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// deprovisionPreview tells the owner, before they type the enclave's
// name, everything deprovisioning destroys.
func (r *Registry) deprovisionPreview(ctx context.Context, c *call) (Reply, map[string][]byte, bool) {
	lines := []string{}
	switch list, err := r.tentacles.List(ctx, c.enc.Name); {
	case err != nil:
		lines = append(lines, "Every tentacle, with its run history")
	case len(list) == 0:
		lines = append(lines, "No tentacles (none are deployed)")
	default:
		names := make([]string, len(list))
		for i, t := range list {
			names[i] = t.Name
		}
		lines = append(lines, fmt.Sprintf("%d %s, with their run history: %s", len(list), plural(len(list), "tentacle", "tentacles"), strings.Join(names, ", ")))
	}
	lines = append(lines, r.servicesWords(ctx, c.enc.Name)...)
	return Reply{Text: fmt.Sprintf("Deprovisioning enclave *%s* destroys, for good:\n• %s", c.enc.Name, strings.Join(lines, "\n• "))}, nil, true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
