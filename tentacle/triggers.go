package tentacle

import (
	"fmt"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

var triggerKeys = []string{"actions", "event", "name", "path", "provider", "schedule", "subject", "timezone", "type"}

var triggerTypes = []string{string(TriggerManual), string(TriggerCron), string(TriggerQueue), string(TriggerWebhook)}

var webhookProviders = []string{"generic", "github"}

// triggerFieldType says which trigger type uses each type-specific field.
var triggerFieldType = map[string]TriggerType{
	"schedule": TriggerCron,
	"timezone": TriggerCron,
	"subject":  TriggerQueue,
	"path":     TriggerWebhook,
	"provider": TriggerWebhook,
	"event":    TriggerWebhook,
	"actions":  TriggerWebhook,
}

// triggers reads the triggers list. Tentacular's docs promise a manual
// trigger when there is none, so that is what a workflow gets, with a
// warning to say so.
func (r *report) triggers(o *object) []Trigger {
	n := o.get("triggers")
	if n == nil || n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		at := o.at
		if v := o.value("triggers"); v != nil {
			at = v
		}
		r.warnf(at, "triggers", "no triggers declared; the workflow gets one manual trigger")
		return []Trigger{{Type: TriggerManual}}
	}
	if !r.mustBeList(n, "triggers", "triggers") {
		return nil
	}
	names := map[string]*yaml.Node{}
	out := make([]Trigger, 0, len(n.Content))
	for i, item := range n.Content {
		out = append(out, r.trigger(item, index("triggers", i), names))
	}
	return out
}

func (r *report) trigger(item *yaml.Node, field string, names map[string]*yaml.Node) Trigger {
	o, ok := r.object(item, item, field)
	if !ok {
		return Trigger{}
	}
	o.only(triggerKeys...)
	var t Trigger
	typ, tn := o.required("type")
	t.Type = TriggerType(typ)
	if tn != nil && !slices.Contains(triggerTypes, typ) {
		r.errorf(tn, o.path("type"), "unknown trigger type %q%s (one of %s)", typ, didYouMean(typ, triggerTypes), oneOf(triggerTypes))
	}
	if name, n := o.str("name"); n != nil {
		if err := checkIdent("trigger name", name); err != nil {
			r.errorf(n, o.path("name"), "%v", err)
		}
		r.unique(names, strconv.Quote(name), n, o.path("name"), "trigger name")
		t.Name = name
	}
	t.Schedule = r.checked(o, "schedule", checkCron)
	t.Timezone = r.checked(o, "timezone", checkTimezone)
	t.Subject = r.checked(o, "subject", checkNATSSubject)
	t.Path = r.checked(o, "path", checkWebhookPath)
	t.Provider = r.checked(o, "provider", func(s string) error {
		if !slices.Contains(webhookProviders, s) {
			return fmt.Errorf("unknown provider %q%s (one of %s)", s, didYouMean(s, webhookProviders), oneOf(webhookProviders))
		}
		return nil
	})
	t.Event, _ = o.str("event")
	t.Actions = o.strs("actions", nil)

	if tn != nil && slices.Contains(triggerTypes, typ) {
		for _, key := range triggerKeys {
			if want, specific := triggerFieldType[key]; specific && want != t.Type && o.get(key) != nil {
				k, _ := o.lookup(key)
				r.warnf(k, o.path(key), "ignored: only %s triggers use %s", want, key)
			}
		}
	}
	switch t.Type {
	case TriggerCron:
		o.need("schedule")
	case TriggerQueue:
		o.need("subject")
	case TriggerWebhook:
		o.need("path")
	}
	return t
}

// checked reads an optional string field and reports it when check fails.
// Empty values are left to need, for the fields that are required.
func (r *report) checked(o *object, key string, check func(string) error) string {
	s, n := o.str(key)
	if n == nil || s == "" {
		return s
	}
	if err := check(s); err != nil {
		r.errorf(n, o.path(key), "%v", err)
	}
	return s
}
