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

// servicesFields says what the enclave keeps on each service, one field
// each ("Database": "12.3 MB in 4 tables"); nil when the platform
// configured none.
func (r *Registry) servicesFields(ctx context.Context, name string) []Field {
	kinds := r.cfg.Exoskeleton.Kinds()
	if len(kinds) == 0 {
		return nil
	}
	used, err := r.enclaves.Usage(ctx, name)
	if err != nil {
		r.log.Warn("enclave services not measured", "enclave", name, "err", err)
		out := make([]Field, len(kinds))
		for i, k := range kinds {
			out[i] = Field{capitalize(k.Title()), "its size can't be read right now"}
		}
		return out
	}
	out := make([]Field, 0, len(used))
	for _, u := range used {
		out = append(out, Field{capitalize(u.Kind.Title()), usageWords(u)})
	}
	return out
}

func usageWords(u enclave.Usage) string {
	switch {
	case !u.Exists:
		return "not made yet (it comes with the first tentacle that uses it)"
	case u.Kind == enclave.Messaging:
		return "subjects of its own (nothing is stored)"
	case u.Kind == enclave.Postgres && u.Objects == 0:
		return "no tables yet"
	case u.Kind == enclave.Postgres:
		return fmt.Sprintf("%s in %d %s", sizeWords(u.Bytes), u.Objects, plural(int(u.Objects), "table", "tables"))
	case u.Objects == 0:
		return "empty"
	}
	return fmt.Sprintf("%s in %d %s", sizeWords(u.Bytes), u.Objects, plural(int(u.Objects), "file", "files"))
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
		lines = append(lines, fmt.Sprintf("%d %s, with %s run history: %s", len(list), plural(len(list), "tentacle", "tentacles"), plural(len(list), "its", "their"), strings.Join(names, ", ")))
	}
	for _, f := range r.servicesFields(ctx, c.enc.Name) {
		lines = append(lines, "The "+strings.ToLower(f.Label)+": "+f.Value)
	}
	return Reply{Text: fmt.Sprintf("Deprovisioning enclave *%s* destroys, for good:\n• %s", c.enc.Name, strings.Join(lines, "\n• "))}, nil, true
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
